"""The tune job end to end on generated data: a 2-trial search on validation, then one test."""

import json
import shutil

import dagster as dg
import numpy as np
import polars as pl
import pytest
from pipeline_runs import resources_for, run_job

from sbr_dagster.data.arrays import Sessions
from sbr_dagster.defs.assets.tuning import best_trial_bundle
from sbr_dagster.defs.pipeline import build_definitions
from sbr_dagster.experiments import tuning
from sbr_dagster.experiments.declarations import parse_experiments
from sbr_dagster.experiments.search_space import parse_search_space
from sbr_dagster.lake import layout
from sbr_dagster.models import registry
from sbr_dagster.serving.bundle import load_bundle

SPACE = {
    "budget": {"trials": 2, "wall_s": 600},
    "models": {
        "sr": {"steps": {"low": 2, "high": 12}},
        "sasrec": {
            "dim": {"choices": [16, 32]},
            "learning_rate": {"low": 0.002, "high": 0.01, "log": True},
            "blocks": {"fixed": 1},
            "max_len": {"fixed": 50},
            "epochs": {"fixed": 2},
        },
    },
}


@pytest.fixture(scope="module")
def tuned(ml1m_like_dir, tmp_path_factory):
    lake_root = tmp_path_factory.mktemp("lake")
    defs = build_definitions(
        ("gap_1h",), resources=resources_for(ml1m_like_dir, lake_root), experiments=[],
        space=parse_search_space(SPACE, "space.yaml"), tune_models=("sr", "sasrec"),
    )  # fmt: skip
    instance = dg.DagsterInstance.ephemeral()
    assert defs.resolve_job_def("preprocess").execute_in_process(instance=instance).success
    result = defs.resolve_job_def("tune").execute_in_process(instance=instance)
    return result, lake_root


def test_the_tune_job_searches_each_model_on_validation_and_tests_the_best_once(tuned):
    result, lake_root = tuned
    assert result.success
    for model in ("sr", "sasrec"):
        trials = pl.read_parquet(layout.table_path(lake_root, layout.tuning_key("gap_1h", model)))
        assert trials.height == 2 and (trials["state"] == "complete").any()
        tuning = result.asset_materializations_for_node(f"gap_1h__tuning__{model}")[0].metadata
        best = tuning["best_settings"].value
        complete = trials.filter(pl.col("state") == "complete").sort(
            ["valid_recall_20", "valid_mrr_20", "trial"], descending=[True, True, False]
        )  # the trainer's rule: Recall@20, then MRR@20, then the earlier trial
        for name, value in best.items():
            assert complete[name][0] == (json.dumps(value) if isinstance(value, list) else value)
        assert "search" in tuning and "trials" in tuning
        metrics = pl.read_parquet(layout.table_path(lake_root, (*layout.tuned_prefix("gap_1h"), model)))
        assert set(metrics["split"]) == {"test"} and set(metrics["model"]) == {f"{model}_tuned"}
        tuned = result.asset_materializations_for_node(f"gap_1h__tuned__{model}")[0].metadata
        assert tuned["settings"].value == {**tuned["settings"].value, **best}
        targets = pl.read_parquet(layout.table_path(lake_root, layout.TARGETS))
        every = metrics.filter(pl.col("slice") == "all")["n_predictions"]
        assert (every == targets.filter(pl.col("split") == "test").height).all()
    assert (lake_root / "gap_1h" / "tuned" / "sasrec" / "model.keras").is_file()


def test_the_tune_job_pairs_every_tuned_structure_with_every_other_tuned_model(tuned):
    result, lake_root = tuned
    found = pl.read_parquet(layout.table_path(lake_root, ("tuning", "findings")))
    # SASRec (trained) against sr (a baseline), both tuned, on every slice and ranking of the same targets.
    assert set(zip(found["a"], found["b"], strict=True)) == {("gap_1h/sasrec_tuned", "gap_1h/sr_tuned")}
    assert found.height == 4 and set(found["ranking"]) == {"all", "unseen"}
    targets = pl.read_parquet(layout.table_path(lake_root, layout.TARGETS))
    every = found.filter(pl.col("slice") == "all")["n_predictions"]
    assert (every == targets.filter(pl.col("split") == "test").height).all()
    sasrec = pl.read_parquet(layout.table_path(lake_root, (*layout.tuned_prefix("gap_1h"), "sasrec")))
    headline = sasrec.filter(pl.col("slice") == "all", pl.col("ranking") == "all", pl.col("k") == 20)
    assert found.filter(pl.col("slice") == "all", pl.col("ranking") == "all")["recall_a"][0] == pytest.approx(
        headline["recall"][0]
    )
    metadata = result.asset_materializations_for_node("tuning__findings")[0].metadata
    assert metadata["paired_with_defaults"].value == []  # the main job has not run in this lake
    assert "sasrec_tuned" in metadata["findings"].value


def test_the_tuned_model_is_the_best_trials_fitted_model_not_trained_again(tuned):
    result, lake_root = tuned
    trials = pl.read_parquet(layout.table_path(lake_root, layout.tuning_key("gap_1h", "sasrec")))
    kept = load_bundle(
        layout.model_dir(lake_root, ("gap_1h", layout.TUNING), layout.best_trial_model("sasrec"))
    )
    assert kept.summary["trial"] == tuning.best_trial(trials)["trial"]
    metadata = result.asset_materializations_for_node("gap_1h__tuned__sasrec")[0].metadata
    assert metadata["refitted"].value is False
    assert result.asset_materializations_for_node("gap_1h__tuned__sr")[0].metadata["refitted"].value is True
    saved = load_bundle(layout.model_dir(lake_root, layout.tuned_prefix("gap_1h"), "sasrec"))
    assert saved.history.equals(kept.history) and saved.config == kept.config
    histories = Sessions.of_histories([np.array([0, 1, 2]), np.array([3])])
    np.testing.assert_array_equal(saved.model.score_next(histories), kept.model.score_next(histories))


def test_a_kept_model_of_another_search_is_not_taken(tuned):
    _, lake_root = tuned
    directory = layout.model_dir(lake_root, ("gap_1h", layout.TUNING), layout.best_trial_model("sasrec"))
    trials = pl.read_parquet(layout.table_path(lake_root, layout.tuning_key("gap_1h", "sasrec")))
    settings = tuning.best_settings(trials, parse_search_space(SPACE, "space.yaml").of("sasrec"))
    items = load_bundle(directory).item_index
    assert best_trial_bundle(directory, trials, settings, items) is not None
    # Another search's scores, other settings, another item index: trained again instead.
    other_scores = trials.with_columns(pl.col("valid_mrr_20") * 0.5)
    assert best_trial_bundle(directory, other_scores, settings, items) is None
    assert best_trial_bundle(directory, trials, {**settings, "dim": 8}, items) is None
    assert best_trial_bundle(directory, trials, settings, items.with_columns(pl.col("support") + 1)) is None
    assert best_trial_bundle(lake_root / "nowhere", trials, settings, items) is None


def test_the_leaderboard_gets_a_row_for_each_tuned_trained_model(tuned, ml1m_like_dir):
    _, lake_root = tuned
    tiny = {"dim": 16, "blocks": 1, "max_len": 50, "epochs": 2}
    base = {"name": "base_sasrec", "definition": "gap_1h", "model": "sasrec", "settings": tiny}
    wide = {**base, "name": "wide_sasrec", "settings": {**tiny, "dim": 32}, "compare_to": "base_sasrec"}
    experiments = parse_experiments({"experiments": [base, wide]}, "experiments.yaml")
    result = run_job(
        "sweep", data=ml1m_like_dir, lake_root=lake_root, names=("gap_1h",), experiments=experiments
    )
    assert result.success
    board = pl.read_parquet(layout.table_path(lake_root, layout.LEADERBOARD))
    row = board.filter(pl.col("experiment") == "gap_1h_sasrec_tuned").row(0, named=True)
    tuned_metrics = pl.read_parquet(layout.table_path(lake_root, (*layout.tuned_prefix("gap_1h"), "sasrec")))
    headline = tuned_metrics.filter(pl.col("slice") == "all", pl.col("ranking") == "all", pl.col("k") == 20)
    assert row["test_recall_20"] == pytest.approx(headline["recall"][0]) and row["model"] == "sasrec"
    kept = load_bundle(layout.model_dir(lake_root, layout.tuned_prefix("gap_1h"), "sasrec"))
    assert row["dim"] == kept.config["settings"]["dim"] and row["best_epoch"] == kept.summary["best_epoch"]
    assert "sr_tuned" not in " ".join(board["experiment"])  # baselines have no tuned bundle: not a sweep row
    # Compared, paired on the same targets, with the sweep's SASRec closest to the defaults.
    found = result.asset_materializations_for_node("experiments__leaderboard")[0].metadata["findings"].value
    assert "gap_1h_sasrec_tuned (settings tuned on validation" in found and "vs base_sasrec" in found
    assert "paired on the same test predictions" in found


def test_the_main_jobs_model_stands_in_for_the_trial_with_its_settings(tuned, ml1m_like_dir, tmp_path):
    _, fixture_lake = tuned
    lake_root = tmp_path / "lake"
    shutil.copytree(fixture_lake, lake_root)
    trials = pl.read_parquet(layout.table_path(lake_root, layout.tuning_key("gap_1h", "sasrec")))
    best = tuning.best_trial(trials)
    # As if the main job had trained the best trial's settings: its model where the main job keeps it.
    shutil.copytree(
        layout.model_dir(lake_root, ("gap_1h", layout.TUNING), layout.best_trial_model("sasrec")),
        layout.model_dir(lake_root, ("gap_1h",), "sasrec"),
    )
    kept = {"dim": best["dim"], "learning_rate": best["learning_rate"], "blocks": 1, "max_len": 50}
    dropout = registry.make_config("sasrec").dropout  # searched: the defaults trial takes it
    searched = {"dropout": {"choices": [dropout, 0.4]}, "epochs": {"fixed": 2}}
    space = {
        "budget": {"trials": 1, "wall_s": 600},
        "models": {"sasrec": {**searched, **{name: {"fixed": value} for name, value in kept.items()}}},
    }
    defs = build_definitions(
        ("gap_1h",), resources=resources_for(ml1m_like_dir, lake_root), experiments=[],
        space=parse_search_space(space, "space.yaml"), tune_models=("sasrec",),
    )  # fmt: skip
    result = defs.resolve_job_def("tune").execute_in_process(instance=dg.DagsterInstance.ephemeral())
    assert result.success
    again = pl.read_parquet(layout.table_path(lake_root, layout.tuning_key("gap_1h", "sasrec")))
    row = again.row(0, named=True)
    assert row["fitted_by"] == "gap_1h/sasrec" and row["state"] == "complete"
    # Scored on validation exactly as its own trial scored it when it was trained.
    assert (row["valid_recall_20"], row["valid_mrr_20"]) == (best["valid_recall_20"], best["valid_mrr_20"])
    metadata = result.asset_materializations_for_node
    assert metadata("gap_1h__tuning__sasrec")[0].metadata["n_reused"].value == 1
    assert metadata("gap_1h__tuned__sasrec")[0].metadata["refitted"].value is False
