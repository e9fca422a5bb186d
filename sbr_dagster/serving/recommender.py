"""Next-movie recommendations from a trained model: movie ids in, titled top-k out.

The model speaks dense ``item_idx``; people speak MovieLens movie ids and titles. This module is the
one translation between the two, so the CLI, the sample-recommendations asset and the tests all
validate histories, exclude already-seen movies and break ties the same way. Scoring goes through
the model interface (``SessionModel.score_next``), one call for many histories.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import polars as pl

from sbr_dagster.data.arrays import Sessions
from sbr_dagster.errors import InputDataError
from sbr_dagster.models.base import SessionModel
from sbr_dagster.serving.bundle import ModelBundle

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

    model: SessionModel
    item_index: pl.DataFrame  # item_id, item_idx (dense, the model's item order), support
    movies: pl.DataFrame  # schema.MOVIES

    @classmethod
    def from_bundle(cls, trained: ModelBundle, movies: pl.DataFrame) -> Recommender:
        return cls(model=trained.model, item_index=trained.item_index.sort("item_idx"), movies=movies)

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
    ) -> Sessions:
        """Histories of movie ids (and their ratings) -> the model's ``Sessions`` of ``item_idx``.

        Ids that are no MovieLens movie are always an error (most likely a typo). Movies that
        exist but never occurred in training have no embedding: an error by default, or with
        ``unknown="skip"`` dropped from the history with a ``warn``-ing, as long as every history
        keeps at least one movie. Ratings must be 1..5, one per history movie; they are
        validated even for a model that ignores them. Without ratings every movie gets
        ``NEUTRAL_RATING`` (which only a rating-aware model reads).
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
        return Sessions(
            items=events["item_idx"].to_numpy().astype(np.int32),
            offsets=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
            ratings=flat_ratings.astype(np.int8),
        )

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
        sessions = self.encode(histories, ratings, unknown=unknown, warn=warn)
        scores = np.array(self.model.score_next(sessions), dtype=np.float64)
        if exclude_history:
            rows = np.repeat(np.arange(sessions.n_sessions), np.diff(sessions.offsets))
            scores[rows, sessions.items] = -np.inf
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
