"""The ``sbr`` console command: readable tables on success, one ``error:`` line (exit 2) on user mistakes."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from trained_lake import DEFINITION, UNSEEN_ID, build_lake, ids

from sbr_dagster import cli
from sbr_dagster.lake import layout
from sbr_dagster.serving.bundle import load_bundle
from sbr_dagster.serving.catalog import load_recommender, trained_models


@pytest.fixture(scope="module")
def lake_root(tmp_path_factory) -> Path:
    return build_lake(tmp_path_factory)


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_recommend_prints_titles_best_first(capsys, lake_root):
    history = ids(3, 4, 5)
    code, out, err = run(
        capsys, "recommend", "--definition", DEFINITION, "--history", ",".join(map(str, history)),
        "--k", "4", "--lake", str(lake_root),
    )  # fmt: skip
    assert code == 0, err
    expected = load_recommender(DEFINITION, lake_root=lake_root).recommend(history, k=4)
    rows = out.splitlines()[3:]
    assert len(rows) == 4
    for row, (rank, title, year) in zip(
        rows, expected.select("rank", "title", "year").iter_rows(), strict=True
    ):
        assert row.split()[0] == str(rank) and f"{title} ({year})" in row
    assert all(f"Movie {i}, The" not in "\n".join(rows) for i in history)
    assert f"Movie {history[0]}, The" in out.splitlines()[0]  # the history, by title


def test_include_history_and_ratings(capsys, lake_root):
    history = ids(0, 1)
    code, out, err = run(
        capsys, "recommend", "--definition", DEFINITION, "--history", ",".join(map(str, history)),
        "--ratings", "5,3", "--k", "12", "--include-history", "--lake", str(lake_root),
    )  # fmt: skip
    assert code == 0, err
    assert all(f"Movie {i}, The" in "\n".join(out.splitlines()[3:]) for i in history)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--history", "12,abc"], "'abc' is not a whole number"),
        (["--history", ""], "is empty"),
        (["--history", "100", "--k", "0"], "'0' is not a whole number >= 1"),
        (["--history", "100,5"], "not MovieLens 1M movies: 5"),
        (["--history", f"100,{UNSEEN_ID}"], "--skip-unseen"),
        (["--history", "100", "--definition", "gap_1d"], "dg launch --assets '+gap_1d/gru4rec'"),
    ],
)
def test_user_mistakes_end_in_one_error_line(capsys, lake_root, arguments, message):
    argv = ["recommend", "--definition", DEFINITION, "--lake", str(lake_root), *arguments]
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert err.startswith("error: ") and message in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err and out == ""


def test_skip_unseen_warns_and_recommends(capsys, lake_root):
    argv = [
        "--definition",
        DEFINITION,
        "--lake",
        str(lake_root),
        "--history",
        f"100,{UNSEEN_ID}",
        "--skip-unseen",
    ]
    code, out, err = run(capsys, "recommend", *argv)
    assert code == 0 and err.startswith("warning: skipped 1 movie") and "Movie 107, The" in out


def test_help(capsys):
    code, out, _ = run(capsys, "--help")
    assert code == 0 and "recommend" in out
    code, out, _ = run(capsys, "recommend", "--help")
    assert code == 0 and "--history" in out and "--include-history" in out


def test_console_script_runs_without_traceback(lake_root):
    script = Path(sys.executable).with_name("sbr")
    history = ",".join(map(str, ids(6, 7)))
    argv = ["recommend", "--definition", DEFINITION, "--history", history, "--lake", str(lake_root)]
    done = subprocess.run([str(script), *argv], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stderr == "" and len(done.stdout.splitlines()) == 3 + 10  # no traceback, no TF start-up noise
    assert "Movie" in done.stdout


def test_tuned_recommends_with_the_tuning_jobs_model(capsys, lake_root, tmp_path):
    argv = ["recommend", "--definition", DEFINITION, "--history", ",".join(map(str, ids(3, 4))), "--tuned"]
    code, out, err = run(capsys, *argv, "--lake", str(lake_root))
    assert code == 2 and out == ""
    assert f"no tuned gru4rec model for {DEFINITION}" in err and f"+{DEFINITION}/tuned/gru4rec" in err
    # A tuned bundle (here a copy of the main job's, with other weights) is the one used.
    lake = tmp_path / "lake"
    shutil.copytree(lake_root, lake)
    tuned = layout.model_dir(lake, layout.tuned_prefix(DEFINITION), "gru4rec")
    shutil.copytree(layout.model_dir(lake, (DEFINITION,), "gru4rec"), tuned)
    network = load_bundle(tuned).model.network
    network.output_bias.assign(np.arange(network.n_items, dtype="float32") * 100)  # the last movie wins
    network.save(tuned / "model.keras")
    code, out, err = run(capsys, *argv, "--lake", str(lake))
    assert code == 0, err
    assert out.splitlines()[1] == f"Next movies (tuned gru4rec on {DEFINITION}):"
    last = load_bundle(tuned).item_index.sort("item_idx")["item_id"][-1]
    assert f"Movie {last}, The" in out.splitlines()[3]  # the tuned model's best, not the main job's
    assert f"{DEFINITION}/tuned/gru4rec" in trained_models(lake)
