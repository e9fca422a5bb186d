"""Next-movie recommendations from a trained GRU4Rec bundle: movie ids in, titled top-k out.

The model speaks dense ``item_idx``; people speak MovieLens movie ids and titles. This module is the
one translation between the two, so the CLI, the sample-recommendations asset and the tests all
validate histories, exclude already-seen movies and break ties the same way. Scoring is delegated
to ``training.score_histories`` in one call for many histories (TensorFlow loads only then).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import polars as pl

from sbr_dagster.core import schema
from sbr_dagster.core.bundle import ModelBundle, load_bundle
from sbr_dagster.core.errors import InputDataError
from sbr_dagster.core.metrics import ranks_from_scores

MODEL_ASSET = "gru4rec"
MOVIES_PATH = ("raw", "movies.parquet")
MATERIALIZE = "dagster asset materialize -m sbr_dagster.definitions --select"
# Rating fed to a rating-aware model when the caller gives none: ML-1M's most common rating.
NEUTRAL_RATING = 4
MAX_LISTED = 10  # offending ids named in one error message

Unknown = Literal["error", "skip"]

RECOMMENDATIONS = {
    "rank": pl.Int32,
    "item_id": pl.Int32,
    "title": pl.String,
    "year": pl.Int16,
    "genres": pl.List(pl.String),
    "score": pl.Float64,
}

_log = logging.getLogger(__name__)


def _listed(values: Sequence[Any]) -> str:
    shown = ", ".join(str(v) for v in values[:MAX_LISTED])
    return shown + (f" and {len(values) - MAX_LISTED} more" if len(values) > MAX_LISTED else "")


def display_title() -> pl.Expr:
    """``Title (year)`` as MovieLens writes it (just the title when the year is unknown)."""
    return (
        pl.when(pl.col("year").is_null())
        .then(pl.col("title"))
        .otherwise(pl.format("{} ({})", "title", "year"))
        .fill_null(pl.format("movie {}", "item_id"))
    )


def _as_ids(values: Sequence[int] | np.ndarray, what: str) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1 or (array.size and not np.issubdtype(array.dtype, np.integer)):
        raise InputDataError(f"{what} must be a flat list of integers, got {list(values)[:MAX_LISTED]!r}")
    return array.astype(np.int64)


@dataclass
class Recommender:
    """A trained model, its item index and the movies table, ready to answer "what next?"."""

    model: Any
    item_index: pl.DataFrame  # item_id, item_idx (dense, the model's item order), support
    movies: pl.DataFrame  # schema.MOVIES
    rating_aware: bool  # the model was trained with ratings (config rating_dim > 0)

    @classmethod
    def from_bundle(cls, trained: ModelBundle, movies: pl.DataFrame) -> Recommender:
        return cls(
            model=trained.model,
            item_index=trained.item_index.sort("item_idx"),
            movies=movies,
            rating_aware=int(trained.config.get("rating_dim", 0) or 0) > 0,
        )

    @property
    def n_items(self) -> int:
        """Movies the model can recommend (those seen in training)."""
        return self.item_index.height

    def movies_of(self, item_ids: Sequence[int] | np.ndarray) -> pl.DataFrame:
        """``item_id``, ``title``, ``year``, ``genres`` and ``display`` (Title (year)) in the given order."""
        return (
            pl.DataFrame({"item_id": _as_ids(item_ids, "movie ids")}, schema={"item_id": pl.Int32})
            .join(self.movies, on="item_id", how="left", maintain_order="left")
            .with_columns(display_title().alias("display"))
        )

    def encode(
        self,
        histories: Sequence[Sequence[int]],
        ratings: Sequence[Sequence[int]] | None = None,
        *,
        unknown: Unknown = "error",
        warn: Callable[[str], object] = _log.warning,
    ) -> tuple[list[np.ndarray], list[np.ndarray] | None]:
        """Histories of movie ids -> the model's ``item_idx`` arrays (and rating arrays, when it uses them).

        Ids that are no MovieLens movie are always an error (most likely a typo). Movies that
        exist but never occurred in training have no embedding: an error by default, or with
        ``unknown="skip"`` dropped from the history with a ``warn``-ing, as long as every history
        keeps at least one movie. Ratings must be 1..5, one per history movie; they are
        validated even for a model that ignores them. A rating-aware model given no ratings is
        fed ``NEUTRAL_RATING`` for every movie.
        """
        if unknown not in ("error", "skip"):
            raise InputDataError(f"unknown={unknown!r}: use 'error' or 'skip'")
        if ratings is not None and len(ratings) != len(histories):
            raise InputDataError(f"got {len(ratings)} rating lists for {len(histories)} histories")
        if not len(histories):
            raise InputDataError("no history given: pass at least one list of movie ids")
        ids = [_as_ids(h, "a history") for h in histories]
        lengths = np.array([len(h) for h in ids], dtype=np.int64)
        label = (lambda i: "the history") if len(ids) == 1 else (lambda i: f"history {i}")
        if lengths.min() == 0:
            raise InputDataError(
                f"{label(int(np.argmin(lengths)))} is empty: give at least one movie id the user watched"
            )
        flat_ids = np.concatenate(ids)
        flat_ratings = self._ratings(ratings, lengths, label)
        events = pl.DataFrame(
            {"item_id": flat_ids, "history": np.repeat(np.arange(len(ids)), lengths)},
            schema={"item_id": pl.Int32, "history": pl.Int64},
        ).join(self.item_index.select("item_id", "item_idx"), on="item_id", how="left", maintain_order="left")
        missing = events.filter(pl.col("item_idx").is_null())["item_id"].unique(maintain_order=True)
        not_movies = missing.filter(~missing.is_in(self.movies["item_id"].implode())).to_list()
        if not_movies:
            raise InputDataError(
                f"{len(not_movies)} movie id(s) are not MovieLens 1M movies: {_listed(not_movies)}. "
                "Check the ids (MovieID column of movies.dat) and remove or fix them."
            )
        if missing.len():
            unseen = self.movies_of(missing)["display"].to_list()
            names = _listed([f"{i} {t}" for i, t in zip(missing.to_list(), unseen, strict=True)])
            if unknown == "error":
                raise InputDataError(
                    f"{missing.len()} movie(s) never occur in this model's training data, so it cannot "
                    f"use them: {names}. Drop them from the history, or skip them (unknown='skip', "
                    "CLI --skip-unseen)."
                )
            known = events["item_idx"].is_not_null().to_numpy()
            kept = np.bincount(events["history"].to_numpy()[known], minlength=len(ids))
            if kept.min() == 0:
                raise InputDataError(
                    f"{label(int(np.argmin(kept)))} holds only movies unseen in training ({names}); "
                    "add at least one movie the model knows"
                )
            warn(f"skipped {missing.len()} movie(s) unseen in training: {names}")
            events, flat_ratings, lengths = events.filter(known), flat_ratings[known], kept
        split_at = np.cumsum(lengths)[:-1]
        items = np.split(events["item_idx"].to_numpy().astype(np.int32), split_at)
        if not self.rating_aware:
            return items, None
        return items, np.split(flat_ratings.astype(np.int32), split_at)

    @staticmethod
    def _ratings(
        ratings: Sequence[Sequence[int]] | None, lengths: np.ndarray, label: Callable[[int], str]
    ) -> np.ndarray:
        if ratings is None:
            return np.full(int(lengths.sum()), NEUTRAL_RATING, dtype=np.int64)
        rated = [_as_ids(r, "ratings") for r in ratings]
        for i, (r, n) in enumerate(zip(rated, lengths, strict=True)):
            if len(r) != n:
                raise InputDataError(
                    f"{label(i)} has {n} movies but {len(r)} ratings: give one rating per movie, or none"
                )
        flat = np.concatenate(rated)
        bad = flat[(flat < 1) | (flat > 5)]
        if bad.size:
            raise InputDataError(f"ratings must be 1..5 (MovieLens stars), got {_listed(bad.tolist())}")
        return flat

    def scores(
        self,
        histories: Sequence[Sequence[int]],
        ratings: Sequence[Sequence[int]] | None = None,
        *,
        exclude_history: bool = True,
        unknown: Unknown = "error",
        warn: Callable[[str], object] = _log.warning,
    ) -> np.ndarray:
        """Next-movie scores ``[n_histories, n_items]`` by ``item_idx``; -inf for excluded history movies."""
        from sbr_dagster.core import training

        items, item_ratings = self.encode(histories, ratings, unknown=unknown, warn=warn)
        scores = np.array(training.score_histories(self.model, items, ratings=item_ratings), dtype=np.float64)
        if exclude_history:
            rows = np.repeat(np.arange(len(items)), [len(h) for h in items])
            scores[rows, np.concatenate(items)] = -np.inf
        return scores

    def top_k(self, scores: np.ndarray, k: int) -> list[pl.DataFrame]:
        """The ``k`` best movies of each row of ``scores`` (``RECOMMENDATIONS`` frames), ties by item_id.

        Asking for more movies than a row has candidates (the model's movies minus the excluded
        history) is an error, not a silently shorter list.
        """
        _check_k(k)
        candidates = int(np.isfinite(scores).sum(axis=1).min())
        if k > candidates:
            raise InputDataError(
                f"k={k} but only {candidates:,} movies can be recommended (the model knows "
                f"{self.n_items:,}, minus the history): ask for k <= {candidates:,}"
            )
        n = scores.shape[0]
        best = (
            np.argpartition(-scores, k - 1, axis=1)[:, :k]
            if k < scores.shape[1]
            else np.tile(np.arange(scores.shape[1]), (n, 1))
        )
        best_scores = np.take_along_axis(scores, best, axis=1)
        order = np.lexsort((best, -best_scores), axis=1)  # score descending, then item_idx (= item_id order)
        best = np.take_along_axis(best, order, axis=1)
        best_scores = np.take_along_axis(best_scores, order, axis=1)
        table = pl.DataFrame(
            {
                "query": np.repeat(np.arange(n), k),
                "rank": np.tile(np.arange(1, k + 1), n),
                "item_idx": best.ravel(),
                "score": best_scores.ravel(),
            },
            schema={"query": pl.Int64, "rank": pl.Int32, "item_idx": pl.Int32, "score": pl.Float64},
        )
        table = table.join(
            self.item_index.select("item_idx", "item_id"), on="item_idx", how="left", maintain_order="left"
        ).join(self.movies, on="item_id", how="left", maintain_order="left")
        return [
            part.select(list(RECOMMENDATIONS)) for part in table.partition_by("query", maintain_order=True)
        ]

    def recommend_many(
        self,
        histories: Sequence[Sequence[int]],
        ratings: Sequence[Sequence[int]] | None = None,
        *,
        k: int = 10,
        exclude_history: bool = True,
        unknown: Unknown = "error",
        warn: Callable[[str], object] = _log.warning,
    ) -> list[pl.DataFrame]:
        """Top-``k`` next movies for each history of MovieLens movie ids, scored in one model call.

        ``ratings`` (one 1..5 list per history) matter only to a rating-aware model and are
        ignored otherwise; a rating-aware model without them sees ``NEUTRAL_RATING``. History
        movies are excluded by default (a user does not rate a movie twice); see ``encode`` for
        unknown ids and ``top_k`` for ``k``.
        """
        _check_k(k)
        scores = self.scores(histories, ratings, exclude_history=exclude_history, unknown=unknown, warn=warn)
        return self.top_k(scores, k)

    def recommend(
        self,
        history: Sequence[int],
        ratings: Sequence[int] | None = None,
        *,
        k: int = 10,
        exclude_history: bool = True,
        unknown: Unknown = "error",
        warn: Callable[[str], object] = _log.warning,
    ) -> pl.DataFrame:
        """Top-``k`` next movies after ``history`` (``RECOMMENDATIONS``: rank, item_id, title, year, genres,
        score, best first); ``recommend_many`` for one history."""
        return self.recommend_many(
            [history],
            None if ratings is None else [ratings],
            k=k,
            exclude_history=exclude_history,
            unknown=unknown,
            warn=warn,
        )[0]


def _check_k(k: int) -> None:
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise InputDataError(f"k must be a whole number >= 1 (how many movies to recommend), got {k!r}")


def read_movies_table(lake_root: str | Path) -> pl.DataFrame:
    """The lake's movies table, checked against ``schema.MOVIES``."""
    path = Path(lake_root).joinpath(*MOVIES_PATH)
    if not path.is_file():
        raise InputDataError(
            f"no movies table at {path}: materialize it first, e.g. `{MATERIALIZE} raw/movies` "
            "(or point --lake / SBR_DATA_LAKE at the data lake that has it)"
        )
    movies = pl.read_parquet(path)
    problems = schema.schema_errors(movies, schema.MOVIES)
    if problems:
        raise InputDataError(
            f"movies table {path} has an unexpected layout ({'; '.join(problems)}): "
            f"re-materialize it with `{MATERIALIZE} raw/movies`"
        )
    return movies


def load_recommender(
    definition: str, lake_root: str | Path | None = None, model_dir: str | Path | None = None
) -> Recommender:
    """The recommender of session definition ``definition``: ``<lake>/<definition>/gru4rec`` + movies.

    ``lake_root`` defaults to ``settings.lake_root()`` (``SBR_DATA_LAKE``); ``model_dir`` overrides
    the bundle location (e.g. a sweep's model).
    """
    from sbr_dagster import settings

    lake = Path(lake_root if lake_root is not None else settings.lake_root())
    directory = Path(model_dir) if model_dir is not None else lake / definition / MODEL_ASSET
    movies = read_movies_table(lake)
    try:
        trained = load_bundle(directory)
    except InputDataError as error:
        trained_definitions = sorted(p.parent.parent.name for p in lake.glob(f"*/{MODEL_ASSET}/model.keras"))
        hint = f"; trained models in {lake}: {', '.join(trained_definitions)}" if trained_definitions else ""
        raise InputDataError(f"{error}{hint}") from None
    return Recommender.from_bundle(trained, movies)


def _md(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return text.replace("|", "\\|")


def sample_recommendations_markdown(
    recommender: Recommender,
    test: pl.DataFrame,
    n_sessions: int = 5,
    prefix_len: int = 3,
    k: int = 10,
    seed: int = 0,
) -> str:
    """Top-``k`` lists for a few real test sessions, next to the movie actually watched next.

    ``n_sessions`` sessions longer than ``prefix_len`` (and made only of movies the model knows)
    are drawn with ``seed``; their first ``prefix_len`` movies (with their ratings) are the
    history and movie ``prefix_len + 1`` is the truth, shown **bold** with ✓ when it makes the list,
    else with its rank among all candidates. Meant for Dagster's Markdown metadata.
    """
    if prefix_len < 1 or n_sessions < 1:
        raise InputDataError(f"prefix_len and n_sessions must be >= 1, got {prefix_len} and {n_sessions}")
    known = pl.col("item_id").is_in(recommender.item_index["item_id"].implode())
    heads = (
        test.with_columns(pl.int_range(pl.len()).over("session_id").alias("position"))
        .filter(pl.col("position") <= prefix_len)
        .with_columns(
            (pl.len().over("session_id") > prefix_len).alias("long_enough"),
            known.all().over("session_id").alias("all_known"),
        )
        .filter("long_enough", "all_known")
    )
    eligible = heads["session_id"].unique().sort().to_numpy()
    if eligible.size == 0:
        raise InputDataError(
            f"no test session has more than {prefix_len} movies the model knows: use a smaller prefix_len"
        )
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(eligible, size=min(n_sessions, eligible.size), replace=False))
    picked = heads.filter(pl.col("session_id").is_in(chosen)).sort("session_id", "position")
    history = picked.filter(pl.col("position") < prefix_len)
    truth = picked.filter(pl.col("position") == prefix_len)
    histories = history.group_by("session_id", maintain_order=True).agg("item_id", "rating")
    scores = recommender.scores(histories["item_id"].to_list(), histories["rating"].to_list())
    lists = recommender.top_k(scores, k)
    targets = truth.join(recommender.item_index, on="item_id", how="left", maintain_order="left")
    target_ranks = ranks_from_scores(scores, targets["item_idx"].to_numpy())
    candidates = np.isfinite(scores).sum(axis=1)

    hits = int((target_ranks <= k).sum())
    lines = [
        f"**{hits} of {len(chosen)}** sampled test sessions have the next movie in the top {k} "
        f"(history: first {prefix_len} movies; seed {seed}).",
    ]
    for row, (session, listing) in enumerate(zip(truth.iter_rows(named=True), lists, strict=True)):
        seen = recommender.movies_of(histories["item_id"][row])["display"].to_list()
        stars = histories["rating"][row].to_list()
        target_title = recommender.movies_of([session["item_id"]])["display"][0]
        rank = int(target_ranks[row])
        verdict = (
            f"**{_md(target_title)}** ✓ rank {rank}"
            if rank <= k
            else f"{_md(target_title)} ✗ not in the top {k} (rank {rank:,} of {int(candidates[row]):,})"
        )
        user = f", user {session['user_id']}" if "user_id" in session else ""
        lines += [
            "",
            f"#### Session {session['session_id']}{user}",
            "History: " + " → ".join(f"{_md(t)} ★{s}" for t, s in zip(seen, stars, strict=True)),
            "",
            f"Watched next: {verdict}",
            "",
            "| # | movie | genres | score |",
            "|---:|---|---|---:|",
        ]
        shown = listing.with_columns(display_title().alias("display"))
        for rec in shown.iter_rows(named=True):
            name = _md(rec["display"])
            if rec["item_id"] == session["item_id"]:
                name = f"**{name}** ✓"
            genres = ", ".join(rec["genres"] or [])
            lines.append(f"| {rec['rank']} | {name} | {genres} | {rec['score']:.3f} |")
    return "\n".join(lines) + "\n"
