"""Steps in parallel: how many at once, each one's share of the cores, and what runs first.

Whole runs of the parallel executor against the in-process one are compared byte for byte in
tests/test_determinism.py; here are its parts, and the promise it rests on: TensorFlow trains
the same model whatever its thread count.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import dagster as dg
import pytest

from sbr_dagster import settings
from sbr_dagster.defs import pipeline
from sbr_dagster.defs.assets import PRIORITY
from sbr_dagster.errors import InputDataError
from sbr_dagster.lake import layout

TF_THREADS = ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS")
TF_VARIABLES = (*TF_THREADS, "TF_FORCE_GPU_ALLOW_GROWTH")


def test_parallel_steps_default_to_one_per_core(monkeypatch):
    monkeypatch.delenv(settings.ENV_PARALLEL_STEPS, raising=False)
    assert settings.parallel_steps() == settings.cores() >= 1
    monkeypatch.setenv(settings.ENV_PARALLEL_STEPS, " 3 ")
    assert settings.parallel_steps() == 3


@pytest.mark.parametrize("value", ["0", "-1", "two", "1.5"])
def test_a_wrong_parallel_steps_is_one_line_naming_the_variable(monkeypatch, value):
    monkeypatch.setenv(settings.ENV_PARALLEL_STEPS, value)
    with pytest.raises(
        InputDataError, match=f"^SBR_PARALLEL_STEPS must be a whole number >= 1; got '{value}'"
    ):
        settings.parallel_steps()


@pytest.mark.parametrize(
    ("cores", "steps", "threads"), [(2, 2, 1), (2, 1, 2), (16, 4, 4), (2, 8, 1), (3, 2, 1)]
)
def test_each_step_gets_its_share_of_the_cores(monkeypatch, cores, steps, threads):
    monkeypatch.setattr(settings, "cores", lambda: cores)
    monkeypatch.setenv(settings.ENV_PARALLEL_STEPS, str(steps))
    assert settings.threads_per_step() == threads


def test_one_step_at_a_time_runs_in_the_run_process_and_more_in_forked_ones(monkeypatch):
    monkeypatch.setenv(settings.ENV_PARALLEL_STEPS, "1")
    job = pipeline.build_definitions(("gap_1h",), experiments=[]).resolve_job_def("everything")
    assert job.executor_def is dg.in_process_executor
    monkeypatch.setenv(settings.ENV_PARALLEL_STEPS, "2")
    executor = (
        pipeline.build_definitions(("gap_1h",), experiments=[]).resolve_job_def("everything").executor_def
    )
    assert executor.name == "parallel_steps"
    config = executor.config_schema.resolve_config({}).value["config"]
    assert config["max_concurrent"] == 2
    assert config["start_method"] == {"forkserver": {"preload_modules": ["sbr_dagster.step_process"]}}


def test_a_run_config_cannot_set_the_executor_behind_the_variable_s_back(monkeypatch):
    monkeypatch.setenv(settings.ENV_PARALLEL_STEPS, "2")
    job = pipeline.build_definitions(("gap_1h",), experiments=[]).resolve_job_def("everything")
    dg.validate_run_config(job, {})
    with pytest.raises(dg.DagsterInvalidConfigError, match='unexpected config entry "max_concurrent"'):
        dg.validate_run_config(job, {"execution": {"config": {"max_concurrent": 4}}})


def step_process_environment(**env: str) -> dict[str, str]:
    """The TensorFlow variables and loaded modules of a process after it imported ``step_process``."""
    script = (
        "import json, os, sys\n"
        "import sbr_dagster.step_process\n"
        "print(json.dumps({**{k: os.environ.get(k) for k in "
        f"{TF_VARIABLES!r}}}, "
        "'loaded': 'sbr_dagster.defs.pipeline' in sys.modules}))\n"
    )
    base = {k: v for k, v in os.environ.items() if k not in TF_VARIABLES}
    done = subprocess.run(
        [sys.executable, "-c", script],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_forked_step_has_the_code_loaded_and_tensorflow_limited_to_its_share():
    seen = step_process_environment(SBR_PARALLEL_STEPS="2", SBR_SESSION_DEFINITIONS="gap_1h")
    share = str(max(1, settings.cores() // 2))
    assert seen == {
        "TF_NUM_INTRAOP_THREADS": share,
        "TF_NUM_INTEROP_THREADS": share,
        "TF_FORCE_GPU_ALLOW_GROWTH": "true",  # several steps' TensorFlow on one GPU
        "loaded": True,
    }


def test_thread_settings_of_the_user_win():
    seen = step_process_environment(SBR_PARALLEL_STEPS="2", TF_NUM_INTRAOP_THREADS="7")
    assert seen["TF_NUM_INTRAOP_THREADS"] == "7"


# Trains GRU4Rec and SASRec a little on random sessions (long enough for several threads to split
# the work) and prints a digest of their test ranks and weights.
TRAIN_AND_DIGEST = """
import hashlib
import numpy as np
from sbr_dagster.data.arrays import Sessions
from sbr_dagster.models import registry
from sbr_dagster.training import trainer

rng = np.random.default_rng(0)
lengths = rng.integers(2, 80, 300)
offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
items = rng.integers(0, 1200, offsets[-1]).astype(np.int32)
sessions = Sessions(items, offsets, np.zeros(len(items), np.int8))
digest = hashlib.sha256()
for name, settings in [("gru4rec", {"epochs": 1}), ("sasrec", {"epochs": 1, "max_len": 64})]:
    model = registry.build(name, settings)
    trainer.fit(model, sessions, 1200, log=lambda _: None)
    digest.update(np.ascontiguousarray(model.rank(sessions)).tobytes())
    for weight in model.network.weights:
        digest.update(np.ascontiguousarray(weight.numpy()).tobytes())
print(digest.hexdigest())
"""


def test_tensorflow_trains_the_same_models_with_one_thread_or_two():
    digests = {}
    for threads in ("1", "2"):
        env = {**os.environ, "CUDA_VISIBLE_DEVICES": "-1", "TF_CPP_MIN_LOG_LEVEL": "3"}
        env.update(dict.fromkeys(TF_THREADS, threads))
        done = subprocess.run(
            [sys.executable, "-c", TRAIN_AND_DIGEST],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        digests[threads] = done.stdout.strip().splitlines()[-1]
    assert len(digests["1"]) == 64 and digests["1"] == digests["2"]


def test_preprocessing_runs_before_training_and_the_longest_training_first(monkeypatch):
    """With two steps at a time, every step a training waits for outranks every training, and SASRec
    outranks GRU4Rec: so both cores train until the end, and the longest does not start last."""
    monkeypatch.setenv(settings.ENV_PARALLEL_STEPS, "2")
    job = pipeline.build_definitions(experiments=[]).resolve_job_def("everything")
    priority = {node.name: int(node.tags.get(PRIORITY, 0)) for node in job.nodes}
    trainings = {n: p for n, p in priority.items() if n.rsplit("__", 1)[-1] in ("gru4rec", "sasrec")}
    assert set(trainings) == {f"{d}__gru4rec" for d in settings.DEFAULT_DEFINITIONS} | {"user__sasrec"}
    plan = job.get_job_snapshot().dep_structure_snapshot
    upstream = {
        node.node_name: {o.node_name for inputs in node.input_dep_snaps for o in inputs.upstream_output_snaps}
        for node in plan.node_invocation_snaps
    }

    def ancestors(name: str) -> set[str]:
        found: set[str] = set()
        stack = [name]
        while stack:
            for parent in upstream.get(stack.pop(), ()):
                if parent not in found:
                    found.add(parent)
                    stack.append(parent)
        return found

    for training in trainings:
        before = ancestors(training)
        assert before, training
        assert min(priority[n] for n in before) > max(trainings.values()), training
    assert trainings["user__sasrec"] > max(p for n, p in trainings.items() if n != "user__sasrec")
    later = set(priority) - set(trainings) - set().union(*(ancestors(t) for t in trainings))
    assert layout.METRICS in {n.rsplit("__", 1)[-1] for n in later}
    assert max(priority[n] for n in later) < min(trainings.values())
