"""The Dagster UI, used as a person uses it: ``dg dev`` after a ``dg launch``, opened in headless Chromium.

In a copy of the project's root files (its pyproject.toml and dagster.yaml, no DAGSTER_HOME), one
definition (gap_1h) is materialized on generated data with a tiny model by the README's main
command; ``dg dev``, started afterwards, serves the project's instance, and the browser must show
the pipeline's assets and the metrics the run recorded. Screenshots go to ``SBR_UI_SCREENSHOT_DIR``
(CI keeps them) or the test's temporary folder.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import polars as pl
import pytest
import ui_helpers as ui
import yaml
from pipeline_runs import project_copy

from sbr_dagster.models import registry

DEFINITION = "gap_1h"
TINY = {"layers": [32], "epochs": 3, "batch_size": 16, "learning_rate": 0.01}
ASSET_KEYS = [
    "raw/ratings",
    "raw/movies",
    *(f"{DEFINITION}/{name}" for name in ("sessions", "cleansed", "train", "valid", "test", "item_index")),
    f"{DEFINITION}/gru4rec",
    f"{DEFINITION}/metrics",
]
MODELS = (registry.PRIMARY, *registry.BASELINES)  # the main job evaluates each of them

pytestmark = [
    pytest.mark.ui,
    pytest.mark.skipif(ui.browser_missing() is not None, reason=f"UI test: {ui.browser_missing()}"),
]


@pytest.fixture
def project(ml1m_like_dir, tmp_path) -> Path:
    """A project root with the repository's pyproject.toml and dagster.yaml, as a new user has it."""
    return project_copy(tmp_path / "project")


@pytest.fixture
def pipeline_env(ml1m_like_dir, project) -> dict[str, str]:
    """The environment both the run and ``dg dev`` see: one definition, a tiny sweep and tuning, temp
    dirs."""
    experiments = project / "experiments.yaml"
    experiments.write_text(
        yaml.safe_dump(
            {"defaults": {"gru4rec": TINY}, "experiments": [{"name": "tiny", "definition": DEFINITION}]}
        )
    )
    env = {name: value for name, value in os.environ.items() if name != "DAGSTER_HOME"}
    return {
        **env,
        "SBR_ML1M_DIR": str(ml1m_like_dir),
        "SBR_DATA_LAKE": str(project / "lake"),
        "SBR_SESSION_DEFINITIONS": DEFINITION,
        "SBR_EXPERIMENTS": str(experiments),
        "SBR_TUNE_MODELS": "sr",  # one model's tuning assets, as a tiny sweep: a readable lineage
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }


@pytest.fixture
def materialized(pipeline_env, project) -> dict[str, str]:
    """The README's main command, ``dg launch --job everything``, recorded in the project's instance."""
    run_config = project / "run.yaml"
    run_config.write_text(
        yaml.safe_dump(
            {
                "ops": {
                    f"{DEFINITION}__gru4rec": {"config": TINY},
                    f"{DEFINITION}__metrics": {"config": {"n_bootstrap": 200}},
                }
            }
        )
    )
    result = subprocess.run(
        [str(ui.DG), "launch", "--job", "everything", "-c", str(run_config)],
        cwd=project,
        env=pipeline_env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "RUN_SUCCESS" in result.stdout + result.stderr
    return pipeline_env


@pytest.fixture
def server(materialized, project, tmp_path):
    """``dg dev`` started afresh in the project, after the run's process has exited."""
    dev = ui.DagsterDev(project, materialized, tmp_path / "dg_dev.log")
    try:
        yield dev
    finally:
        dev.stop()  # a no-op when the test already stopped it


@pytest.fixture
def screenshot_dir(tmp_path) -> Path:
    directory = Path(os.environ.get("SBR_UI_SCREENSHOT_DIR") or tmp_path / "screenshots")
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def test_ui_shows_the_pipeline_and_its_metrics(server, materialized, screenshot_dir, tmp_path, capsys):
    metrics = pl.read_parquet(Path(materialized["SBR_DATA_LAKE"]) / DEFINITION / "metrics.parquet")
    recall_20 = metrics.filter(
        (pl.col("split") == "test")
        & (pl.col("model") == "gru4rec")
        & (pl.col("k") == 20)
        & (pl.col("ranking") == "all")
        & (pl.col("slice") == "all")
    )["recall"].item()
    shots = {
        "graph": screenshot_dir / "ui_gap_1h_asset_graph.png",
        "metrics": screenshot_dir / "ui_gap_1h_metrics.png",
        "comparison": screenshot_dir / "ui_timeline_comparison.png",
    }

    server.start()
    server.wait_ready()
    with ui.chromium(tmp_path / "chromium_profile") as browser:
        try:
            # The catalog lists every asset of the pipeline by key, each materialized by the run.
            browser.get(server.base_url + "/assets")
            ui.wait_for_texts(browser, [key.replace("/", " / ") for key in ASSET_KEYS])
            rows = ui.wait_for_rows(browser, ASSET_KEYS, "Materialized")
            ui.dismiss_dialogs(browser)
            assert DEFINITION in rows[f"{DEFINITION}/metrics"].split("\n")  # its group

            # The definition's asset graph draws its assets, from sessions to metrics.
            location = server.location_names()[0]
            browser.get(f"{server.base_url}/locations/{location}/asset-groups/{DEFINITION}")
            nodes = [key.rsplit("/", 1)[1] for key in ASSET_KEYS]
            # (at the zoom that fits the whole graph, nodes show names only; the catalog shows status)
            ui.wait_for_texts(browser, nodes, absent=("Loading...",))
            ui.dismiss_dialogs(browser)
            browser.save_screenshot(str(shots["graph"]))

            # The metrics asset's page shows the run's metadata: the numbers and the comparison table.
            browser.get(f"{server.base_url}/assets/{DEFINITION}/metrics")
            ui.wait_for_texts(browser, ["test/gru4rec/all/all/recall@20", "comparison_test_all"])
            ui.dismiss_dialogs(browser)
            shown = float(ui.metadata_value(browser, "test/gru4rec/all/all/recall@20"))
            assert shown == pytest.approx(recall_20)
            comparison = ui.folded_markdown(browser, "comparison_test_all")
            for model in MODELS:
                assert model in comparison, comparison
            ui.scroll_to_metadata(browser, "comparison_test_all")
            browser.save_screenshot(str(shots["metrics"]))

            # The shared-test comparison: paired verdicts in sentences, and its chart.
            browser.get(f"{server.base_url}/assets/timeline/comparison")
            ui.wait_for_texts(browser, ["findings", "chart"])
            ui.dismiss_dialogs(browser)
            # Long Markdown folds behind a button; its sentences are tested on the run's metadata.
            assert ui.metadata_value(browser, "findings").strip(), "the comparison has findings"
            ui.scroll_to_metadata(browser, "chart")
            browser.save_screenshot(str(shots["comparison"]))
        except BaseException:
            browser.save_screenshot(str(screenshot_dir / "ui_failure.png"))
            raise
    with capsys.disabled():
        print(f"\nUI screenshots: {shots['graph']} {shots['metrics']}")

    session = server.session_id
    server.stop()
    assert not server.killed, f"dg dev ignored SIGINT; SIGKILL needed for {server.killed}"
    assert not ui.session_pids(session), "dg dev left processes behind"
