"""Running the pipeline from tests: in-process jobs and the documented CLI, with a lake of the test's own."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import dagster as dg

from sbr_dagster.defs.pipeline import build_definitions
from sbr_dagster.defs.resources import (
    DataLake,
    LakeParquetIOManager,
    MovieLensSource,
    PreprocessingSettings,
    RunSettings,
)
from sbr_dagster.errors import InputDataError

CLI_LOG = "dagster.log"
REPO = Path(__file__).resolve().parent.parent
PROJECT_FILES = ("pyproject.toml", "dagster.yaml")
DG = Path(sys.executable).with_name("dg")
DAGSTER = Path(sys.executable).with_name("dagster")


def run_job(
    job: str,
    *,
    data: Path | MovieLensSource,
    lake_root: Path | str,
    names: tuple[str, ...],
    experiments=(),
    run_config: dict | None = None,
    **settings,
) -> dg.ExecuteInProcessResult:
    """Execute ``job`` in process; an asset's or a resource's ``InputDataError`` propagates as raised."""
    defs = build_definitions(
        names, resources=resources_for(data, lake_root, **settings), experiments=list(experiments)
    )
    try:
        return defs.resolve_job_def(job).execute_in_process(
            instance=dg.DagsterInstance.ephemeral(), run_config=run_config or {}
        )
    except dg.DagsterResourceFunctionError as error:  # a setting rejected when the run started
        if isinstance(error.__cause__, InputDataError):
            raise error.__cause__ from None
        raise


def resources_for(data: Path | MovieLensSource, lake_root: Path | str, **settings) -> dict:
    """The resources of a run on ``data`` into the lake at ``lake_root``."""
    movielens = data if isinstance(data, MovieLensSource) else MovieLensSource(local_dir=str(data))
    data_lake = DataLake(root=str(lake_root))
    return {
        "lake": data_lake,
        "io_manager": LakeParquetIOManager(lake=data_lake, run_settings=RunSettings()),
        "movielens": movielens,
        "preprocessing": PreprocessingSettings(**settings),
    }


def checks_by_name(result: dg.ExecuteInProcessResult) -> dict[str, bool]:
    """The gating checks' results; a warning (severity WARN) is left out: it never gates a run."""
    return {
        e.asset_check_key.to_user_string(): e.passed
        for e in result.get_asset_check_evaluations()
        if e.severity != dg.AssetCheckSeverity.WARN
    }


def lake_files(root: Path) -> dict[str, bytes]:
    """Every file under ``root``, temporary ones included, with its bytes."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def stray_temporaries(root: Path) -> list[Path]:
    return [p for p in root.rglob(".*") if p.name.endswith((".tmp", ".part", ".keras"))]


def project_copy(directory: Path) -> Path:
    """A project root with the repository's own pyproject.toml and dagster.yaml, byte for byte.

    ``dg`` finds the project there and Dagster its instance config, so commands run in it as in
    the repository, while the instance (``.dagster_home/``) stays the test's own.
    """
    directory.mkdir(parents=True, exist_ok=True)
    for name in PROJECT_FILES:
        shutil.copy(REPO / name, directory / name)
    package = directory / "sbr_dagster"  # dg looks for the root module inside the project
    if not package.exists():
        package.symlink_to(REPO / "sbr_dagster", target_is_directory=True)
    return directory


def cli_env(*, data: Path, lake_root: Path, definition: str, workdir: Path, **env: str) -> dict[str, str]:
    """The environment of a documented command: one definition, a one-experiment sweep, no DAGSTER_HOME."""
    experiments = workdir / "experiments.yaml"  # one experiment on ``definition``: no extra definitions
    experiments.write_text(json.dumps({"experiments": [{"name": "only", "definition": definition}]}))
    environment = {name: value for name, value in os.environ.items() if name != "DAGSTER_HOME"}
    environment.update(
        SBR_ML1M_DIR=str(data),
        SBR_DATA_LAKE=str(lake_root),
        SBR_SESSION_DEFINITIONS=definition,
        SBR_EXPERIMENTS=str(experiments),
        TF_CPP_MIN_LOG_LEVEL="2",
        **env,
    )
    return environment


def cli(
    tool: str, args: list[str], *, data: Path, lake_root: Path, definition: str, workdir: Path, **env: str
) -> subprocess.Popen:
    """``dg <args>`` or ``dagster <args> -m sbr_dagster.definitions`` in a fresh process, run from
    ``workdir`` made a ``project_copy``. Output goes to ``workdir / CLI_LOG``.
    """
    project_copy(workdir)
    command = [str(DG), *args] if tool == "dg" else [str(DAGSTER), *args, "-m", "sbr_dagster.definitions"]
    environment = cli_env(data=data, lake_root=lake_root, definition=definition, workdir=workdir, **env)
    with open(workdir / CLI_LOG, "wb") as log:  # the child keeps its own handle
        return subprocess.Popen(command, cwd=workdir, env=environment, stdout=log, stderr=subprocess.STDOUT)


@contextlib.contextmanager
def ui_instance(project: Path) -> Iterator[dg.DagsterInstance]:
    """The instance ``dg dev`` / ``dagster dev`` open in ``project`` with DAGSTER_HOME unset."""
    from dagster._cli.utils import get_possibly_temporary_instance_for_cli

    home = os.environ.pop("DAGSTER_HOME", None)
    cwd = os.getcwd()
    os.chdir(project)
    try:
        with get_possibly_temporary_instance_for_cli("the UI") as instance:
            yield instance
    finally:
        os.chdir(cwd)
        if home is not None:
            os.environ["DAGSTER_HOME"] = home
