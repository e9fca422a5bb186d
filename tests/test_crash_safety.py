"""Crash safety: a materialization killed in the middle of a write leaves every table whole.

A real ``dagster asset materialize`` process is SIGKILLed while it writes a table; every Parquet
file left in the lake must then be exactly the old version or exactly the new one. A re-run must
succeed, remove the killed writer's temporary files, and a further re-run must change no byte. With
steps in parallel the writer is a step's process: killing the run must end it too, so no step of a
killed run goes on writing (Linux).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest
from pipeline_runs import cli, lake_files, stray_temporaries
from test_bad_input import run_preprocess

from sbr_dagster.lake import files as lake
from sbr_dagster.lake import layout
from sbr_dagster.testing import synthetic

NEEDS_PROC = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads processes from /proc")
SELECTION = ",".join(
    ["raw/ratings", "raw/movies"]
    + [f"user/{table}" for table in ("sessions", "cleansed", "train", "valid", "test", "item_index")]
)


def descendants(pid: int) -> set[int]:
    """The processes below ``pid``, read from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue  # ended meanwhile
            children.setdefault(parent, []).append(int(entry.name))
    found: set[int] = set()
    stack = [pid]
    while stack:
        for child in children.get(stack.pop(), ()):
            found.add(child)
            stack.append(child)
    return found


def kill_during_write(
    process: subprocess.Popen, directory: Path, timeout_s: float = 180, prefix: str = ""
) -> Path | None:
    """SIGKILL ``process`` as soon as a temporary file (``prefix``: a staging folder whose name starts
    so) shows up in ``directory``; return it. None when the process ended (or the time ran out) first.
    Every process the run started must end within seconds of it.
    """
    deadline = time.monotonic() + timeout_s
    caught = None

    def temporary(name: str) -> bool:
        return name.startswith(prefix) if prefix else name.endswith(".tmp")

    while caught is None and process.poll() is None and time.monotonic() < deadline:
        if directory.is_dir():
            caught = next((Path(e.path) for e in os.scandir(directory) if temporary(e.name)), None)
        if caught is None:
            time.sleep(0.001)
    below = descendants(process.pid)
    process.kill()  # SIGKILL: no cleanup handler runs
    process.wait()
    deadline = time.monotonic() + 10
    while [pid for pid in below if lake.running(pid)] and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not [pid for pid in below if lake.running(pid)], "a process of the killed run is still running"
    return caught


def old_lake_then_killed_update(
    tmp_path: Path, prefix: str = "", parallel_steps: str = "1"
) -> tuple[Path, Path, dict[str, bytes]]:
    """A lake built from small data, then a real materialization of larger data SIGKILLed while it
    writes (a ``.tmp`` file, or with ``prefix`` a staging folder), running ``parallel_steps`` steps
    at a time; returns the lake, the new data and the old lake's bytes."""
    old_data = synthetic.write_ml1m_like(tmp_path / "old", n_users=60, n_items=80, seed=1)
    # ~450k ratings: writing the user sessions table takes a good fraction of a second.
    new_data = synthetic.write_ml1m_like(tmp_path / "new", n_users=10_000, n_items=2_000, seed=2)
    root = tmp_path / "lake"
    assert run_preprocess(root, old_data).success
    old = lake_files(root)
    for _ in range(3):
        materialize = cli(
            "dagster",
            ["asset", "materialize", "--select", SELECTION],
            data=new_data,
            lake_root=root,
            definition="user",
            workdir=tmp_path,
            SBR_PARALLEL_STEPS=parallel_steps,
        )
        caught = kill_during_write(materialize, root / "user", prefix=prefix)
        if caught is not None and caught.exists():
            return root, new_data, old  # killed while it was being written: it is left behind
    pytest.fail("the materialization was never caught in the middle of a write")


@NEEDS_PROC
@pytest.mark.parametrize("parallel_steps", ["1", "2"])
def test_killed_mid_write_leaves_old_or_new_tables_and_rerun_cleans_up(tmp_path, parallel_steps):
    root, new_data, old = old_lake_then_killed_update(tmp_path, parallel_steps=parallel_steps)

    after_kill = lake_files(root)
    tables = sorted(name for name in after_kill if name.endswith(".parquet") and "/." not in name)
    assert tables == sorted(old), "no table vanished and no stray table appeared"
    for name in tables:
        pl.read_parquet(root / name)  # whole files only: a half-written one would not parse
    assert stray_temporaries(root), "the killed writer's temporary file is still there"

    assert run_preprocess(root, new_data).success
    new = lake_files(root)
    assert not stray_temporaries(root), "the re-run removed the killed run's temporary files"
    assert sorted(new) == tables
    for name in tables:
        assert after_kill[name] in (old[name], new[name]), f"{name} is neither the old nor the new table"
    assert after_kill["raw/ratings.parquet"] == new["raw/ratings.parquet"] != old["raw/ratings.parquet"]

    assert run_preprocess(root, new_data).success
    assert lake_files(root) == new, "re-materializing changes no byte"


def finished_pid() -> int:
    """The id of a process that has exited (and was reaped), so nothing is writing under it."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def zombie() -> subprocess.Popen:
    """A process that has ended but is not reaped yet: it still exists, and never writes again."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 30
    while lake.running(process.pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert (Path("/proc") / str(process.pid)).exists() and not lake.running(process.pid)
    return process


@NEEDS_PROC
def test_rewrite_removes_temporaries_of_dead_writers_only(tmp_path):
    target = tmp_path / "model.keras"
    dead, alive, ended = finished_pid(), os.getppid(), zombie()
    dead_files = [
        f".model.keras.{dead}.x1y2.keras.tmp",
        f".model.keras.{dead}.x1y2.keras",
        f".model.keras.{ended.pid}.z1z2.keras.tmp",  # a killed step whose parent died with it
    ]
    kept_files = [
        f".model.keras.{alive}.a1b2.keras.tmp",  # a live writer's: never touched
        f".other.keras.{dead}.c3d4.tmp",  # another target's: cleaned when that one is written
        ".model.keras.notes",  # not a temporary name
    ]
    for name in dead_files + kept_files:
        (tmp_path / name).write_bytes(b"partial")
    (tmp_path / f".model.keras.{dead}.dir").mkdir()  # an interrupted extraction directory
    (tmp_path / f".model.keras.{dead}.dir" / "ratings.dat").write_bytes(b"partial")

    lake.write_atomic(target, lambda tmp: tmp.write_bytes(b"complete"))

    assert target.read_bytes() == b"complete"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([target.name, *kept_files])
    ended.wait()


def test_directory_is_replaced_as_a_whole(tmp_path):
    target = tmp_path / "gru4rec"

    def contents() -> dict[str, bytes]:
        return {p.name: p.read_bytes() for p in target.iterdir()}

    for files in ({"model.keras": b"old", "item_index.parquet": b"old"}, {"model.keras": b"new"}):
        before = contents() if target.exists() else None
        with lake.atomic_directory(target) as staging:
            for name, data in files.items():
                (staging / name).write_bytes(data)
            assert (contents() if target.exists() else None) == before, "readers see the old set until done"
        assert contents() == files, "the new set, with nothing left over from the old one"
    with pytest.raises(RuntimeError), lake.atomic_directory(target) as staging:
        (staging / "model.keras").write_bytes(b"half")
        raise RuntimeError("killed")
    assert contents() == {"model.keras": b"new"}
    assert [p.name for p in tmp_path.iterdir()] == ["gru4rec"]


@NEEDS_PROC
def test_killed_inside_the_split_leaves_the_old_split_whole_and_rerun_writes_the_new_one(tmp_path):
    """The four split tables are one unit: a kill while they are written leaves the old four."""
    staging = f".{layout.SPLIT_DIR}."  # the folder the new split is written into before the swap
    root, new_data, old = old_lake_then_killed_update(tmp_path, prefix=staging)
    split = [str(layout.table_path(".", ("user", part))) for part in layout.SPLIT_TABLES]

    after_kill = lake_files(root)
    assert run_preprocess(root, new_data).success
    new = lake_files(root)
    assert all(new[name] != old[name] for name in split if not name.endswith("item_index.parquet"))
    seen = {name: after_kill.get(name) for name in split}
    assert seen in ({name: old[name] for name in split}, {name: new[name] for name in split}), "a mix"
    assert not [name for name in new if f"/{staging}" in f"/{name}"], "the staging folder was removed"
