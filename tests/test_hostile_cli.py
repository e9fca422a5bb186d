"""Hostile but realistic input, end to end through ``dg launch`` as a user runs it.

Each case runs the real command in a copy of the project's root files and asserts the exit code,
that the message naming the cause is there on one line, and that the lake is unchanged or
consistent as a whole. The messages themselves are unit-tested beside their modules.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
from dagster._utils.test.data_versions import get_stale_status_resolver
from pipeline_runs import DG, cli_env, lake_files, project_copy, ui_instance

from sbr_dagster.defs.pipeline import build_definitions
from sbr_dagster.lake import layout

DEFINITION = "gap_1h"


def launch(project: Path, env: dict[str, str], *args: str, config: dict | None = None) -> tuple[int, str]:
    """``dg launch <args>`` from ``project``; returns the exit status and everything it printed."""
    command = [str(DG), "launch", *args]
    if config is not None:
        path = project / "run.json"
        path.write_text(json.dumps(config))
        command += ["-c", str(path)]
    done = subprocess.run(
        command, cwd=project, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    return done.returncode, done.stdout + done.stderr


def error_lines(output: str, fragment: str) -> list[str]:
    return [line for line in output.splitlines() if fragment in line]


@pytest.fixture(scope="module")
def built(ml1m_like_dir, tmp_path_factory):
    """A project whose lake holds the preprocess job's tables for one definition, and their bytes."""
    project = project_copy(tmp_path_factory.mktemp("project"))
    env = cli_env(data=ml1m_like_dir, lake_root=project / "lake", definition=DEFINITION, workdir=project)
    code, output = launch(project, env, "--job", "preprocess")
    assert code == 0, output[-3000:]
    return project, env, lake_files(project / "lake")


@pytest.fixture
def project(built, tmp_path):
    """A private copy of the built project (lake and instance): a case must not disturb the others."""
    source, env, before = built
    copy = tmp_path / "project"
    shutil.copytree(source, copy, symlinks=True)
    env = {**env, "SBR_DATA_LAKE": str(copy / "lake")}
    return copy, env, before


@pytest.mark.parametrize(
    ("definitions", "message"),
    [
        ("user,gap_7x", "unknown session definition 'gap_7x'"),
        ("gap_99999999999999999999d", "has a gap longer than the largest allowed gap, gap_36525d"),
    ],
)
def test_a_wrong_session_definition_is_one_line_before_anything_runs(project, definitions, message):
    root, env, before = project
    code, output = launch(root, {**env, "SBR_SESSION_DEFINITIONS": definitions}, "--job", "preprocess")
    assert code == 2
    assert output.strip().splitlines() == [output.strip()], output
    assert output.startswith("error: SBR_SESSION_DEFINITIONS: ") and message in output
    assert lake_files(root / "lake") == before


def test_a_broken_experiments_file_is_one_line(project):
    root, env, before = project
    broken = root / "broken.yaml"
    broken.write_text("experiments: [\n")
    code, output = launch(root, {**env, "SBR_EXPERIMENTS": str(broken)}, "--job", "preprocess")
    assert code == 2 and output.startswith("error: ") and "not valid YAML" in output
    assert len(output.strip().splitlines()) == 1
    assert lake_files(root / "lake") == before


def test_a_wrong_number_of_parallel_steps_is_one_line_before_anything_runs(project):
    root, env, before = project
    code, output = launch(root, {**env, "SBR_PARALLEL_STEPS": "0"}, "--job", "preprocess")
    assert code == 2
    assert output.strip() == "error: SBR_PARALLEL_STEPS must be a whole number >= 1; got '0'.", output
    assert lake_files(root / "lake") == before


def test_invalid_settings_fail_before_any_table_is_written(project):
    """A new rating policy with an impossible split: nothing is rewritten, not even the sessions."""
    root, env, before = project
    settings = {"min_rating": 4, "split_method": "fraction", "valid_fraction": 1.5}
    config = {"resources": {"preprocessing": {"config": settings}}}
    code, output = launch(root, env, "--job", "preprocess", config=config)
    assert code != 0
    assert error_lines(output, "valid_fraction must be a number strictly between 0 and 1; got 1.5")
    assert lake_files(root / "lake") == before


def test_a_gap_that_leaves_only_single_event_sessions_fails_at_cleansing(project, tmp_path):
    root, env, before = project
    data = tmp_path / "data"
    data.mkdir()
    # Every user rates three movies 10 s apart: a 1-second gap cuts every rating into its own session.
    lines = [
        f"{user}::{item}::4::{978300000 + 10 * step}"
        for user in (1, 2)
        for step, item in enumerate((1, 2, 3))
    ]
    (data / "ratings.dat").write_text("\n".join(lines) + "\n")
    (data / "movies.dat").write_text("1::A (1999)::Drama\n2::B (1999)::Drama\n3::C (1999)::Drama\n")
    env = {**env, "SBR_ML1M_DIR": str(data), "SBR_SESSION_DEFINITIONS": "gap_1s"}
    (root / "experiments.yaml").write_text(
        json.dumps({"experiments": [{"name": "x", "definition": "gap_1s"}]})
    )
    days = {"resources": {"preprocessing": {"config": {"split_method": "days"}}}}  # cleanse all 6 events
    code, output = launch(root, env, "--job", "preprocess", config=days)
    assert code != 0
    lines = error_lines(output, "InputDataError: gap_1s: 100% of the 6 sessions have fewer than 2 events")
    assert lines and len(set(lines)) == 1, "the one message, as Dagster reports it (step and run)"
    assert "use a session definition that cuts less" in lines[0]
    after = lake_files(root / "lake")
    assert not any(name.startswith("gap_1s/split") for name in after), "no split from nothing"
    assert {n: v for n, v in after.items() if n.startswith(DEFINITION)} == {
        n: v for n, v in before.items() if n.startswith(DEFINITION)
    }


def test_the_preprocess_job_builds_only_the_definitions_asked_for(project):
    root, env, _ = project
    env = {**env, "SBR_SESSION_DEFINITIONS": "user"}
    experiments = {
        "experiments": [{"name": "a", "definition": "user"}, {"name": "b", "definition": "gap_1d"}]
    }
    (root / "experiments.yaml").write_text(json.dumps(experiments))
    code, output = launch(root, env, "--job", "preprocess")
    assert code == 0, output[-2000:]
    assert (root / "lake" / "user").is_dir()
    assert not (root / "lake" / "gap_1d").exists(), "gap_1d is only the sweep's: the sweep builds it"


def test_a_table_rebuilt_upstream_marks_the_table_built_from_it_stale(project):
    """A new rating policy for the sessions alone: the UI shows the cleansed table as stale."""
    root, env, _ = project
    config = {"resources": {"preprocessing": {"config": {"min_rating": 4}}}}
    code, output = launch(root, env, "--assets", f"{DEFINITION}/sessions", config=config)
    assert code == 0, output[-2000:]
    with ui_instance(root) as instance:
        assets = build_definitions((DEFINITION,), experiments=[]).assets
        resolver = get_stale_status_resolver(instance, assets)
        status = {
            key: resolver.get_status(dg.AssetKey(list(layout.definition_key(DEFINITION, key))))
            for key in ("sessions", "cleansed", "train", "item_index")
        }
    # Dagster marks the asset whose input changed under it; the split below it waits on that one.
    assert status["sessions"].value == "FRESH"
    assert status["cleansed"].value == "STALE"


def with_files(source: Path, target: Path, **replace: bytes) -> Path:
    shutil.copytree(source, target)
    for name, data in replace.items():
        (target / name).write_bytes(data)
    return target


@pytest.mark.parametrize(
    ("appended", "message"),
    [
        (b"7::10::4::4102444800\n", "timestamp 4102444800 (2100-01-01 00:00:00 UTC) is after the latest"),
        (b"7::10::4::0\n", "timestamp 0 (1970-01-01 00:00:00 UTC) is before the earliest plausible time"),
    ],
)
def test_implausible_timestamps_are_errors_naming_line_value_and_bound(
    project, ml1m_like_dir, tmp_path, appended, message
):
    root, env, before = project
    ratings = (ml1m_like_dir / "ratings.dat").read_bytes()
    data = with_files(ml1m_like_dir, tmp_path / "data", **{"ratings.dat": ratings + appended})
    line = ratings.count(b"\n") + 1
    code, output = launch(root, {**env, "SBR_ML1M_DIR": str(data)}, "--job", "preprocess")
    assert code != 0
    assert error_lines(output, f"ratings.dat, line {line}: {message}")
    assert lake_files(root / "lake") == before


def test_ratings_of_unknown_movies_fail_or_are_dropped_and_counted(project, ml1m_like_dir, tmp_path):
    root, env, before = project
    ratings = (ml1m_like_dir / "ratings.dat").read_bytes() + b"7::99999::4::978300760\n"
    data = with_files(ml1m_like_dir, tmp_path / "data", **{"ratings.dat": ratings})
    env = {**env, "SBR_ML1M_DIR": str(data)}
    code, output = launch(root, env, "--job", "preprocess")
    assert code != 0
    assert error_lines(output, "1 rating (of 1 movie) names a movie missing from")
    assert error_lines(output, "99999. Add them to movies.dat, or set drop_unknown_movies")
    assert lake_files(root / "lake") == before

    config = {"resources": {"preprocessing": {"config": {"drop_unknown_movies": True}}}}
    code, output = launch(root, env, "--job", "preprocess", config=config)
    assert code == 0, output[-2000:]
    with ui_instance(root) as instance:
        event = instance.get_latest_materialization_event(dg.AssetKey(list(layout.RATINGS)))
        assert event.asset_materialization.metadata["unknown_movie_ratings_dropped"].value == 1


def test_a_movies_file_saved_by_a_windows_editor_keeps_its_punctuation(project, ml1m_like_dir, tmp_path):
    root, env, _ = project
    movies = (ml1m_like_dir / "movies.dat").read_bytes().split(b"\n")
    movies[0] = b"1::\x93Return\x94 of the Jedi \x96 Director\x92s Cut (1983)::Action"
    data = with_files(ml1m_like_dir, tmp_path / "data", **{"movies.dat": b"\n".join(movies)})
    code, output = launch(root, {**env, "SBR_ML1M_DIR": str(data)}, "--job", "preprocess")
    assert code == 0, output[-2000:]
    titles = pl.read_parquet(layout.table_path(root / "lake", layout.MOVIES))
    assert (
        titles.filter(item_id=1)["title"].item()
        == "\u201cReturn\u201d of the Jedi \u2013 Director\u2019s Cut"
    )


@pytest.mark.parametrize(
    ("ops", "message"),
    [
        ({f"{DEFINITION}__gru4rec": {"config": {"loss": "hinge"}}}, "unknown loss 'hinge'"),
        ({f"{DEFINITION}__gru4rec": {"config": {"layers": []}}}, "layers must be one or more positive"),
        (
            {f"{DEFINITION}__metrics": {"config": {"n_bootstrap": 0}}},
            "n_bootstrap must be a whole number >= 1",
        ),
    ],
)
def test_a_wrong_model_setting_fails_before_the_run_rewrites_any_table(project, ops, message):
    root, env, before = project
    settings = {"resources": {"preprocessing": {"config": {"min_rating": 3}}}, "ops": ops}
    code, output = launch(root, env, "--job", "everything", config=settings)
    assert code != 0
    assert error_lines(output, f"InputDataError: ops.{next(iter(ops))}.config")
    assert error_lines(output, message)
    assert lake_files(root / "lake") == before, "the preprocessing of the same run wrote nothing"


@pytest.mark.parametrize("case", ["missing", "dangling link", "a file"])
def test_a_wrong_data_directory_fails_when_the_run_starts_naming_the_cause(project, tmp_path, case):
    root, env, before = project
    where = tmp_path / "ml-1m"
    if case == "dangling link":
        where.symlink_to(tmp_path / "moved")
    elif case == "a file":
        where.write_bytes(b"PK\x03\x04")
    cause = {"missing": "does not exist", "dangling link": "is a broken symbolic link", "a file": "is a file"}
    code, output = launch(root, {**env, "SBR_ML1M_DIR": str(where)}, "--job", "preprocess")
    assert code != 0
    origin = "(from SBR_ML1M_DIR / local_dir)"
    assert error_lines(output, f"MovieLens 1M directory {where} {origin} {cause[case]}")
    assert lake_files(root / "lake") == before
