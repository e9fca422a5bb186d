"""Training and evaluation assets, and the sweep with its leaderboard, end to end through Dagster."""

import dagster as dg
import polars as pl
import pytest
from pipeline_runs import checks_by_name, run_job

from sbr_dagster.errors import InputDataError
from sbr_dagster.evaluation import comparison
from sbr_dagster.evaluation.metrics_table import METRICS_SCHEMA
from sbr_dagster.experiments.declarations import parse_experiments
from sbr_dagster.lake import layout
from sbr_dagster.models import registry

TINY = {"layers": [32], "epochs": 3, "batch_size": 16, "learning_rate": 0.01}
WARNING_CHECK = "timeline/comparison:best_trained_model_beats_every_baseline"  # not a gate: a warning


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
    assert set(metrics["model"]) == {registry.PRIMARY, *registry.BASELINES}
    assert set(metrics["split"]) == {"valid", "test"}
    assert set(metrics["protocol"]) == {"timeline"}
    assert set(metrics["ranking"]) == {"all", "unseen"} and set(metrics["slice"]) == {"all", "liked"}
    # Every model ranked every shared target, and the liked slice is the targets rated >= 4.
    targets = pl.read_parquet(lake_root / "timeline" / "targets.parquet")
    for split in ("valid", "test"):
        shared = targets.filter(pl.col("split") == split)
        counts = (
            metrics.filter(pl.col("split") == split).group_by("slice").agg(pl.col("n_predictions").unique())
        )
        assert dict(counts.iter_rows()) == {"all": [shared.height], "liked": [int(shared["liked"].sum())]}
    test = pl.read_parquet(layout.table_path(lake_root, ("gap_1h", "test")))
    assert test.height == targets.filter(pl.col("split") == "test").height
    # Among unseen movies a target never ranks lower than among all of them.
    ranks = pl.read_parquet(lake_root / "gap_1h" / "ranks.parquet")
    assert (ranks["rank_unseen"] <= ranks["rank"]).all() and (ranks["rank_unseen"] < ranks["rank"]).any()
    # No train event at or after T_valid.
    cuts = pl.read_parquet(lake_root / "timeline" / "cuts.parquet")
    train = pl.read_parquet(layout.table_path(lake_root, ("gap_1h", "train")))
    assert train["timestamp"].max() < cuts["valid_cut"].item()
    for name in ("gap_1h/metrics:same_targets_as_every_variant", "gap_1h/metrics:contexts_precede_targets"):
        assert checks[name], name


def test_comparison_pairs_gru4rec_with_every_baseline(trained):
    result, lake_root = trained
    table = pl.read_parquet(lake_root / "timeline" / "comparison.parquet")
    assert table.columns[:9] == [
        "variant",
        "model",
        "split",
        "slice",
        "ranking",
        "k",
        "recall",
        "mrr",
        "n_predictions",
    ]
    found = pl.read_parquet(lake_root / "timeline" / "findings.parquet")
    assert set(found["b"]) == {f"gap_1h/{m}" for m in registry.BASELINES}
    # every baseline, on all / liked targets, ranked among all / unseen
    assert found.height == len(registry.BASELINES) * 2 * 2
    row = found.filter(
        (pl.col("b") == "gap_1h/pop") & (pl.col("slice") == "all") & (pl.col("ranking") == "all")
    )
    at20 = table.filter(
        (pl.col("split") == "test")
        & (pl.col("k") == 20)
        & (pl.col("slice") == "all")
        & (pl.col("ranking") == "all")
    )
    recall = dict(zip(at20["model"], at20["recall"], strict=True))
    assert row["delta_recall"].item() == pytest.approx(recall["gru4rec"] - recall["pop"])
    assert (
        row["delta_recall_ci_low"].item() <= row["delta_recall"].item() <= row["delta_recall_ci_high"].item()
    )
    meta = result.asset_materializations_for_node("timeline__comparison")[0].metadata
    assert "gap_1h/gru4rec vs gap_1h/pop" in meta["findings"].value
    assert "data:image/png;base64," in meta["chart"].value


def test_the_warning_check_says_whether_the_best_trained_model_beats_every_baseline(trained):
    result, lake_root = trained
    found = pl.read_parquet(lake_root / "timeline" / "findings.parquet")
    margins = comparison.baseline_margins(found, registry.TRAINED)
    assert margins["variant"].to_list() == ["gap_1h"] and margins["model"].to_list() == ["gru4rec"]
    headline = found.filter((pl.col("slice") == "all") & (pl.col("ranking") == "all"))
    strongest = headline.sort("recall_b").row(-1, named=True)
    assert margins["strongest_baseline"][0] == strongest["b"].split("/")[1]
    assert margins["delta_recall_ci_low"][0] == strongest["delta_recall_ci_low"]
    beats = bool((headline["delta_recall_ci_low"] > 0).all())
    assert margins["beats_every_baseline"][0] == beats
    evaluation = next(
        e for e in result.get_asset_check_evaluations() if e.asset_check_key.to_user_string() == WARNING_CHECK
    )
    assert evaluation.passed == beats and evaluation.severity == dg.AssetCheckSeverity.WARN
    assert "gap_1h" in evaluation.metadata["margins"].value


@pytest.fixture(scope="module")
def blended(trained, ml1m_like_dir):
    _, lake_root = trained
    run_config = {"ops": {"gap_1h__blend": {"config": {"n_bootstrap": 200}}}}
    result = run_job(
        "blend", data=ml1m_like_dir, lake_root=lake_root, names=("gap_1h",), run_config=run_config
    )
    return result, lake_root


def test_the_blend_job_chooses_weights_on_validation_and_tests_the_blend_once(blended):
    result, lake_root = blended
    assert result.success
    metadata = result.asset_materializations_for_node("gap_1h__blend")[0].metadata
    weights = metadata["weights"].value
    neighbour = metadata["neighbour"].value
    # The main job's trained model and the neighbour method best alone on validation.
    assert list(weights) == [registry.PRIMARY, neighbour] and neighbour in ("sknn", "vsknn", "stan")
    assert sum(weights.values()) == pytest.approx(1) and min(weights.values()) >= 0
    alone = metadata["valid_alone"].value
    assert all(name in alone for name in (registry.PRIMARY, "sknn", "vsknn", "stan"))
    metrics = pl.read_parquet(layout.table_path(lake_root, ("gap_1h", layout.BLEND)))
    assert dict(metrics.schema) == METRICS_SCHEMA
    assert set(metrics["model"]) == {"blend"} and set(metrics["split"]) == {"test"}
    targets = pl.read_parquet(layout.table_path(lake_root, layout.TARGETS)).filter(pl.col("split") == "test")
    assert (metrics.filter(pl.col("slice") == "all")["n_predictions"] == targets.height).all()
    ranks = pl.read_parquet(layout.table_path(lake_root, ("gap_1h", "blend_ranks")))
    assert ranks.height == targets.height and (ranks["rank_unseen"] <= ranks["rank"]).all()


def test_the_blend_is_paired_with_the_member_best_alone_on_validation(blended):
    result, lake_root = blended
    metadata = result.asset_materializations_for_node("gap_1h__blend")[0].metadata
    single = metadata["best_single_on_valid"].value
    findings = metadata["findings"].value
    assert "gap_1h/blend" in findings and f"gap_1h/{single}" in findings
    main = pl.read_parquet(lake_root / "gap_1h" / "ranks.parquet")
    assert single in set(main["model"])  # its own test ranks, from the main job


def test_the_blend_names_a_missing_main_job_and_a_wrong_neighbour(ml1m_like_dir, tmp_path):
    assert run_job("preprocess", data=ml1m_like_dir, lake_root=tmp_path, names=("gap_1h",)).success
    with pytest.raises(InputDataError, match=r"run the main job first"):
        run_job("blend", data=ml1m_like_dir, lake_root=tmp_path, names=("gap_1h",))
    config = {"ops": {"gap_1h__blend": {"config": {"neighbours": ["gru4rec"]}}}}
    with pytest.raises(InputDataError, match=r"\['gru4rec'\] is not a baseline; name one or more of pop"):
        run_job("blend", data=ml1m_like_dir, lake_root=tmp_path, names=("gap_1h",), run_config=config)
    assert not layout.table_path(tmp_path, ("gap_1h", layout.BLEND)).exists()


def test_days_protocol_stays_selectable(ml1m_like_dir, tmp_path):
    """split_method days: each definition's own test sessions, every event after a session's first."""
    run_config = {
        "ops": {"gap_1h__gru4rec": {"config": TINY}, "gap_1h__metrics": {"config": {"n_bootstrap": 50}}}
    }
    result = run_job(
        "everything", data=ml1m_like_dir, lake_root=tmp_path, names=("gap_1h",), run_config=run_config,
        split_method="days",
    )  # fmt: skip
    assert result.success
    assert all(checks_by_name(result).values())
    metrics = pl.read_parquet(tmp_path / "gap_1h" / "metrics.parquet")
    assert set(metrics["protocol"]) == {"days"}
    test = pl.read_parquet(layout.table_path(tmp_path, ("gap_1h", "test")))
    assert (
        metrics.filter((pl.col("split") == "test") & (pl.col("slice") == "all"))["n_predictions"]
        == test.height - test["session_id"].n_unique()
    ).all()
    meta = result.asset_materializations_for_node("timeline__comparison")[0].metadata
    assert "definitions are not paired, only the models of each definition" in meta["findings"].value
    # The models of the definition ranked the same predictions: they pair, sessions as the unit.
    found = pl.read_parquet(layout.table_path(tmp_path, ("timeline", "findings")))
    assert found.height > 0 and set(found["topic"]) == {"model"}
    assert found["a"].str.starts_with("gap_1h/").all() and found["b"].str.starts_with("gap_1h/").all()
    gru = found.filter(pl.col("a") == "gap_1h/gru4rec", pl.col("slice") == "all", pl.col("ranking") == "all")
    headline = metrics.filter(
        pl.col("model") == "gru4rec", pl.col("split") == "test", pl.col("slice") == "all",
        pl.col("ranking") == "all", pl.col("k") == 20,
    )  # fmt: skip
    assert gru["recall_a"].to_list() == [pytest.approx(headline["recall"][0])] * gru.height
    assert (gru["n_predictions"] == headline["n_predictions"][0]).all()


def test_metadata_shows_curve_and_comparison(trained):
    result, _ = trained
    model_meta = result.asset_materializations_for_node("gap_1h__gru4rec")[0].metadata
    assert model_meta["epochs_run"].value == TINY["epochs"] or model_meta["stopped_early"].value
    assert model_meta["device"].value
    assert "data:image/png;base64," in model_meta["curve"].value
    metrics_meta = result.asset_materializations_for_node("gap_1h__metrics")[0].metadata
    assert 0 <= metrics_meta["test/gru4rec/all/all/recall@20"].value <= 1
    for name in registry.BASELINES:
        assert name in metrics_meta["comparison_test_all"].value
        assert name in metrics_meta["comparison_test_unseen"].value
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
        test = metrics.filter((pl.col("split") == "test") & (pl.col("k") == 20))
        for ranking, slice_name, prefix in (
            ("all", "all", "test_"),
            ("unseen", "liked", "test_unseen_liked_"),
        ):
            at20 = test.filter((pl.col("ranking") == ranking) & (pl.col("slice") == slice_name)).row(
                0, named=True
            )
            assert row[f"{prefix}recall_20"] == at20["recall"]
            assert row[f"{prefix}mrr_20"] == at20["mrr"]
    meta = result.asset_materializations_for_node("experiments__leaderboard")[0].metadata
    assert "wide (48 units) vs base" in meta["findings"].value
    # On the timeline protocol even a rating policy ranks the same targets: it is paired too.
    assert "liked (ratings >= 3) vs base, all targets, ranked among all movies" in meta["findings"].value
    assert "unpaired" not in meta["findings"].value


@pytest.mark.real_data
def test_real_ml1m_small_model_beats_popularity(real_ml1m_dir, tmp_path):
    """CI's end-to-end run on the real data: a small GRU4Rec for two epochs and a tiny SASRec for
    one, both beating most-popular, every check green."""
    small = {"layers": [64], "epochs": 2, "patience": 2}
    tiny_sasrec = {"blocks": 1, "dim": 32, "max_len": 50, "epochs": 1}
    run_config = {
        "ops": {
            "user__gru4rec": {"config": small},
            "user__sasrec": {"config": tiny_sasrec},
            "user__metrics": {"config": {"n_bootstrap": 200}},
        }
    }
    result = run_job(
        "everything", data=real_ml1m_dir, lake_root=tmp_path, names=("user",), run_config=run_config
    )
    assert result.success
    checks = checks_by_name(result)
    assert checks["raw/ratings:ml1m_fingerprint"]
    assert checks["user/metrics:gru4rec_beats_popularity"]
    assert checks["user/metrics:sasrec_beats_popularity"]
    assert all(checks.values()), checks
    metrics = pl.read_parquet(tmp_path / "user" / "metrics.parquet")
    headline = metrics.filter((pl.col("split") == "test") & (pl.col("k") == 20) & (pl.col("slice") == "all"))
    for ranking in ("all", "unseen"):
        at20 = dict(headline.filter(pl.col("ranking") == ranking).select("model", "recall").iter_rows())
        assert at20["gru4rec"] > at20["pop"] and at20["sasrec"] > at20["pop"], ranking
    # The acceptance: >= 80,000 test targets from >= 1,000 viewers, all of them ranked.
    targets = pl.read_parquet(tmp_path / "timeline" / "targets.parquet").filter(pl.col("split") == "test")
    assert targets.height >= 80_000 and targets["user_id"].n_unique() >= 1_000
    assert headline["n_predictions"].unique().to_list() == [targets.height]
