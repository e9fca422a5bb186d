"""Atomic file writes for the data lake.

Every table and model is written to a temporary sibling and renamed into place, so a run
killed at any moment leaves either the old file or the new one, never half of one.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import polars as pl


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


@contextmanager
def atomic_path(target: str | os.PathLike[str], suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``target``; on success it replaces ``target``, on error it vanishes."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=f"{suffix}.tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    tmp.chmod(0o666 & ~_umask())  # mkstemp makes 0600; lake files get the usual permissions
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def write_atomic(target: str | os.PathLike[str], write: Callable[[Path], object], suffix: str = "") -> Path:
    """Run ``write(tmp_path)`` and move the result onto ``target`` in one rename."""
    with atomic_path(target, suffix=suffix) as tmp:
        write(tmp)
    return Path(target)


def write_parquet(frame: pl.DataFrame, target: str | os.PathLike[str]) -> Path:
    """Write ``frame`` as Parquet atomically; statistics on, zstd compression, deterministic bytes."""
    return write_atomic(target, lambda tmp: frame.write_parquet(tmp, compression="zstd", statistics=True))


def read_parquet(path: str | os.PathLike[str]) -> pl.DataFrame:
    return pl.read_parquet(path)
