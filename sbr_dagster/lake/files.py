"""Atomic file writes for the data lake.

Every table and model is written to a temporary sibling and renamed into place, so a run
killed at any moment leaves either the old file or the new one, never half of one. On an object
store (``s3://...`` and other fsspec URLs, through UPath) a file is written locally first and then
uploaded in one PUT: the object appears whole or not at all. The
temporary name carries the writer's process id (``.<name>.<pid>.<random>.tmp``): a later write
of the same file removes the leftovers of writers that no longer run, so killed runs do not
pile up debris, while a concurrent writer's file is never touched.
"""

from __future__ import annotations

import errno
import glob
import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import polars as pl
from upath import UPath

from sbr_dagster.errors import InputDataError
from sbr_dagster.settings import ENV_DATA_LAKE

_LOCAL_PROTOCOLS = ("", "file", "local")
_ADVICE = f"point {ENV_DATA_LAKE} (the `lake` resource's root) at a writable directory"
_FULL = (errno.ENOSPC, errno.EDQUOT)


def as_path(location: str | os.PathLike[str] | UPath) -> Path | UPath:
    """A ``Path`` for local locations, a ``UPath`` (fsspec) for URLs such as ``s3://bucket/lake``."""
    if isinstance(location, Path | UPath):
        return location
    text = os.fspath(location)
    if "://" not in text or text.startswith("file://"):
        return Path(text.removeprefix("file://"))
    return UPath(text)


def check_reachable(root: str | os.PathLike[str]) -> None:
    """An object-store lake answers before a run relies on it: a missing client library, missing
    credentials or an unknown bucket become one line naming the lake, not a failure mid-write."""
    try:
        as_path(root).exists()
    except ImportError as error:
        raise InputDataError(
            f"data lake {root} is on an object store, whose client library is not installed ({error}). "
            "Install the extra: pip install -e '.[s3]'."
        ) from None
    except Exception as error:  # botocore, gcsfs, ...: each has its own exception types
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise InputDataError(
            f"cannot reach data lake {root}: {first}. Check the credentials and endpoint "
            "(AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL) or point "
            f"{ENV_DATA_LAKE} elsewhere."
        ) from None


def is_remote(path: str | os.PathLike[str]) -> bool:
    return getattr(as_path(path), "protocol", "") not in _LOCAL_PROTOCOLS


def _upload(local: Path, target: Path) -> None:
    target.fs.put_file(str(local), target.path)


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def _blocker(directory: Path) -> Path | None:
    """The nearest existing ancestor of ``directory`` (itself included) that is not a directory."""
    for candidate in (directory, *directory.parents):
        if candidate.exists():
            return None if candidate.is_dir() else candidate
    return None


def ensure_directory(directory: str | os.PathLike[str]) -> Path:
    """``mkdir -p``, failing with an error a user can act on instead of a bare ``NotADirectoryError``."""
    directory = Path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        blocker = _blocker(directory)
        why = f"{blocker} is a file, not a directory" if blocker else error.strerror or str(error)
        raise InputDataError(
            f"cannot create directory {directory}: {why}. Fix that path or {_ADVICE}."
        ) from error
    return directory


def _writer_pid(path: Path, target: Path) -> int | None:
    """The process id in a temporary name made for ``target``, or None for any other name."""
    pid = path.name[len(target.name) + 2 :].split(".", 1)[0]
    return int(pid) if pid.isdigit() else None


def running(pid: int) -> bool:
    """Whether process ``pid`` may still write (a temporary file it named is then not stale)."""
    try:
        os.kill(pid, 0)  # signal 0: existence check only
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # someone else's process
    return not _ended(pid)


def _ended(pid: int) -> bool:
    """A zombie (Linux: ended, not yet reaped by its parent) never writes again, though it exists:
    a killed step waits so when the process that forked it died with it."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False  # no /proc: trust the existence check
    return state in ("Z", "X")


def temporary_prefix(target: str | os.PathLike[str]) -> str:
    """Name prefix of this process's temporary siblings of ``target`` (files or directories)."""
    return f".{Path(target).name}.{os.getpid()}."


def remove_stale(target: str | os.PathLike[str]) -> list[Path]:
    """Delete temporary siblings of ``target`` left by writers that were killed; return them."""
    target = Path(target)
    if os.name != "posix" or not target.parent.is_dir():  # os.kill(pid, 0) is only a probe on POSIX
        return []
    stale = []
    for sibling in target.parent.glob(f".{glob.escape(target.name)}.*"):
        pid = _writer_pid(sibling, target)
        if pid is None or pid == os.getpid() or running(pid):
            continue
        if sibling.is_dir() and not sibling.is_symlink():
            shutil.rmtree(sibling, ignore_errors=True)
        else:
            sibling.unlink(missing_ok=True)
        stale.append(sibling)
    return stale


def _fsync(path: Path) -> None:
    """Flush file contents to disk so a power cut after the rename cannot leave an empty file."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_path(target: str | os.PathLike[str], suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``target``; on success it replaces ``target``, on error it vanishes."""
    target = Path(target)
    ensure_directory(target.parent)
    remove_stale(target)
    try:
        fd, tmp_name = tempfile.mkstemp(
            prefix=temporary_prefix(target), suffix=f"{suffix}.tmp", dir=target.parent
        )
    except OSError as error:
        raise InputDataError(
            f"cannot write {target}: {error.strerror or error}. Fix that or {_ADVICE}."
        ) from error
    os.close(fd)
    tmp = Path(tmp_name)
    tmp.chmod(0o666 & ~_umask())  # mkstemp makes 0600; lake files get the usual permissions
    try:
        try:
            yield tmp
        except OSError as error:
            if error.errno in _FULL:
                raise InputDataError(
                    f"cannot write {target}: {error.strerror}. Free space or {_ADVICE}."
                ) from error
            raise
        _fsync(tmp)
        try:
            os.replace(tmp, target)
        except IsADirectoryError as error:
            raise InputDataError(
                f"cannot write {target}: it is a directory. Remove it or {_ADVICE}."
            ) from error
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def atomic_directory(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield an empty directory beside ``target``; on success it replaces ``target`` as a whole.

    For files that only make sense together (a model and its item index): readers see the old set
    or the new one, never a mix. A directory cannot be renamed over a non-empty one, so the old one
    is first renamed aside: a crash between the two renames leaves no ``target`` at all (a clear
    "materialize it again"), and the old copy as a temporary that the next write removes.
    """
    target = as_path(target)
    if is_remote(target):
        # Object stores have no directory rename: stage locally, then replace the objects one by one.
        with tempfile.TemporaryDirectory() as scratch:
            staging = Path(scratch) / target.name
            staging.mkdir()
            yield staging
            if target.exists():
                target.fs.rm(target.path, recursive=True)
            for local in sorted(staging.iterdir()):
                _upload(local, target / local.name)
        return
    ensure_directory(target.parent)
    remove_stale(target)
    staging = Path(tempfile.mkdtemp(prefix=temporary_prefix(target), dir=target.parent))
    try:
        yield staging
        staging.chmod(0o777 & ~_umask())  # mkdtemp makes 0700
        if target.exists():
            retired = Path(tempfile.mkdtemp(prefix=temporary_prefix(target), dir=target.parent))
            os.replace(target, retired)  # onto an empty directory: allowed
            os.replace(staging, target)
            shutil.rmtree(retired)
        else:
            os.replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def write_atomic(target: str | os.PathLike[str], write: Callable[[Path], object], suffix: str = "") -> Path:
    """Run ``write(tmp_path)`` and move the result onto ``target`` in one rename (or one upload)."""
    target = as_path(target)
    if is_remote(target):
        with tempfile.TemporaryDirectory() as scratch:
            tmp = Path(scratch) / f"{target.name}{suffix}"
            write(tmp)
            _upload(tmp, target)
        return target
    with atomic_path(target, suffix=suffix) as tmp:
        write(tmp)
    return target


def write_parquet(frame: pl.DataFrame, target: str | os.PathLike[str]) -> Path:
    """Write ``frame`` as Parquet atomically; statistics on, zstd compression, deterministic bytes."""
    return write_atomic(target, lambda tmp: frame.write_parquet(tmp, compression="zstd", statistics=True))


def fingerprint(frame: pl.DataFrame) -> str:
    """A digest of a table's schema and rows, in order: equal tables, equal digests (a data version)."""
    digest = hashlib.sha256(repr(list(frame.schema.items())).encode())
    digest.update(frame.hash_rows(seed=0).to_numpy().tobytes())
    return digest.hexdigest()[:24]


def read_parquet(path: str | os.PathLike[str]) -> pl.DataFrame:
    path = as_path(path)
    if is_remote(path):
        with path.open("rb") as stream:
            return pl.read_parquet(stream)
    return pl.read_parquet(path)


@contextmanager
def local_copy(directory: str | os.PathLike[str]) -> Iterator[Path]:
    """``directory`` itself when local; else a temporary local copy of it (e.g. to load a Keras file)."""
    directory = as_path(directory)
    if not is_remote(directory):
        yield directory
        return
    with tempfile.TemporaryDirectory() as scratch:
        local = Path(scratch) / directory.name
        local.mkdir()
        if directory.exists():
            for remote in directory.iterdir():
                if remote.is_file():
                    remote.fs.get_file(remote.path, str(local / remote.name))
        yield local
