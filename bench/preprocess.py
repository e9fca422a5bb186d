"""Benchmark Step 1 (preprocessing) on the real MovieLens 1M.

Times the whole chain, raw ratings.dat -> sessions -> cleansed -> train/valid/test, for every
default session definition (ratings parsed once, as the pipeline does), against the seed's way:
pandas ``read_csv(sep='::', engine='python')`` and a per-row Python loop assigning 1-hour
sessions. The seed's way covers ONE definition (gap_1h) and no cleansing or split, so the
ratio understates the difference; ``ours_parse_gap_1h_s`` is the like-for-like figure.

Usage: ``.venv/bin/python bench/preprocess.py [--repeats N] [--seed-repeats M]``; data from
``SBR_ML1M_DIR`` (default ``../shared/data/ml-1m`` beside the repository). Figures come last
as ``key=value`` lines.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

from common import data_dir

from sbr_dagster import settings
from sbr_dagster.data import cleansing, parsing, sessions, splitting

GAP_1H_SECONDS = 3600


def ours(directory: Path) -> dict[str, dict]:
    """The pipeline's chain for every default definition; returns the final split sizes."""
    ratings, _ = parsing.drop_duplicate_ratings(parsing.read_ratings(directory / "ratings.dat"))
    sizes = {}
    for name in settings.DEFAULT_DEFINITIONS:
        cut = sessions.sessionize(ratings, sessions.parse_definition(name))
        cleansed, _ = cleansing.cleanse(cut)
        sizes[name] = splitting.split_by_days(cleansed).report["final"]
    return sizes


def ours_gap_1h(directory: Path) -> int:
    """Like-for-like with the seed: parse, then 1-hour sessions only; returns the session count."""
    ratings = parsing.read_ratings(directory / "ratings.dat")
    return sessions.assign_sessions(ratings, sessions.parse_definition("gap_1h").gap)["session_id"].n_unique()


def seed_way(directory: Path) -> int:
    """The seed's approach: pandas' Python-engine parser and a loop over every row; returns sessions."""
    import pandas as pd

    frame = pd.read_csv(
        directory / "ratings.dat",
        sep="::",
        engine="python",
        header=None,
        names=["user", "item", "rating", "ts"],
    )
    frame = frame.sort_values(["user", "ts"], kind="stable")
    session_ids, session, previous_user, previous_ts = [], -1, None, None
    for row in frame.itertuples(index=False):
        if row.user != previous_user or row.ts - previous_ts > GAP_1H_SECONDS:
            session += 1
        session_ids.append(session)
        previous_user, previous_ts = row.user, row.ts
    frame["session"] = session_ids
    return session + 1


def timed(run: Callable[[], object], repeats: int, label: str) -> tuple[float, object]:
    seconds, result = [], None
    for attempt in range(repeats):
        start = time.perf_counter()
        result = run()
        seconds.append(time.perf_counter() - start)
        print(f"{label}: run {attempt + 1}/{repeats} {seconds[-1]:.3f} s", flush=True)
    return statistics.median(seconds), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed-repeats", type=int, default=3)
    args = parser.parse_args()
    directory = data_dir("bench/preprocess.py")

    all_s, sizes = timed(lambda: ours(directory), args.repeats, "ours, all definitions")
    for name, final in sizes.items():
        print(name, {part: size["events"] for part, size in final.items()}, "events (train/valid/test)")
    gap_1h_s, our_sessions = timed(lambda: ours_gap_1h(directory), args.repeats, "ours, parse + gap_1h")
    seed_s, seed_sessions = timed(lambda: seed_way(directory), args.seed_repeats, "seed way, gap_1h only")
    if seed_sessions != our_sessions:
        sys.exit(f"gap_1h session counts differ: ours {our_sessions}, seed way {seed_sessions}")

    print(f"data_dir={directory}")
    print(f"cpu_count={os.cpu_count()}")
    print(f"definitions={','.join(settings.DEFAULT_DEFINITIONS)}")
    print(f"preprocess_all_definitions_s={all_s:.3f}")
    print(f"ours_parse_gap_1h_s={gap_1h_s:.3f}")
    print(f"seed_way_gap_1h_s={seed_s:.3f}")
    print(f"gap_1h_sessions={our_sessions}")
    print(f"speedup={seed_s / all_s:.1f}")
    print(f"speedup_like_for_like={seed_s / gap_1h_s:.1f}")


if __name__ == "__main__":
    main()
