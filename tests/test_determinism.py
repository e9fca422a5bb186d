"""Determinism: the same seed and data give the same bytes; another seed gives another training run.

Each run is a whole ``dg launch --job everything`` (preprocess, tiny training, evaluation) in
its own process on the CPU, with a different ``PYTHONHASHSEED`` for the two same-seed runs, so
nothing may hang on set order, process state or thread timing. One of them runs its steps one by
one in its own process (``SBR_PARALLEL_STEPS=1``, TensorFlow on every core), the others two at a
time in forked processes (a share of the cores each): the executor must not change a byte either.
The three runs go concurrently.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import polars as pl
import pytest
from pipeline_runs import CLI_LOG, cli

from sbr_dagster.lake import layout

DEFINITION = "gap_1h"
TINY = {"layers": [32], "epochs": 3, "batch_size": 16, "learning_rate": 0.01}
TABLES = [
    "raw/ratings.parquet",
    "raw/movies.parquet",
    *(str(layout.table_path(".", (DEFINITION, t))) for t in ("sessions", "cleansed", *layout.SPLIT_TABLES)),
]
RESULTS = [
    f"{DEFINITION}/metrics.parquet",
    f"{DEFINITION}/ranks.parquet",
    f"{DEFINITION}/gru4rec/config.json",
]
WEIGHTS = "model.weights.h5"  # inside model.keras, whose metadata.json carries the save time
CURVE = ["epoch", "loss", "valid_recall_20", "valid_mrr_20"]  # history without its timings


def weights_bytes(lake_root: Path) -> bytes:
    with zipfile.ZipFile(lake_root / DEFINITION / "gru4rec" / "model.keras") as archive:
        return archive.read(WEIGHTS)


def curve(lake_root: Path) -> pl.DataFrame:
    return pl.read_parquet(lake_root / DEFINITION / "gru4rec" / "history.parquet").select(CURVE)


@pytest.fixture(scope="module")
def runs(ml1m_like_dir, tmp_path_factory) -> dict[str, Path]:
    """Lake roots of three full runs: seed 0 twice (different hash seeds), and seed 1."""
    plan = {"seed0": (0, "1", "2"), "seed0_again": (0, "987654", "1"), "seed1": (1, "1", "2")}
    processes = {}
    for name, (seed, hash_seed, parallel_steps) in plan.items():
        workdir = tmp_path_factory.mktemp(name)
        run_config = workdir / "run.yaml"  # JSON is YAML
        run_config.write_text(
            json.dumps(
                {
                    "ops": {
                        f"{DEFINITION}__gru4rec": {"config": {**TINY, "seed": seed}},
                        f"{DEFINITION}__metrics": {"config": {"n_bootstrap": 200}},
                    }
                }
            )
        )
        processes[name] = (
            workdir,
            cli(
                "dg",
                ["launch", "--job", "everything", "-c", str(run_config)],
                data=ml1m_like_dir,
                lake_root=workdir / "lake",
                definition=DEFINITION,
                workdir=workdir,
                PYTHONHASHSEED=hash_seed,
                SBR_PARALLEL_STEPS=parallel_steps,
                CUDA_VISIBLE_DEVICES="-1",  # CPU: the determinism promised is the CPU's
            ),
        )
    for name, (workdir, process) in processes.items():
        assert process.wait(timeout=500) == 0, f"{name}:\n{(workdir / CLI_LOG).read_text()[-3000:]}"
    return {name: workdir / "lake" for name, (workdir, _) in processes.items()}


def test_same_seed_same_bytes(runs):
    first, again = runs["seed0"], runs["seed0_again"]
    for name in TABLES + RESULTS:
        assert (first / name).read_bytes() == (again / name).read_bytes(), name
    assert weights_bytes(first) == weights_bytes(again)
    assert curve(first).equals(curve(again))
    metrics = pl.read_parquet(first / DEFINITION / "metrics.parquet")
    assert metrics.filter(pl.col("model") == "gru4rec")["recall"].max() > 0, "a model was really trained"


def test_other_seed_trains_differently_on_the_same_split(runs):
    first, other = runs["seed0"], runs["seed1"]
    for name in TABLES:
        assert (first / name).read_bytes() == (other / name).read_bytes(), f"{name}: the seed is the model's"
    assert weights_bytes(first) != weights_bytes(other)
    assert curve(first)["loss"].to_list() != curve(other)["loss"].to_list()
    ranks = {
        name: pl.read_parquet(root / DEFINITION / "ranks.parquet").filter(pl.col("model") == "gru4rec")
        for name, root in runs.items()
    }
    assert not ranks["seed0"].equals(ranks["seed1"])
    baselines = {
        name: pl.read_parquet(root / DEFINITION / "ranks.parquet").filter(pl.col("model") != "gru4rec")
        for name, root in runs.items()
    }
    assert baselines["seed0"].equals(baselines["seed1"]), "baselines have no seed"
