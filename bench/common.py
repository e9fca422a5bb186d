"""What every benchmark needs: the real ML-1M directory, or a clear exit when it is absent."""

from __future__ import annotations

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def data_dir(script: str) -> Path:
    """``SBR_ML1M_DIR``, else ``../shared/data/ml-1m`` beside the repository."""
    directory = Path(os.environ.get("SBR_ML1M_DIR") or REPO.parent / "shared" / "data" / "ml-1m")
    if not (directory / "ratings.dat").is_file():
        sys.exit(f"{script}: no ratings.dat in {directory}; set SBR_ML1M_DIR to the ml-1m directory.")
    return directory


def timeline_variant(directory: Path, definition_name: str, part: str = "test"):
    """``(train sessions, stream of part, n_items)`` of one definition on the timeline protocol."""
    train, streams, n_items = timeline_streams(directory, definition_name, (part,))
    return train, streams[part], n_items


def timeline_streams(directory: Path, definition_name: str, parts: tuple[str, ...] = ("valid", "test")):
    """``(train sessions, {part: stream}, n_items)`` of one definition on the timeline protocol, built
    by the pipeline's own functions (defaults: min_item_support 5, min_session_length 2)."""
    from sbr_dagster.data import cleansing, parsing, sessions, timeline
    from sbr_dagster.data.arrays import Sessions

    ratings, _ = parsing.drop_duplicate_ratings(parsing.read_ratings(directory / "ratings.dat"))
    cuts = timeline.cut_times(ratings)
    candidates = timeline.candidates(ratings, cuts, 5)
    targets = timeline.targets(ratings, cuts, candidates["item_id"])
    definition = sessions.parse_definition(definition_name)
    events = timeline.training_events(sessions.sessionize(ratings, definition), cuts)
    cleansed, _ = cleansing.cleanse(events)
    split = timeline.split_by_timeline(
        cleansed, ratings, candidates, targets, cuts, gap=definition.gap, min_session_length=2
    )
    streams = timeline.split_streams(
        ratings, candidates, targets, cuts, gap=definition.gap, min_rating=None, parts=parts
    )
    return Sessions.of(split.train, candidates), streams, candidates.height
