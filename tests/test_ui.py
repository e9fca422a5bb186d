"""The Dagster UI, used as a person uses it: ``dagster dev`` after a run, opened in headless Chromium.

One definition (gap_1h) is materialized on generated data with a tiny model into a temporary lake
and ``DAGSTER_HOME``; ``dagster dev`` then serves that instance, and the browser must show the
pipeline's assets and the metrics the run recorded. Screenshots go to ``SBR_UI_SCREENSHOT_DIR``
(CI keeps them) or the test's temporary folder.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import polars as pl
import pytest
import ui_helpers as ui
import yaml

ROOT = Path(__file__).resolve().parent.parent
DEFINITION = "gap_1h"
TINY = {"layers": [32], "epochs": 3, "batch_size": 16, "learning_rate": 0.01}
ASSET_KEYS = [
    "raw/ratings",
    "raw/movies",
    *(f"{DEFINITION}/{name}" for name in ("sessions", "cleansed", "train", "valid", "test", "item_index")),
    f"{DEFINITION}/gru4rec",
    f"{DEFINITION}/metrics",
]
MODELS = ("gru4rec", "pop", "markov", "sr", "item_knn")

pytestmark = [
    pytest.mark.ui,
    pytest.mark.skipif(ui.browser_missing() is not None, reason=f"UI test: {ui.browser_missing()}"),
]


@pytest.fixture
def pipeline_env(ml1m_like_dir, tmp_path) -> dict[str, str]:
    """The environment both the run and ``dagster dev`` see: one definition, a tiny sweep, temp dirs."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(ROOT / "dagster.yaml", home / "dagster.yaml")  # telemetry off
    experiments = tmp_path / "experiments.yaml"
    experiments.write_text(
        yaml.safe_dump({"defaults": TINY, "experiments": [{"name": "tiny", "definition": DEFINITION}]})
    )
    return {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "SBR_ML1M_DIR": str(ml1m_like_dir),
        "SBR_DATA_LAKE": str(tmp_path / "lake"),
        "SBR_SESSION_DEFINITIONS": DEFINITION,
        "SBR_EXPERIMENTS": str(experiments),
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }


@pytest.fixture
def materialized(pipeline_env, tmp_path) -> dict[str, str]:
    """``dagster job execute`` of the main job, recorded in the instance the UI will serve."""
    run_config = tmp_path / "run.yaml"
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
    command = [str(ui.DAGSTER), "job", "execute", "-m", "sbr_dagster.definitions", "-j", "everything"]
    result = subprocess.run(
        [*command, "-c", str(run_config)],
        cwd=ROOT,
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
def server(materialized, tmp_path):
    dev = ui.DagsterDev(ROOT, materialized, tmp_path / "dagster_dev.log")
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
        (pl.col("split") == "test") & (pl.col("model") == "gru4rec") & (pl.col("k") == 20)
    )["recall"].item()
    shots = {
        "graph": screenshot_dir / "ui_gap_1h_asset_graph.png",
        "metrics": screenshot_dir / "ui_gap_1h_metrics.png",
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
            ui.wait_for_texts(browser, [*nodes, "Materialized"], absent=("Loading...",))
            ui.dismiss_dialogs(browser)
            browser.save_screenshot(str(shots["graph"]))

            # The metrics asset's page shows the run's metadata: the numbers and the comparison table.
            browser.get(f"{server.base_url}/assets/{DEFINITION}/metrics")
            ui.wait_for_texts(browser, ["test/gru4rec/recall@20", "comparison_test"])
            ui.dismiss_dialogs(browser)
            assert float(ui.metadata_value(browser, "test/gru4rec/recall@20")) == pytest.approx(recall_20)
            comparison = ui.metadata_value(browser, "comparison_test")
            for model in MODELS:
                assert model in comparison, comparison
            ui.scroll_to_metadata(browser, "comparison_test")
            browser.save_screenshot(str(shots["metrics"]))
        except BaseException:
            browser.save_screenshot(str(screenshot_dir / "ui_failure.png"))
            raise
    with capsys.disabled():
        print(f"\nUI screenshots: {shots['graph']} {shots['metrics']}")

    session = server.session_id
    server.stop()
    assert not server.killed, f"dagster dev ignored SIGINT; SIGKILL needed for {server.killed}"
    assert not ui.session_pids(session), "dagster dev left processes behind"
