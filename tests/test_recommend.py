"""Recommendations from a real (tiny) trained bundle: exclusion, ordering, scores, and every user error."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from trained_lake import (
    DEFINITION,
    N_ITEMS,
    RATED_DEFINITION,
    UNSEEN_ID,
    build_lake,
    ids,
    item_ids,
    movies,
    walk_sessions,
)

from sbr_dagster.data import schema
from sbr_dagster.data.arrays import Sessions
from sbr_dagster.errors import InputDataError
from sbr_dagster.reports.markdown import samples_markdown
from sbr_dagster.serving import bundle
from sbr_dagster.serving import recommender as recommend
from sbr_dagster.serving.catalog import load_recommender
from sbr_dagster.serving.samples import sample_sessions


@pytest.fixture(scope="module")
def lake_root(tmp_path_factory) -> Path:
    return build_lake(tmp_path_factory)


@pytest.fixture(scope="module")
def recommender(lake_root) -> recommend.Recommender:
    return load_recommender(DEFINITION, lake_root=lake_root)


@pytest.fixture(scope="module")
def rated(lake_root) -> recommend.Recommender:
    return load_recommender(RATED_DEFINITION, lake_root=lake_root)


def model_scores(rec: recommend.Recommender, dense_history: list[int], ratings=None) -> np.ndarray:
    item_ratings = None if ratings is None else [np.asarray(ratings)]
    return rec.model.score_next(Sessions.of_histories([np.asarray(dense_history)], item_ratings))[0]


def test_recommendations_exclude_history_are_distinct_and_best_first(recommender):
    history = ids(3, 4, 5)
    result = recommender.recommend(history, k=6)
    assert dict(result.schema) == recommend.RECOMMENDATIONS
    assert result["rank"].to_list() == list(range(1, 7))
    assert result["item_id"].n_unique() == 6
    assert not set(result["item_id"].to_list()) & set(history)
    assert result["score"].is_sorted(descending=True)
    titles = result.join(movies(), on="item_id", suffix="_movie")
    assert titles["title"].to_list() == titles["title_movie"].to_list()


def test_scores_are_the_models_and_the_list_is_its_top(recommender):
    history = [3, 4, 5]
    expected = model_scores(recommender, history)
    result = recommender.recommend(ids(*history), k=4)
    dense = result.join(recommender.item_index, on="item_id", maintain_order="left")["item_idx"].to_numpy()
    np.testing.assert_allclose(result["score"].to_numpy(), expected[dense], rtol=1e-6)
    others = np.delete(expected, history + dense.tolist())
    assert result["score"].min() >= others.max()


def test_include_history_ranks_every_item(recommender):
    history = ids(0, 1)
    result = recommender.recommend(history, k=N_ITEMS, exclude_history=False)
    assert sorted(result["item_id"].to_list()) == sorted(item_ids().tolist())
    with pytest.raises(InputDataError, match=f"k <= {N_ITEMS - 2}"):
        recommender.recommend(history, k=N_ITEMS)


def test_a_model_that_rules_out_the_history_never_recommends_it(rated):
    history = ids(0, 1)
    result = rated.recommend(history, k=N_ITEMS - 2, exclude_history=False)
    assert sorted(result["item_id"].to_list()) == sorted(set(item_ids().tolist()) - set(history))
    with pytest.raises(InputDataError, match=f"k <= {N_ITEMS - 2}"):
        rated.recommend(history, k=N_ITEMS, exclude_history=False)


def test_many_histories_score_like_one_at_a_time(recommender):
    histories = [ids(1), ids(7, 8, 9, 10), ids(2, 11)]
    together = recommender.recommend_many(histories, k=3)
    for history, frame in zip(histories, together, strict=True):
        single = recommender.recommend(history, k=3)
        assert frame["item_id"].to_list() == single["item_id"].to_list()
        np.testing.assert_allclose(frame["score"].to_numpy(), single["score"].to_numpy(), rtol=1e-5)


def test_ratings_are_ignored_by_a_plain_model(recommender):
    history = ids(2, 3)
    assert recommender.recommend(history, [1, 5], k=5).equals(recommender.recommend(history, k=5))


def test_rating_aware_model_uses_ratings_with_neutral_default(rated):
    history = ids(2, 3)
    low, high = rated.scores([history], [[1, 1]]), rated.scores([history], [[5, 5]])
    assert not np.allclose(low, high)
    neutral = [[recommend.NEUTRAL_RATING] * 2]
    np.testing.assert_array_equal(rated.scores([history]), rated.scores([history], neutral))
    np.testing.assert_allclose(
        rated.scores([history], [[1, 1]], exclude_history=False)[0],
        model_scores(rated, [2, 3], [1, 1]),
        rtol=1e-6,
    )


@pytest.mark.parametrize(
    ("history", "ratings", "k", "message"),
    [
        ([], None, 10, "history is empty"),
        ([100, 5, 6], None, 10, "2 movie id.* not MovieLens 1M movies: 5, 6"),
        (
            [100, UNSEEN_ID],
            None,
            10,
            f"never occur in this model's training data.*{UNSEEN_ID} Movie {UNSEEN_ID}",
        ),
        ([100], None, 0, "k must be a whole number >= 1"),
        ([100], None, N_ITEMS, f"only {N_ITEMS - 1} movies can be recommended"),
        ([100, 107], [5], 10, "2 movies but 1 ratings"),
        ([100, 107], [5, 6], 10, "ratings must be 1..5"),
    ],
)
def test_user_mistakes_are_explained(recommender, history, ratings, k, message):
    with pytest.raises(InputDataError, match=message):
        recommender.recommend(history, ratings, k=k)


def test_unseen_movies_can_be_skipped_with_a_warning(recommender):
    warnings: list[str] = []
    skipped = recommender.recommend([*ids(3), UNSEEN_ID], [4, 2], k=5, unknown="skip", warn=warnings.append)
    assert skipped.equals(recommender.recommend(ids(3), k=5))
    assert len(warnings) == 1 and f"Movie {UNSEEN_ID}" in warnings[0]
    with pytest.raises(InputDataError, match="only movies unseen in training"):
        recommender.recommend([UNSEEN_ID], unknown="skip", warn=warnings.append)


def test_missing_model_names_the_asset_to_materialize(lake_root):
    with pytest.raises(
        InputDataError,
        match=r"dg launch --assets '\+gap_1d/gru4rec'.*trained models in .*: gap_1h/gru4rec, user/gru4rec",
    ):
        load_recommender("gap_1d", lake_root=lake_root)


def test_missing_movies_table_names_the_asset(tmp_path):
    with pytest.raises(InputDataError, match=r"no movies table.*dg launch --assets 'raw/movies'"):
        load_recommender(DEFINITION, lake_root=tmp_path)


def _test_split(n_sessions: int = 8) -> pl.DataFrame:
    items, offsets = walk_sessions(seed=5, n_sessions=n_sessions, length=6)
    session = np.repeat(np.arange(n_sessions), np.diff(offsets))
    return pl.DataFrame(
        {
            "session_id": session,
            "user_id": session + 40,
            "item_id": item_ids()[items],
            "rating": np.full(items.size, 4),
            "timestamp": np.arange(items.size) * 60_000_000,
        },
        schema=schema.SPLIT,
    )


def test_sample_markdown_shows_history_truth_and_marks_hits(recommender):
    test = _test_split()

    def sample(k: int) -> str:
        samples = sample_sessions(recommender, test, n_sessions=4, prefix_len=2, k=k, seed=1)
        return samples_markdown(samples, k=k, prefix_len=2, seed=1)

    every = sample(N_ITEMS - 2)  # every candidate listed: every next movie is a hit
    assert every.startswith("**4 of 4**") and every.count("✓") == 2 * 4
    sessions = [int(s) for s in re.findall(r"#### Session (\d+)", every)]
    assert len(sessions) == 4 and set(sessions) <= set(test["session_id"].to_list())
    heads = (
        test.filter(pl.col("session_id").is_in(sessions)).group_by("session_id", maintain_order=True).head(3)
    )
    histories = heads.group_by("session_id", maintain_order=True).agg(pl.col("item_id").head(2))
    truths = heads.group_by("session_id", maintain_order=True).agg(pl.col("item_id").last())["item_id"]
    scores = recommender.scores(histories["item_id"].to_list())
    dense = truths.to_frame().join(recommender.item_index, on="item_id", maintain_order="left")["item_idx"]
    ranks = (scores >= scores[np.arange(len(sessions)), dense.to_numpy()][:, None]).sum(axis=1)
    k = int(ranks.min())  # at least one hit; misses too unless every rank is the same
    text = sample(k)
    assert text.startswith(f"**{int((ranks <= k).sum())} of 4**") and text == sample(k)
    blocks = text.split("#### Session ")[1:]
    for block, truth, rank, history in zip(blocks, truths, ranks, histories["item_id"], strict=True):
        title = f"Movie {truth}, The"
        assert f"Movie {history[0]}, The" in block.split("Watched next")[0]
        if rank <= k:
            assert f"Watched next: **{title}" in block and f"| **{title}" in block and "✓" in block
        else:
            assert f"Watched next: {title}" in block and f"rank {rank}" in block and "✓" not in block


def test_sample_markdown_needs_long_enough_sessions(recommender):
    with pytest.raises(InputDataError, match="more than 6 movies"):
        sample_sessions(recommender, _test_split(), prefix_len=6)


def test_a_bundle_saved_before_models_had_names_still_loads(lake_root, tmp_path):
    """config.json used to be GRU4Rec's settings, flat, beside the definition."""
    import json
    import shutil

    legacy = tmp_path / DEFINITION / "gru4rec"
    shutil.copytree(lake_root / DEFINITION / "gru4rec", legacy)
    config = json.loads((legacy / bundle.CONFIG_FILE).read_text())
    (legacy / bundle.CONFIG_FILE).write_text(json.dumps({"definition": DEFINITION, **config["settings"]}))
    loaded = bundle.load_bundle(legacy)
    assert loaded.config["model"] == "gru4rec" and loaded.model.config.layers == (8,)
    sessions = Sessions.of_histories([np.array([1, 2, 3])])
    current = bundle.load_bundle(lake_root / DEFINITION / "gru4rec").model
    np.testing.assert_array_equal(loaded.model.score_next(sessions), current.score_next(sessions))
