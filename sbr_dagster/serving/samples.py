"""A few real test sessions with the model's top-k after their first movies, to judge by eye."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from sbr_dagster.errors import InputDataError
from sbr_dagster.models.ranking import target_ranks
from sbr_dagster.serving.recommender import Recommender


@dataclass(frozen=True)
class Sample:
    session_id: int
    user_id: int | None
    history: pl.DataFrame  # the movies fed (``Recommender.movies_of`` columns) and their ``rating``
    watched_next: pl.DataFrame  # the movie actually rated next, one row like ``history``
    recommendations: pl.DataFrame  # ``recommender.RECOMMENDATIONS``, best first
    rank: int  # of the movie watched next among the candidates (history movies excluded)
    candidates: int
    rank_among_all: int  # the same movie's rank with the history's movies left in


def sample_sessions(
    recommender: Recommender,
    test: pl.DataFrame,
    n_sessions: int = 5,
    prefix_len: int = 3,
    k: int = 10,
    seed: int = 0,
) -> list[Sample]:
    """Top-``k`` after the first ``prefix_len`` movies of ``n_sessions`` test sessions drawn with ``seed``.

    Only sessions longer than ``prefix_len`` and made of movies the model knows are drawn.
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
    ranks = target_ranks(scores, targets["item_idx"].to_numpy())
    everything = recommender.scores(
        histories["item_id"].to_list(), histories["rating"].to_list(), exclude_history=False
    )
    ranks_all = target_ranks(everything, targets["item_idx"].to_numpy())
    candidates = np.isfinite(scores).sum(axis=1)
    return [
        Sample(
            session_id=session["session_id"],
            user_id=session.get("user_id"),
            history=recommender.movies_of(histories["item_id"][row]).with_columns(
                rating=histories["rating"][row]
            ),
            watched_next=recommender.movies_of([session["item_id"]]).with_columns(
                rating=pl.lit(session["rating"])
            ),
            recommendations=listing,
            rank=int(ranks[row]),
            candidates=int(candidates[row]),
            rank_among_all=int(ranks_all[row]),
        )
        for row, (session, listing) in enumerate(zip(truth.iter_rows(named=True), lists, strict=True))
    ]
