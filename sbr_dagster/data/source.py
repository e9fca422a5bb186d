"""Where MovieLens 1M comes from: a local copy, or the GroupLens zip downloaded and checked once.

GroupLens forbids redistribution, so the data is never part of the repository: either the user
points ``SBR_ML1M_DIR`` at an extracted copy, or the archive is downloaded into the cache. A
downloaded file is used only after its MD5 matches, and every write is atomic, so an interrupted
or corrupted download can never be mistaken for the data set.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
import zlib
from pathlib import Path

from sbr_dagster.data import parsing
from sbr_dagster.errors import InputDataError
from sbr_dagster.lake.files import atomic_path, ensure_directory, remove_stale, temporary_prefix
from sbr_dagster.settings import ENV_ML1M_DIR

ML1M_URL = "https://files.grouplens.org/datasets/movielens/ml-1m.zip"
ML1M_ZIP_MD5 = "c4d9eecfca2ab87c1945afe126590906"
ML1M_RATINGS_MD5 = "a89aa3591bc97d6d4e0c89459ff39362"  # ratings.dat inside that zip
ML1M_FINGERPRINT = dict(ratings=1_000_209, users=6_040, items=3_706)
REQUIRED_FILES = ("ratings.dat", "movies.dat")


def md5_of(path: str | os.PathLike[str]) -> str:
    """Hex MD5 of a file, read in 1 MiB chunks."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def check_dataset_dir(directory: Path, origin: str) -> Path:
    """``directory`` if it is a readable directory holding readable ``REQUIRED_FILES``; else say why not."""
    where = f"MovieLens 1M directory {directory} ({origin})"
    advice = (
        f"Set {ENV_ML1M_DIR} to the extracted ml-1m directory holding {' and '.join(REQUIRED_FILES)}, or "
        "unset it to download the data set."
    )
    problem = parsing.path_problem(directory, "directory")
    if problem is not None:
        if problem.code == "wrong_kind":
            advice = f"If it is the ml-1m.zip archive, extract it. {advice}"
        raise InputDataError(f"{where} {problem.cause}. {problem.remedy(advice)}")
    problems = {name: parsing.path_problem(directory / name, "file") for name in REQUIRED_FILES}
    broken = [(name, problem) for name, problem in problems.items() if problem and not problem.missing]
    if broken:
        name, problem = broken[0]
        raise InputDataError(f"{where}: its {name} {problem.cause}. {problem.remedy(advice)}")
    missing = [name for name, problem in problems.items() if problem]
    if missing:
        raise InputDataError(
            f"{where} lacks {', '.join(missing)}. Set {ENV_ML1M_DIR} to the extracted ml-1m directory (the "
            "one containing ratings.dat), or unset it to download."
        )
    return directory


def _download(url: str, archive: Path, md5: str) -> None:
    """Fetch ``url`` into ``archive``; the file appears only if its MD5 is ``md5``."""
    advice = f"Download {url} by hand, extract it and set {ENV_ML1M_DIR} to the extracted ml-1m directory."
    with atomic_path(archive, suffix=".part") as partial:
        try:
            with urllib.request.urlopen(url, timeout=60) as response, open(partial, "wb") as out:
                shutil.copyfileobj(response, out, 1 << 20)
        except (urllib.error.URLError, OSError, ValueError) as error:
            raise InputDataError(f"could not download MovieLens 1M from {url}: {error}. {advice}") from error
        actual = md5_of(partial)
        if actual != md5:
            raise InputDataError(
                f"downloaded {url} has MD5 {actual}, expected {md5}: the file is corrupt, truncated or not "
                f"MovieLens 1M, and was deleted. Retry, or: {advice}"
            )


def _extract(archive: Path, target: Path) -> None:
    """Unzip into a temporary sibling and rename the directory holding the .dat files onto ``target``."""
    remove_stale(target)
    staging = Path(tempfile.mkdtemp(prefix=temporary_prefix(target), dir=target.parent))
    try:
        try:
            with zipfile.ZipFile(archive) as bundle:
                bundle.extractall(staging)
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as error:
            archive.unlink(missing_ok=True)
            raise InputDataError(
                f"MovieLens archive {archive} is corrupt or truncated ({error}); it was deleted. "
                f"Run again to download it anew, or set {ENV_ML1M_DIR} to an extracted copy."
            ) from error
        holders = sorted(path.parent for path in staging.rglob(REQUIRED_FILES[0]))
        if not holders:
            raise InputDataError(f"MovieLens archive {archive} contains no {REQUIRED_FILES[0]}; is it ML-1M?")
        check_dataset_dir(holders[0], f"extracted from {archive}")
        os.replace(holders[0], target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def locate_ml1m(
    local_dir: str | os.PathLike[str] | None,
    cache_dir: str | os.PathLike[str],
    url: str = ML1M_URL,
    md5: str = ML1M_ZIP_MD5,
) -> Path:
    """Directory holding ratings.dat and movies.dat: ``local_dir`` if given, else the verified download.

    The download is cached as ``cache_dir/ml-1m.zip`` and extracted to ``cache_dir/ml-1m-<md5>``,
    keyed by checksum so a different archive never reuses another's files.
    """
    if local_dir:
        return check_dataset_dir(Path(local_dir), f"from {ENV_ML1M_DIR} / local_dir")
    cache_dir = Path(cache_dir)
    extracted = cache_dir / f"ml-1m-{md5}"
    if extracted.is_dir():
        return check_dataset_dir(extracted, "download cache")
    ensure_directory(cache_dir)
    archive = cache_dir / "ml-1m.zip"
    if archive.is_file() and md5_of(archive) != md5:
        archive.unlink()  # a stale or damaged earlier download: never use it
    if not archive.is_file():
        _download(url, archive, md5)
    _extract(archive, extracted)
    return extracted
