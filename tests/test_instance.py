"""The project's Dagster instance: what the documented commands record is there for the UI afterwards.

From a copy of the project's root files (its own pyproject.toml and dagster.yaml, DAGSTER_HOME
unset, as a new user has it), ``dg launch --job preprocess`` and then ``dagster asset materialize``
run as separate processes. The instance the UI would open from there (Dagster's own CLI
instance lookup, and a ``dagster dev`` asked over GraphQL) must then hold both runs, every asset
of the main job materialized with its metadata, and every asset check's passing result.
"""

from __future__ import annotations

import json

import dagster as dg
import pytest
import ui_helpers as ui
from pipeline_runs import CLI_LOG, cli, cli_env, ui_instance

from sbr_dagster.defs.pipeline import build_definitions

DEFINITION = "gap_1h"
TINY = {"layers": [16], "epochs": 2, "batch_size": 16, "learning_rate": 0.01}
WARNINGS = ("SupersessionWarning", "DeprecationWarning", "deprecated", "Traceback")


def run(tool: str, args: list[str], workdir, **paths) -> str:
    process = cli(tool, args, definition=DEFINITION, workdir=workdir, **paths)
    assert process.wait(timeout=600) == 0, (workdir / CLI_LOG).read_text()[-3000:]
    return (workdir / CLI_LOG).read_text()


@pytest.fixture(scope="module")
def project(ml1m_like_dir, tmp_path_factory):
    """Two commands of the README, one per CLI, in one project directory; returns it and the outputs."""
    workdir = tmp_path_factory.mktemp("project")
    paths = {"data": ml1m_like_dir, "lake_root": workdir / "lake"}
    run_config = workdir / "run.yaml"  # JSON is YAML
    run_config.write_text(
        json.dumps(
            {
                "ops": {
                    f"{DEFINITION}__gru4rec": {"config": TINY},
                    f"{DEFINITION}__metrics": {"config": {"n_bootstrap": 100}},
                }
            }
        )
    )
    outputs = {"dg": run("dg", ["launch", "--job", "preprocess"], workdir, **paths)}
    modeled = ",".join(
        [f"{DEFINITION}/{name}" for name in ("gru4rec", "metrics", "sample_recommendations")]
        + ["timeline/comparison"]
    )
    outputs["dagster"] = run(
        "dagster", ["asset", "materialize", "--select", modeled, "-c", str(run_config)], workdir, **paths
    )
    return workdir, paths, outputs


def everything_job():
    return build_definitions((DEFINITION,), experiments=[]).resolve_job_def("everything")


def test_both_commands_succeed_and_dg_prints_no_deprecation_warning(project):
    """``dagster asset materialize`` still works (and warns that ``dg`` supersedes it); ``dg`` is clean."""
    _, _, outputs = project
    assert all("RUN_SUCCESS" in output for output in outputs.values())
    assert not [w for w in WARNINGS if w in outputs["dg"]], outputs["dg"][-2000:]


def test_both_runs_and_every_materialization_are_in_the_ui_instance(project):
    workdir, _, _ = project
    assert (workdir / ".dagster_home").is_dir(), "the instance lives in the project, not a temporary folder"
    job = everything_job()
    with ui_instance(workdir) as instance:
        runs = instance.get_runs()
        assert len(runs) == 2 and all(r.status == dg.DagsterRunStatus.SUCCESS for r in runs)
        for key in job.asset_layer.executable_asset_keys:
            event = instance.get_latest_materialization_event(key)
            assert event is not None, f"{key.to_user_string()} never materialized in the UI's instance"
            assert event.asset_materialization.metadata, key.to_user_string()
        metrics = instance.get_latest_materialization_event(dg.AssetKey([DEFINITION, "metrics"]))
        assert 0 <= metrics.asset_materialization.metadata["test/gru4rec/all/all/recall@20"].value <= 1


def test_every_check_result_is_in_the_ui_instance(project):
    workdir, _, _ = project
    check_keys = everything_job().asset_layer.asset_graph.asset_check_keys
    assert any(key.name == "gru4rec_beats_popularity" for key in check_keys)
    with ui_instance(workdir) as instance:
        for key in check_keys:
            [record] = instance.event_log_storage.get_asset_check_execution_history(key, limit=1)
            # The warning check's verdict depends on the data; it is recorded either way, and never gates.
            warning = key.name == "best_trained_model_beats_every_baseline"
            expected = ("SUCCEEDED", "FAILED") if warning else ("SUCCEEDED",)
            assert record.status.value in expected, key.to_user_string()


def test_dagster_dev_serves_the_recorded_materializations(project):
    """The older ``dagster dev``, started afresh, shows what the commands recorded."""
    workdir, paths, _ = project
    env = cli_env(definition=DEFINITION, workdir=workdir, **paths)
    server = ui.DagsterDev(workdir, env, workdir / "dagster_dev.log", command=(ui.DAGSTER,))
    server.start()
    try:
        server.wait_ready()
        shown = server.materializations()
    finally:
        server.stop()
    for key in everything_job().asset_layer.executable_asset_keys:
        assert shown.get(key.to_user_string()), f"{key.to_user_string()} not materialized in the UI: {shown}"
    assert "test/gru4rec/all/all/recall@20" in shown[f"{DEFINITION}/metrics"]
    assert "findings" in shown["timeline/comparison"]
