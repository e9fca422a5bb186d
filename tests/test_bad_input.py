"""Bad input, end to end through the preprocess job.

Each case must fail with an ``InputDataError`` whose message names the file, line or value and says
what to do, and must leave the lake as it was: no half-written Parquet, no temporary files. The
parser's own unit tests (test_parsing.py, test_source.py) cover every message in detail; here the
point is what a user running the pipeline sees and what is left on disk.
"""

from __future__ import annotations

import errno
import hashlib
import re
import shutil
import zipfile
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
from pipeline_runs import lake_files, run_job, stray_temporaries

from sbr_dagster.data import parsing
from sbr_dagster.defs.resources import MovieLensSource
from sbr_dagster.errors import InputDataError
from sbr_dagster.lake import files as lake
from sbr_dagster.lake import layout

DEFINITION = "user"
BAD_LINE = 21  # the bad line comes after 20 good ones, so the reported number means something
FIX_LINE = "Fix or remove this line"


def run_preprocess(
    lake_root: Path, movielens: MovieLensSource | Path, **settings
) -> dg.ExecuteInProcessResult:
    """The preprocess job for one definition and no sweep."""
    return run_job("preprocess", data=movielens, lake_root=lake_root, names=(DEFINITION,), **settings)


@pytest.fixture(scope="module")
def good_lake(ml1m_like_dir, tmp_path_factory) -> tuple[Path, dict[str, bytes]]:
    """A lake fully materialized from good data, and a snapshot of its bytes."""
    root = tmp_path_factory.mktemp("good_lake")
    assert run_preprocess(root, ml1m_like_dir).success
    return root, lake_files(root)


@pytest.fixture
def lake_copy(good_lake, tmp_path) -> Path:
    """A private copy of the good lake: a failing run must leave it byte for byte as it was."""
    copy = tmp_path / "lake"
    shutil.copytree(good_lake[0], copy)
    return copy


def data_dir(source: Path, target: Path, **files: bytes | None) -> Path:
    """A copy of the data set in ``source`` with some files replaced (``None`` removes one)."""
    shutil.copytree(source, target)
    for name, content in files.items():
        path = target / name.replace("_dat", ".dat")
        if content is None:
            path.unlink()
        else:
            path.write_bytes(content)
    return target


def with_bad_line(good: bytes, bad: bytes) -> bytes:
    lines = good.splitlines(keepends=True)
    return b"".join([*lines[: BAD_LINE - 1], bad + b"\n", *lines[BAD_LINE - 1 : 40]])


def raises_input_error(lake_root: Path, movielens: MovieLensSource | Path, **settings) -> str:
    with pytest.raises(InputDataError) as caught:
        run_preprocess(lake_root, movielens, **settings)
    return str(caught.value)


# (case, bad line or None for a whole-file replacement, whole file, fragments the message must contain)
RATINGS_CASES = [
    ("malformed line", b"this is not a rating", None, ["found 1", "'this is not a rating'", FIX_LINE]),
    ("commas", b"1,10,5,978300760", None, ["separated by commas", "'1,10,5,978300760'", FIX_LINE]),
    ("tabs", b"1\t10\t5\t978300760", None, ["separated by tabs", FIX_LINE]),
    ("3 fields", b"1::10::5", None, ["expected 4 fields", "found 3", "'1::10::5'", FIX_LINE]),
    ("5 fields", b"1::10::5::978300760::9", None, ["found 5", FIX_LINE]),
    ("non-numeric user", b"u1::10::5::978300760", None, ["user_id 'u1' is not an integer", FIX_LINE]),
    ("non-numeric movie", b"1::ten::5::978300760", None, ["item_id 'ten' is not an integer", FIX_LINE]),
    ("non-numeric rating", b"1::10::4.5::978300760", None, ["rating '4.5' is not an integer", FIX_LINE]),
    ("date timestamp", b"1::10::5::2000-12-31", None, ["timestamp '2000-12-31' is not an integer", FIX_LINE]),
    ("rating 6", b"1::10::6::978300760", None, ["rating 6 is outside 1..5", FIX_LINE]),
    ("rating 0", b"1::10::0::978300760", None, ["rating 0 is outside 1..5", FIX_LINE]),
    ("milliseconds", b"1::10::5::978300760000", None, ["not Unix epoch seconds", FIX_LINE]),
    ("empty file", None, b"", ["ratings.dat is empty", "Re-download or re-extract"]),
    ("blank lines only", None, b"\n\r\n\n", ["ratings.dat is empty", "Re-download or re-extract"]),
    ("a gzip file", None, b"\x1f\x8b\x08\x00" + bytes(range(256)) * 400, ["gzip archive", "extract it"]),
]


@pytest.mark.parametrize(
    ("case", "line", "whole", "fragments"), RATINGS_CASES, ids=[c[0] for c in RATINGS_CASES]
)
def test_bad_ratings_file(ml1m_like_dir, good_lake, lake_copy, tmp_path, case, line, whole, fragments):
    good = (ml1m_like_dir / "ratings.dat").read_bytes()
    content = with_bad_line(good, line) if line is not None else whole
    data = data_dir(ml1m_like_dir, tmp_path / "data", ratings_dat=content)
    message = raises_input_error(lake_copy, data)
    assert str(data / "ratings.dat") in message
    if line is not None:
        assert f"line {BAD_LINE}:" in message
    for fragment in fragments:
        assert fragment in message
    assert len(message) < 600, "a garbled file must not flood the message"
    assert lake_files(lake_copy) == good_lake[1], "the lake is untouched: nothing partial, no temporaries"


def test_bad_movies_line(ml1m_like_dir, good_lake, lake_copy, tmp_path):
    good = (ml1m_like_dir / "movies.dat").read_bytes()
    data = data_dir(ml1m_like_dir, tmp_path / "data", movies_dat=with_bad_line(good, b"42|Heat (1995)|Drama"))
    message = raises_input_error(lake_copy, data)
    assert f"{data / 'movies.dat'}, line {BAD_LINE}: expected 3 fields" in message
    assert "'42|Heat (1995)|Drama'" in message
    assert FIX_LINE in message
    assert lake_files(lake_copy) == good_lake[1]


@pytest.mark.parametrize("missing", ["directory", "ratings.dat", "movies.dat"])
def test_missing_directory_or_file(ml1m_like_dir, good_lake, lake_copy, tmp_path, missing):
    if missing == "directory":
        data = tmp_path / "no_such_dir"
        expected = [f"MovieLens 1M directory {data}", "does not exist"]
    else:
        data = data_dir(ml1m_like_dir, tmp_path / "data", **{missing.replace(".", "_"): None})
        expected = [f"MovieLens 1M directory {data}", f"lacks {missing}"]
    message = raises_input_error(lake_copy, data)
    for fragment in [*expected, "SBR_ML1M_DIR"]:
        assert fragment in message
    assert lake_files(lake_copy) == good_lake[1]


def zip_of(directory: Path, target: Path) -> bytes:
    """``directory``'s .dat files zipped under ``ml-1m/``, as GroupLens ships them."""
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(directory.glob("*.dat")):
            archive.write(path, f"ml-1m/{path.name}")
    return target.read_bytes()


def downloading(url: str, md5: str) -> MovieLensSource:
    return MovieLensSource(local_dir=None, url=url, md5=md5)


def test_download_with_wrong_md5_is_refused(ml1m_like_dir, good_lake, lake_copy, tmp_path):
    archive = tmp_path / "ml-1m.zip"
    actual = hashlib.md5(zip_of(ml1m_like_dir, archive)).hexdigest()
    expected = "0" * 32
    message = raises_input_error(lake_copy, downloading(archive.as_uri(), expected))
    for fragment in [
        archive.as_uri(),
        f"MD5 {actual}",
        f"expected {expected}",
        "was deleted",
        "SBR_ML1M_DIR",
    ]:
        assert fragment in message
    assert lake_files(lake_copy) == good_lake[1], "the refused download is not kept"
    assert not stray_temporaries(lake_copy)


def test_truncated_download_is_refused_and_deleted(ml1m_like_dir, good_lake, lake_copy, tmp_path):
    whole = zip_of(ml1m_like_dir, tmp_path / "whole.zip")
    archive = tmp_path / "cut.zip"
    archive.write_bytes(whole[: len(whole) // 2])
    # The checksum given matches the cut file, so only the unzip can notice the damage.
    md5 = hashlib.md5(archive.read_bytes()).hexdigest()
    message = raises_input_error(lake_copy, downloading(archive.as_uri(), md5))
    download = lake_copy / "raw" / "download"
    assert f"MovieLens archive {download / 'ml-1m.zip'} is corrupt or truncated" in message
    assert "it was deleted" in message
    assert "Run again to download it anew" in message
    assert list(download.iterdir()) == [], "neither the archive nor a half extraction is left"
    assert lake_files(lake_copy) == good_lake[1]


def test_verified_download_gives_the_same_tables(ml1m_like_dir, good_lake, tmp_path):
    archive = tmp_path / "ml-1m.zip"
    md5 = hashlib.md5(zip_of(ml1m_like_dir, archive)).hexdigest()
    root = tmp_path / "lake"
    assert run_preprocess(root, downloading(archive.as_uri(), md5)).success
    for table in (
        "raw/ratings.parquet",
        "raw/movies.parquet",
        str(layout.table_path(".", (DEFINITION, "train"))),
    ):
        assert (root / table).read_bytes() == good_lake[1][table]
    assert sorted(p.name for p in (root / "raw" / "download").iterdir()) == ["ml-1m-" + md5, "ml-1m.zip"]


def test_latin1_movie_titles_load(ml1m_like_dir, good_lake):
    raw = (ml1m_like_dir / "movies.dat").read_bytes()
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")  # really Latin-1, as in ML-1M
    accented = set(re.findall(r"\w*[^\x00-\x7f]\w*", raw.decode("latin-1")))
    assert accented
    titles = " ".join(pl.read_parquet(good_lake[0] / "raw" / "movies.parquet")["title"])
    assert all(word in titles for word in accented)
    assert "Ã" not in titles
    assert "\ufffd" not in titles


def test_utf8_resaved_movies_keep_their_accents(ml1m_like_dir, tmp_path):
    latin1 = (ml1m_like_dir / "movies.dat").read_bytes()
    utf8 = tmp_path / "movies.dat"
    utf8.write_bytes(b"\xef\xbb\xbf" + latin1.decode("latin-1").encode("utf-8"))  # with a BOM, like Notepad
    assert parsing.read_movies(utf8).equals(parsing.read_movies(ml1m_like_dir / "movies.dat"))


def test_duplicate_ratings_keep_the_earliest(ml1m_like_dir, tmp_path):
    good = (ml1m_like_dir / "ratings.dat").read_bytes()
    first = [line.split(b"::") for line in good.splitlines()[:3]]
    u, i = [(row[0], row[1]) for row in first], [int(row[3]) for row in first]
    extra = [
        b"::".join([u[0][0], u[0][1], b"1", str(i[0] + 600).encode()]),  # a later re-rating: dropped
        b"::".join([u[1][0], u[1][1], b"1", str(i[1]).encode()]),  # same second, later line: dropped
        b"::".join([u[2][0], u[2][1], b"1", str(i[2] - 600).encode()]),  # earlier: kept, line 3 dropped
    ]
    data = data_dir(ml1m_like_dir, tmp_path / "data", ratings_dat=good + b"\n".join(extra) + b"\n")
    result = run_preprocess(tmp_path / "lake", data)
    assert result.success
    metadata = result.asset_materializations_for_node("raw__ratings")[0].metadata
    assert metadata["duplicate_ratings_dropped"].value == 3
    ratings = pl.read_parquet(tmp_path / "lake" / "raw" / "ratings.parquet")
    n_good = len(good.splitlines())
    assert ratings.height == n_good
    assert ratings.select(pl.struct("user_id", "item_id").is_unique().all()).item()
    kept_lines = set(ratings["line"])
    assert {1, 2} <= kept_lines
    assert 3 not in kept_lines
    assert n_good + 3 in kept_lines
    assert {n_good + 1, n_good + 2}.isdisjoint(kept_lines)


def test_cleansing_that_leaves_nothing_names_the_knobs(good_lake, lake_copy, ml1m_like_dir):
    message = raises_input_error(lake_copy, ml1m_like_dir, min_item_support=10**6, split_method="days")
    assert message.startswith(f"{DEFINITION}: cleansing removed every event: min_item_support=1000000")
    assert "resources.preprocessing.config" in message
    # On the timeline protocol the shared candidate set is the first thing left empty.
    message = raises_input_error(lake_copy, ml1m_like_dir, min_item_support=10**6)
    assert message.startswith("no movie has 1000000 ratings before the validation cut")
    assert "lower min_item_support" in message
    for part in ("train", "valid", "test", "item_index"):
        table = str(layout.table_path(".", (DEFINITION, part)))
        assert (lake_copy / table).read_bytes() == good_lake[1][table], "the old split stays"
    assert not stray_temporaries(lake_copy)


def test_empty_validation_split_names_the_split_and_knob(tmp_path):
    """Four one-session users; the validation session has only movies train never saw."""
    day = 86_400
    sessions = {1: ([1, 2, 3], 0), 2: ([1, 2, 3], 1), 3: ([7, 8], 2), 4: ([1, 2], 3)}
    lines = [
        f"{user}::{item}::4::{978_300_000 + start * day + k * 60}"
        for user, (items, start) in sessions.items()
        for k, item in enumerate(items)
    ]
    data = tmp_path / "data"
    data.mkdir()
    (data / "ratings.dat").write_text("\n".join(lines) + "\n")
    (data / "movies.dat").write_text("".join(f"{i}::Movie {i} (1999)::Drama\n" for i in (1, 2, 3, 7, 8)))
    message = raises_input_error(
        tmp_path / "lake",
        data,
        min_item_support=1,
        split_method="fraction",
        test_fraction=0.25,
        valid_fraction=0.25,
    )
    assert "the valid split is empty" in message
    assert "method 'fraction'" in message
    assert "Raise valid_fraction" in message
    assert not layout.table_path(tmp_path / "lake", (DEFINITION, "train")).exists()
    assert not stray_temporaries(tmp_path / "lake")


def test_lake_root_that_is_a_file(ml1m_like_dir, tmp_path):
    root = tmp_path / "lake"
    root.write_text("not a directory")
    for movielens in (ml1m_like_dir, downloading("file:///nowhere/ml-1m.zip", "0" * 32)):
        message = raises_input_error(root, movielens)
        assert f"cannot create directory {root}: " in message, "checked when the run starts"
        assert f"{root} is a file, not a directory" in message
        assert "SBR_DATA_LAKE" in message
        assert root.read_text() == "not a directory"


def test_table_path_that_is_a_directory(ml1m_like_dir, tmp_path):
    blocked = tmp_path / "lake" / "raw" / "ratings.parquet"
    blocked.mkdir(parents=True)
    message = raises_input_error(tmp_path / "lake", ml1m_like_dir)
    assert f"cannot write {blocked}: it is a directory" in message
    assert not stray_temporaries(tmp_path / "lake")


def test_full_disk_is_a_clear_error_and_keeps_the_old_file(tmp_path):
    target = tmp_path / "table.parquet"
    lake.write_parquet(pl.DataFrame({"a": [1]}), target)
    before = target.read_bytes()

    def fill_disk(tmp: Path) -> None:
        tmp.write_bytes(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(InputDataError, match=re.escape(f"cannot write {target}: No space left on device")):
        lake.write_atomic(target, fill_disk)
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["table.parquet"]
