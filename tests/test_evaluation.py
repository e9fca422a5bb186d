import numpy as np
import polars as pl
import pytest

from sbr_dagster.data.arrays import Sessions, prediction_index, session_arrays
from sbr_dagster.data.timeline import Replay
from sbr_dagster.errors import InputDataError
from sbr_dagster.evaluation.evaluate import RANKS_SCHEMA, evaluate
from sbr_dagster.evaluation.metrics import mrr_at, recall_at
from sbr_dagster.evaluation.metrics_table import METRICS_SCHEMA, metrics_frame
from sbr_dagster.models import registry
from sbr_dagster.reports.markdown import comparison_markdown

ITEM_INDEX = pl.DataFrame(
    {"item_id": [10, 20, 30], "item_idx": [0, 1, 2], "support": [5, 4, 3]},
    schema={"item_id": pl.Int32, "item_idx": pl.Int32, "support": pl.UInt32},
)


def _split(session_ids: list[int], item_ids: list[int]) -> pl.DataFrame:
    return pl.DataFrame(
        {"session_id": session_ids, "item_id": item_ids},
        schema={"session_id": pl.Int32, "item_id": pl.Int32},
    )


def test_session_arrays_map_items_and_keep_event_order():
    items, offsets = session_arrays(_split([5, 5, 7, 7, 7], [30, 10, 20, 30, 30]), ITEM_INDEX)
    assert items.dtype == np.int32 and offsets.dtype == np.int64
    assert items.tolist() == [2, 0, 1, 2, 2]
    assert offsets.tolist() == [0, 2, 5]


def test_session_arrays_reject_items_missing_from_the_index():
    with pytest.raises(InputDataError, match="item_id 40 in session 7"):
        session_arrays(_split([5, 5, 7, 7], [10, 20, 40, 10]), ITEM_INDEX)


def test_session_arrays_reject_sessions_out_of_order():
    with pytest.raises(InputDataError, match="not ordered by session_id"):
        session_arrays(_split([7, 7, 5, 5], [10, 20, 30, 10]), ITEM_INDEX)


def test_prediction_index_lists_every_event_but_the_first_of_each_session():
    session, event = prediction_index(np.array([0, 3, 5, 9]))
    assert session.tolist() == [0, 0, 1, 2, 2, 2]
    assert event.tolist() == [1, 2, 4, 6, 7, 8]


def test_prediction_index_rejects_single_event_sessions():
    with pytest.raises(InputDataError, match="session 1 has 1 events"):
        prediction_index(np.array([0, 3, 4, 6]))


def _frame(ranks: np.ndarray, offsets: np.ndarray, model: str = "gru", **kwargs) -> pl.DataFrame:
    groups = prediction_index(offsets)[0] if len(offsets) > 1 and np.diff(offsets).min() > 1 else offsets
    return metrics_frame(ranks, groups, definition="gap_1h", split="test", model=model, n_boot=200, **kwargs)


def test_metrics_frame_has_one_row_per_cutoff_and_intervals_only_where_asked():
    offsets = np.array([0, 3, 5, 9])
    ranks = np.array([1, 7, 30, 2, 15, 4])
    frame = _frame(ranks, offsets)
    assert frame.schema == pl.Schema(METRICS_SCHEMA)
    assert frame["k"].to_list() == [1, 5, 10, 20]
    assert frame["n_predictions"].to_list() == [6] * 4
    assert frame["recall"].to_list() == [recall_at(ranks, k) for k in (1, 5, 10, 20)]
    assert frame["mrr"].to_list() == [mrr_at(ranks, k) for k in (1, 5, 10, 20)]
    with_ci = frame.filter(pl.col("recall_ci_low").is_not_null())
    assert with_ci["k"].to_list() == [20]
    assert with_ci["mrr_ci_low"].item() <= with_ci["mrr"].item() <= with_ci["mrr_ci_high"].item()
    assert frame.filter(pl.col("k") != 20)["mrr_ci_high"].null_count() == 3


def test_metrics_frame_requires_one_rank_per_prediction():
    with pytest.raises(ValueError, match="got 5 ranks for 6 predictions"):
        _frame(np.array([1, 2, 3, 4, 5]), np.array([0, 3, 5, 9]))
    with pytest.raises(ValueError, match="ranks are 1-based"):
        _frame(np.array([1, 0, 3, 4, 5, 6]), np.array([0, 3, 5, 9]))


def test_comparison_markdown_has_a_row_per_model_with_the_interval_at_20():
    offsets = np.array([0, 3, 5, 9])
    frame = pl.concat(
        [
            _frame(np.array([1, 7, 30, 2, 15, 4]), offsets),
            _frame(np.array([3, 1, 1, 9, 40, 2]), offsets, "pop"),
        ]
    )
    lines = comparison_markdown(frame).splitlines()
    assert lines[0] == (
        "| model | Recall@1 | Recall@5 | Recall@10 | Recall@20 | MRR@1 | MRR@5 | MRR@10 | MRR@20 |"
    )
    assert len(lines) == 4
    pop = frame.filter(pl.col("model") == "pop", pl.col("k") == 20).row(0, named=True)
    cells = [cell.strip() for cell in lines[3].strip("|").split("|")]
    assert cells[0] == "pop"
    assert cells[4] == f"{pop['recall']:.3f} [{pop['recall_ci_low']:.3f}, {pop['recall_ci_high']:.3f}]"
    assert cells[1] == f"{frame.filter(pl.col('model') == 'pop', pl.col('k') == 1)['recall'].item():.3f}"


def test_comparison_markdown_labels_rows_by_split_when_splits_are_mixed():
    frame = pl.concat(
        [
            metrics_frame(np.array([1, 2]), np.zeros(2), definition="d", split=split, model="sr", n_boot=50)
            for split in ("valid", "test")
        ]
    )
    lines = comparison_markdown(frame).splitlines()
    assert lines[0].startswith("| split | model |")
    assert [line.split("|")[1].strip() for line in lines[2:]] == ["valid", "test"]


def _sessions(*sessions: list[int]) -> Sessions:
    items = np.concatenate([np.asarray(x, dtype=np.int32) for x in sessions])
    offsets = np.concatenate([[0], np.cumsum([len(x) for x in sessions])]).astype(np.int64)
    return Sessions(items, offsets, np.full(items.size, 4, np.int8), timestamps=60 * np.arange(items.size))


def test_evaluate_ranks_every_prediction_with_every_model_through_the_interface():
    train = _sessions([0, 1, 2], [1, 2, 3], [2, 3, 0], [0, 1])
    models = {name: registry.build(name) for name in registry.BASELINES}
    for model in models.values():
        model.fit(train, 4)
    splits = {"valid": _sessions([0, 1], [3, 0, 1]), "test": _sessions([1, 2, 3], [2, 3])}
    streams = {name: Replay.of_sessions(sessions) for name, sessions in splits.items()}
    result = evaluate(models, streams, definition="d", protocol="days", n_boot=50)
    assert result.metrics.schema == pl.Schema(METRICS_SCHEMA)
    assert result.ranks.schema == pl.Schema(RANKS_SCHEMA)
    for split, sessions in splits.items():
        for name, model in models.items():
            ranks = result.ranks.filter(split=split, model=name)
            assert ranks["rank"].to_list() == model.rank(sessions).tolist()
            assert ranks["group"].to_list() == prediction_index(sessions.offsets)[0].tolist()
            assert (ranks["rank_unseen"] <= ranks["rank"]).all()
            at_1 = result.metrics.filter(split=split, model=name, k=1, ranking="all", slice="all")
            assert at_1["n_predictions"].item() == sessions.n_predictions
            assert at_1["recall"].item() == recall_at(ranks["rank"].to_numpy(), 1)
            unseen = result.metrics.filter(split=split, model=name, k=20, ranking="unseen", slice="all")
            assert unseen["recall"].item() == recall_at(ranks["rank_unseen"].to_numpy(), 20)
        assert set(result.predictions_per_s) == set(models)


def test_evaluate_reports_the_liked_slice_and_the_unseen_ranking():
    """A session that re-rates a movie: the unseen ranking skips the movie seen before (not the
    target itself), and the liked slice holds only targets rated 4 or more."""
    train = _sessions([0, 1, 2], [1, 2, 3], [2, 3, 0], [0, 1], [0, 1])
    model = registry.build("pop")
    model.fit(train, 4)  # popularity order: 0, 1, 2, 3
    stream = Replay.of_sessions(
        Sessions(np.array([0, 2, 1, 2], np.int32), np.array([0, 4]), np.array([5, 2, 4, 5], np.int8))
    )
    result = evaluate({"pop": model}, {"test": stream}, definition="d", protocol="days", n_boot=20)
    ranks = result.ranks.sort("target")
    assert ranks["rank"].to_list() == [3, 2, 3]  # targets 2, 1, 2
    # 0 is seen before the first target; before the last, 0 and 1 are (2 too, but it is the target)
    assert ranks["rank_unseen"].to_list() == [2, 1, 1]
    assert ranks["liked"].to_list() == [False, True, True]
    liked = result.metrics.filter(ranking="unseen", slice="liked", k=1)
    assert liked["n_predictions"].item() == 2
    assert liked["recall"].item() == 1.0
    everything = result.metrics.filter(ranking="all", slice="liked", k=1)
    assert everything["recall"].item() == 0.0  # ranks 2 and 3 among all
