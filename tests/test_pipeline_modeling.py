"""Training and evaluation assets, and the sweep with its leaderboard, end to end through Dagster."""

import polars as pl
import pytest
from pipeline_runs import checks_by_name, run_job

from sbr_dagster.evaluation.metrics_table import METRICS_SCHEMA
from sbr_dagster.experiments.declarations import parse_experiments
from sbr_dagster.lake import layout

TINY = {"layers": [32], "epochs": 3, "batch_size": 16, "learning_rate": 0.01}


@pytest.fixture(scope="module")
def trained(ml1m_like_dir, tmp_path_factory):
    lake_root = tmp_path_factory.mktemp("lake")
    run_config = {
        "ops": {"gap_1h__gru4rec": {"config": TINY}, "gap_1h__metrics": {"config": {"n_bootstrap": 200}}}
    }
    result = run_job(
        "everything", data=ml1m_like_dir, lake_root=lake_root, names=("gap_1h",), run_config=run_config
    )
    return result, lake_root


def test_training_and_evaluation_assets(trained):
    result, lake_root = trained
    assert result.success
    checks = checks_by_name(result)
    assert checks["gap_1h/metrics:gru4rec_beats_popularity"]
    assert checks["gap_1h/metrics:every_event_ranked"]
    assert all(checks.values()), checks
    bundle_dir = lake_root / "gap_1h" / "gru4rec"
    for name in ("model.keras", "item_index.parquet", "config.json", "history.parquet", "summary.json"):
        assert (bundle_dir / name).is_file(), name
    metrics = pl.read_parquet(lake_root / "gap_1h" / "metrics.parquet")
    assert dict(metrics.schema) == METRICS_SCHEMA
    assert set(metrics["model"]) == {"gru4rec", "pop", "markov", "sr", "item_knn"}
    assert set(metrics["split"]) == {"valid", "test"}
    test = pl.read_parquet(layout.table_path(lake_root, ("gap_1h", "test")))
    assert (
        metrics.filter(pl.col("split") == "test")["n_predictions"]
        == test.height - test["session_id"].n_unique()
    ).all()


def test_metadata_shows_curve_and_comparison(trained):
    result, _ = trained
    model_meta = result.asset_materializations_for_node("gap_1h__gru4rec")[0].metadata
    assert model_meta["epochs_run"].value == TINY["epochs"] or model_meta["stopped_early"].value
    assert model_meta["device"].value
    assert "data:image/png;base64," in model_meta["curve"].value
    metrics_meta = result.asset_materializations_for_node("gap_1h__metrics")[0].metadata
    assert 0 <= metrics_meta["test/gru4rec/recall@20"].value <= 1
    assert "item_knn" in metrics_meta["comparison_test"].value
    samples = result.asset_materializations_for_node("gap_1h__sample_recommendations")[0].metadata
    assert "Watched next:" in samples["samples"].value


def test_sweep_leaderboard_matches_evaluations(ml1m_like_dir, tmp_path):
    experiments = parse_experiments(
        {
            "defaults": {"gru4rec": TINY},
            "experiments": [
                {"name": "base", "definition": "gap_1h"},
                {
                    "name": "wide",
                    "definition": "gap_1h",
                    "settings": {"layers": [48]},
                    "compare_to": "base",
                    "change": "48 units",
                },
                {"name": "liked", "definition": "gap_1h_r3", "compare_to": "base", "change": "ratings >= 3"},
            ],
        },
        "test",
    )
    result = run_job(
        "sweep",
        data=ml1m_like_dir,
        lake_root=tmp_path,
        names=("gap_1h",),
        experiments=experiments,
        run_config={
            "ops": {f"experiments__{e.name}__metrics": {"config": {"n_bootstrap": 100}} for e in experiments}
        },
    )
    assert result.success
    board = pl.read_parquet(tmp_path / "experiments" / "leaderboard.parquet")
    assert board.height == 3
    assert set(board["experiment"]) == {"base", "wide", "liked"}
    for row in board.iter_rows(named=True):
        metrics = pl.read_parquet(tmp_path / "experiments" / row["experiment"] / "metrics.parquet")
        at20 = metrics.filter((pl.col("split") == "test") & (pl.col("k") == 20)).row(0, named=True)
        assert row["test_recall_20"] == at20["recall"]
        assert row["test_mrr_20"] == at20["mrr"]
    meta = result.asset_materializations_for_node("experiments__leaderboard")[0].metadata
    assert "wide (48 units) vs base" in meta["findings"].value
    assert "different test sets, unpaired" in meta["findings"].value


@pytest.mark.real_data
def test_real_ml1m_small_model_beats_popularity(real_ml1m_dir, tmp_path):
    """CI's end-to-end run on the real data: a small GRU4Rec, two epochs, every check green."""
    small = {"layers": [64], "epochs": 2, "patience": 2}
    run_config = {
        "ops": {"user__gru4rec": {"config": small}, "user__metrics": {"config": {"n_bootstrap": 200}}}
    }
    result = run_job(
        "everything", data=real_ml1m_dir, lake_root=tmp_path, names=("user",), run_config=run_config
    )
    assert result.success
    checks = checks_by_name(result)
    assert checks["raw/ratings:ml1m_fingerprint"]
    assert checks["user/metrics:gru4rec_beats_popularity"]
    assert all(checks.values()), checks
    metrics = pl.read_parquet(tmp_path / "user" / "metrics.parquet")
    at20 = {
        row["model"]: row["recall"]
        for row in metrics.filter((pl.col("split") == "test") & (pl.col("k") == 20)).iter_rows(named=True)
    }
    assert at20["gru4rec"] > at20["pop"]
    test = pl.read_parquet(layout.table_path(tmp_path, ("user", "test")))
    assert metrics["n_predictions"].filter(metrics["split"] == "test").unique().to_list() == [
        test.height - test["session_id"].n_unique()
    ]
