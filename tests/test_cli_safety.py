"""``sbr recommend`` only reads inside the lake, and every mistake is one plain ``error:`` line (exit 2).

Covers names that would reach outside the lake (a definition with ``..``, an absolute path, a
definition folder linking elsewhere, a model that is not a trained one), hints that must work as
typed (the environment variables the pipeline needs), argparse's own messages, and a ``--lake``
that is a file, missing, or without the movies table.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from trained_lake import DEFINITION, RATED_DEFINITION, build_lake

from sbr_dagster import cli, settings
from sbr_dagster.errors import InputDataError
from sbr_dagster.lake import layout
from sbr_dagster.models import registry
from sbr_dagster.serving.catalog import load_recommender

SBR = Path(sys.executable).with_name("sbr")
NOT_BUILT = "gap_2h"  # a valid definition, not among the pipeline's defaults
BUILT = "gap_1d"  # one of the defaults, with no model in the test lake


@pytest.fixture(scope="module")
def lake_root(tmp_path_factory) -> Path:
    return build_lake(tmp_path_factory)


@pytest.fixture(scope="module")
def outside(tmp_path_factory, lake_root) -> Path:
    """A folder beside the lake holding a real trained bundle at ``user/gru4rec``."""
    root = tmp_path_factory.mktemp("outside")
    shutil.copytree(lake_root / RATED_DEFINITION / "gru4rec", root / "user" / "gru4rec")
    return root


@pytest.fixture(scope="module")
def linked_lake(tmp_path_factory, lake_root, outside) -> Path:
    """A lake whose ``user`` folder is a link to ``outside/user``."""
    root = tmp_path_factory.mktemp("linked_lake")
    movies = layout.table_path(root, layout.MOVIES)
    movies.parent.mkdir(parents=True)
    shutil.copy(layout.table_path(lake_root, layout.MOVIES), movies)
    (root / "user").symlink_to(outside / "user", target_is_directory=True)
    return root


@pytest.fixture
def pipeline_env(monkeypatch, lake_root):
    """The pipeline's own settings: this lake, the default definitions."""
    monkeypatch.setenv(settings.ENV_DATA_LAKE, str(lake_root))
    monkeypatch.delenv(settings.ENV_DEFINITIONS, raising=False)


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_error(code: int, out: str, err: str, *messages: str) -> str:
    assert code == 2, (out, err)
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err and out == ""
    for message in messages:
        assert message in err, err
    return err.strip()


def recommend(capsys, lake: Path | str, definition: str, *more: str) -> str:
    argv = ["recommend", "--definition", definition, "--history", "100", "--lake", str(lake), *more]
    return assert_one_error(*run(capsys, *argv))


# --- 1. nothing outside the lake -------------------------------------------------------------------


def test_definition_climbing_out_of_the_lake_is_refused(capsys, lake_root, outside):
    escape = os.path.relpath(outside / "user", lake_root)  # ../outsideN/user: a real bundle there
    assert (lake_root / escape / "gru4rec" / "config.json").is_file()
    for definition in (escape, str(outside / "user"), f"{DEFINITION}/../{RATED_DEFINITION}"):
        err = recommend(capsys, lake_root, definition)
        assert f"argument --definition: unknown session definition {definition!r}: expected 'user'" in err


@pytest.mark.parametrize("empty", ["", "  "])
def test_empty_definition_is_a_clear_error(capsys, lake_root, empty):
    err = recommend(capsys, lake_root, empty)
    assert "argument --definition: session definition is empty: expected 'user' or 'gap_" in err
    assert "dg launch" not in err


def test_definition_folder_linking_outside_the_lake_is_refused(capsys, linked_lake):
    err = recommend(capsys, linked_lake, "user")
    assert "resolves to" in err and f"outside the data lake {linked_lake.resolve()}" in err


def test_load_recommender_guards_itself(lake_root, linked_lake, outside):
    escape = os.path.relpath(outside / "user", lake_root)
    with pytest.raises(InputDataError, match="unknown session definition"):
        load_recommender(escape, lake_root=lake_root)
    with pytest.raises(InputDataError, match="session definition is empty"):
        load_recommender("", lake_root=lake_root)
    with pytest.raises(InputDataError, match="outside the data lake"):
        load_recommender("user", lake_root=linked_lake)
    with pytest.raises(
        InputDataError, match=re.escape("unknown model '../user/gru4rec': use one of gru4rec")
    ):
        load_recommender(DEFINITION, lake_root=lake_root, model="../user/gru4rec")
    with pytest.raises(InputDataError, match="'pop' is a baseline"):
        load_recommender(DEFINITION, lake_root=lake_root, model=registry.REFERENCE)


# --- 2. hints that work as typed -------------------------------------------------------------------


def test_hint_for_a_definition_the_pipeline_does_not_build_sets_it(capsys, lake_root, pipeline_env):
    err = recommend(capsys, lake_root, NOT_BUILT)
    assert f"`SBR_SESSION_DEFINITIONS={NOT_BUILT} dg launch --assets '+{NOT_BUILT}/gru4rec'`" in err
    assert f"trained models in {lake_root}: gap_1h/gru4rec, user/gru4rec" in err


def test_hint_for_a_built_definition_is_the_plain_command(capsys, lake_root, pipeline_env):
    err = recommend(capsys, lake_root, BUILT)
    assert f"`dg launch --assets '+{BUILT}/gru4rec'`" in err and "=" not in err.split("`")[1]
    assert f"trained models in {lake_root}: gap_1h/gru4rec, user/gru4rec" in err


def test_hint_follows_the_definitions_the_pipeline_builds(capsys, lake_root, pipeline_env, monkeypatch):
    monkeypatch.setenv(settings.ENV_DEFINITIONS, f"user,{NOT_BUILT}")
    assert f"`dg launch --assets '+{NOT_BUILT}/gru4rec'`" in recommend(capsys, lake_root, NOT_BUILT)
    assert f"`SBR_SESSION_DEFINITIONS={BUILT} dg" in recommend(capsys, lake_root, BUILT)


def test_hint_for_another_lake_sets_it(capsys, lake_root, monkeypatch, tmp_path):
    monkeypatch.setenv(settings.ENV_DATA_LAKE, str(tmp_path))  # the pipeline writes elsewhere
    monkeypatch.delenv(settings.ENV_DEFINITIONS, raising=False)
    err = recommend(capsys, lake_root, BUILT)
    assert f"`SBR_DATA_LAKE={lake_root.resolve()} dg launch --assets '+{BUILT}/gru4rec'`" in err


# --- 3. argparse speaks plainly --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--k", "abc"], "argument --k: 'abc' is not a whole number >= 1"),
        (["--k", "²"], "argument --k: '²' is not a whole number >= 1"),
        (["--k", "-3"], "argument --k: '-3' is not a whole number >= 1"),
        (["--k", "9" * 5000], "argument --k: '999"),
        (["--history", "1,²"], "argument --history: '1,²' is not a comma-separated list of movie ids"),
        (["--history", "7,x"], "('x' is not a whole number)"),
        (["--history", "1" * 5000], "argument --history: '111"),
        (["--ratings", "5,x"], "argument --ratings: '5,x' is not a comma-separated list of ratings"),
        (["--ratings", ""], "argument --ratings: is empty"),
    ],
)
def test_argument_errors_read_naturally(capsys, lake_root, arguments, message):
    argv = ["recommend", "--definition", DEFINITION, "--history", "100", "--lake", str(lake_root)]
    err = assert_one_error(*run(capsys, *argv, *arguments), message)
    assert "invalid" not in err and "_int" not in err and "parse" not in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["frobnicate"], "argument COMMAND: invalid choice: 'frobnicate'"),
        ([], "the following arguments are required: COMMAND"),
        (["recommend"], "the following arguments are required: --definition, --history"),
        (["recommend", "--history", "100"], "the following arguments are required: --definition"),
        (["recommend", "--definition", "user", "--history"], "argument --history: expected one argument"),
        (["recommend", "--definition", "user", "--history", "1", "--bogus"], "unrecognized arguments"),
    ],
)
def test_command_line_mistakes_are_one_line(capsys, argv, message):
    assert_one_error(*run(capsys, *argv), message, "--help`)")


# --- 4. the lake itself ----------------------------------------------------------------------------


def test_lake_that_is_a_file(capsys, tmp_path):
    file = tmp_path / "lake.txt"
    file.write_text("not a lake")
    err = recommend(capsys, file, DEFINITION)
    assert f"data lake {file} is a file, not a directory" in err and "movies" not in err


def test_lake_that_does_not_exist(capsys, tmp_path):
    err = recommend(capsys, tmp_path / "missing", DEFINITION)
    assert f"data lake {tmp_path / 'missing'} does not exist" in err and "no movies table" not in err


def test_lake_without_the_movies_table(capsys, tmp_path):
    err = recommend(capsys, tmp_path, DEFINITION)
    movies = layout.table_path(tmp_path, layout.MOVIES)
    assert f"data lake {tmp_path} has no movies table ({movies})" in err
    assert "dg launch --assets 'raw/movies'" in err


def test_empty_lake_argument(capsys):
    recommend(capsys, "", DEFINITION)


# --- 5. --model -------------------------------------------------------------------------------------


def test_unknown_model_lists_the_trained_ones(capsys, lake_root):
    err = recommend(capsys, lake_root, DEFINITION, "--model", "gru5rec")
    assert f"argument --model: unknown model 'gru5rec': use one of {', '.join(registry.TRAINED)}" in err


def test_baseline_model_is_not_a_trained_one(capsys, lake_root):
    err = recommend(capsys, lake_root, DEFINITION, "--model", registry.REFERENCE)
    assert f"'{registry.REFERENCE}' is a baseline" in err and f"use one of {registry.PRIMARY}" in err


# --- through the installed console script ----------------------------------------------------------


def sbr(*argv: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    done = subprocess.run(
        [str(SBR), *argv], capture_output=True, text=True, timeout=120, check=False, env=env
    )
    return done.returncode, done.stdout, done.stderr


def test_console_script_refuses_and_explains(lake_root, outside, tmp_path):
    escape = os.path.relpath(outside / "user", lake_root)
    cases = [
        (["--definition", escape], "argument --definition: unknown session definition"),
        (["--definition", ""], "argument --definition: session definition is empty"),
        (["--definition", DEFINITION, "--k", "abc"], "argument --k: 'abc' is not a whole number >= 1"),
        (["--definition", DEFINITION, "--model", "nope"], "argument --model: unknown model 'nope'"),
        (["--definition", NOT_BUILT], f"SBR_SESSION_DEFINITIONS={NOT_BUILT} dg launch"),
    ]
    env = {k: v for k, v in os.environ.items() if k != settings.ENV_DEFINITIONS}
    for arguments, message in cases:
        assert_one_error(
            *sbr("recommend", "--history", "100", "--lake", str(lake_root), *arguments, env=env), message
        )
    missing = str(tmp_path / "missing")
    assert_one_error(
        *sbr("recommend", "--definition", DEFINITION, "--history", "1", "--lake", missing), "does not exist"
    )
    assert_one_error(*sbr("nope"), "invalid choice: 'nope'")


def test_cli_import_stays_light():
    code = (
        "import sys, sbr_dagster.cli as c; c.build_parser(); "
        "print(sorted(m for m in ('polars', 'numpy', 'tensorflow', 'dagster') if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "[]"
