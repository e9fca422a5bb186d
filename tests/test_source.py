import functools
import hashlib
import http.server
import os
import threading
import zipfile
from pathlib import Path

import pytest

from sbr_dagster.data import source
from sbr_dagster.errors import InputDataError

RATINGS = b"1::10::5::978300760\n1::11::3::978300761\n"
MOVIES = "10::Misérables, Les (1995)::Drama\n11::Toy Story (1995)::Comedy\n".encode("latin-1")


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


@pytest.fixture
def served(tmp_path):
    """A directory served over HTTP on 127.0.0.1; yields (directory, base URL)."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def good_zip(served) -> tuple[str, str, bytes]:
    """An ML-1M-shaped zip (files under ml-1m/) on the server; yields (url, md5, bytes)."""
    root, base = served
    path = root / "ml-1m.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as bundle:
        bundle.writestr("ml-1m/ratings.dat", RATINGS)
        bundle.writestr("ml-1m/movies.dat", MOVIES)
        bundle.writestr("ml-1m/README", "test")
    data = path.read_bytes()
    return f"{base}/ml-1m.zip", md5(data), data


def test_md5_of_matches_hashlib(tmp_path):
    path = tmp_path / "blob"
    path.write_bytes(b"x" * 3_000_000)
    assert source.md5_of(path) == md5(b"x" * 3_000_000)


def test_local_dir_is_used_as_is(tmp_path):
    (tmp_path / "ratings.dat").write_bytes(RATINGS)
    (tmp_path / "movies.dat").write_bytes(MOVIES)
    assert source.locate_ml1m(str(tmp_path), tmp_path / "cache") == tmp_path
    assert not (tmp_path / "cache").exists()


def test_local_dir_missing_or_incomplete_names_dir_and_env_var(tmp_path):
    with pytest.raises(InputDataError) as caught:
        source.locate_ml1m(str(tmp_path / "nowhere"), tmp_path / "cache")
    assert str(tmp_path / "nowhere") in str(caught.value)
    assert "SBR_ML1M_DIR" in str(caught.value)
    (tmp_path / "ratings.dat").write_bytes(RATINGS)
    with pytest.raises(InputDataError, match=r"lacks movies\.dat") as caught:
        source.locate_ml1m(str(tmp_path), tmp_path / "cache")
    assert "SBR_ML1M_DIR" in str(caught.value)


def test_download_verify_extract_then_reuse(tmp_path, good_zip):
    url, digest, data = good_zip
    cache = tmp_path / "cache"
    directory = source.locate_ml1m(None, cache, url=url, md5=digest)
    assert (directory / "ratings.dat").read_bytes() == RATINGS
    assert (directory / "movies.dat").read_bytes() == MOVIES
    assert (cache / "ml-1m.zip").read_bytes() == data
    # No temporary files are left beside the results.
    assert sorted(p.name for p in cache.iterdir()) == sorted(["ml-1m.zip", directory.name])
    # Cached: a dead URL does not matter any more, neither for the extracted dir nor for the zip.
    assert source.locate_ml1m(None, cache, url="http://127.0.0.1:9/none.zip", md5=digest) == directory
    for path in directory.iterdir():
        path.unlink()
    directory.rmdir()
    again = source.locate_ml1m(None, cache, url="http://127.0.0.1:9/none.zip", md5=digest)
    assert (again / "ratings.dat").read_bytes() == RATINGS


def test_file_url_works(tmp_path, good_zip):
    _, digest, data = good_zip
    local = tmp_path / "copy.zip"
    local.write_bytes(data)
    directory = source.locate_ml1m(None, tmp_path / "cache", url=local.as_uri(), md5=digest)
    assert (directory / "movies.dat").read_bytes() == MOVIES


def test_md5_mismatch_names_both_sums_and_leaves_nothing(tmp_path, good_zip):
    url, digest, _ = good_zip
    cache = tmp_path / "cache"
    wrong = "0" * 32
    with pytest.raises(InputDataError) as caught:
        source.locate_ml1m(None, cache, url=url, md5=wrong)
    assert wrong in str(caught.value)
    assert digest in str(caught.value)
    assert list(cache.iterdir()) == []


def test_cached_zip_with_bad_checksum_is_replaced(tmp_path, good_zip):
    url, digest, data = good_zip
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "ml-1m.zip").write_bytes(data[: len(data) // 2])
    directory = source.locate_ml1m(None, cache, url=url, md5=digest)
    assert (cache / "ml-1m.zip").read_bytes() == data
    assert (directory / "ratings.dat").read_bytes() == RATINGS


def test_truncated_zip_is_a_clear_error_and_is_deleted(tmp_path, served, good_zip):
    root, base = served
    _, _, data = good_zip
    truncated = data[: len(data) - 40]
    (root / "cut.zip").write_bytes(truncated)
    cache = tmp_path / "cache"
    with pytest.raises(InputDataError, match="corrupt or truncated"):
        source.locate_ml1m(None, cache, url=f"{base}/cut.zip", md5=md5(truncated))
    assert list(cache.iterdir()) == []


def test_zip_with_wrong_content_is_rejected(tmp_path, served):
    root, base = served
    with zipfile.ZipFile(root / "other.zip", "w") as bundle:
        bundle.writestr("data/ratings.dat", RATINGS)  # no movies.dat
    digest = md5((root / "other.zip").read_bytes())
    with pytest.raises(InputDataError, match=r"lacks movies\.dat"):
        source.locate_ml1m(None, tmp_path / "cache", url=f"{base}/other.zip", md5=digest)
    assert not (tmp_path / "cache" / f"ml-1m-{digest}").exists()


def test_http_error_names_url_and_env_var(tmp_path, served):
    _, base = served
    with pytest.raises(InputDataError) as caught:
        source.locate_ml1m(None, tmp_path / "cache", url=f"{base}/missing.zip", md5="0" * 32)
    assert f"{base}/missing.zip" in str(caught.value)
    assert "SBR_ML1M_DIR" in str(caught.value)
    assert list((tmp_path / "cache").iterdir()) == []


def dataset_error(directory) -> str:
    with pytest.raises(InputDataError) as caught:
        source.locate_ml1m(str(directory), directory.parent / "cache")
    text = str(caught.value)
    assert "\n" not in text
    assert "SBR_ML1M_DIR" in text
    return text


WHERE = "(from SBR_ML1M_DIR / local_dir)"


def test_local_dir_that_is_a_file(tmp_path):
    archive = tmp_path / "ml-1m.zip"
    archive.write_bytes(b"PK\x03\x04")
    assert dataset_error(archive) == (
        f"MovieLens 1M directory {archive} {WHERE} is a file, not a directory. If it is the ml-1m.zip "
        "archive, extract it. Set SBR_ML1M_DIR to the extracted ml-1m directory holding ratings.dat and "
        "movies.dat, or unset it to download the data set."
    )


def test_local_dir_that_is_a_dangling_symlink(tmp_path):
    link = tmp_path / "ml-1m"
    link.symlink_to(tmp_path / "moved" / "ml-1m")
    assert dataset_error(link).startswith(
        f"MovieLens 1M directory {link} {WHERE} is a broken symbolic link: it points to "
        f"{tmp_path / 'moved' / 'ml-1m'}, which does not exist. Fix the link "
        f"(ln -sfn <real directory> {link}), or set SBR_ML1M_DIR"
    )


def test_local_dir_that_is_a_symlink_loop(tmp_path):
    link = tmp_path / "ml-1m"
    link.symlink_to(link)
    assert f"MovieLens 1M directory {link} {WHERE} is a symbolic link loop" in dataset_error(link)


def test_local_dir_without_permission(tmp_path, monkeypatch):
    """Root reads any directory, so ``os.access`` answers as it would for another user."""
    (tmp_path / "ratings.dat").write_bytes(RATINGS)
    (tmp_path / "movies.dat").write_bytes(MOVIES)
    monkeypatch.setattr(os, "access", lambda path, mode: False)
    assert dataset_error(tmp_path).startswith(
        f"MovieLens 1M directory {tmp_path} {WHERE} cannot be read: permission denied. Give this user read "
        f"permission (chmod u+rx {tmp_path}), or set SBR_ML1M_DIR"
    )


@pytest.mark.parametrize("name", ["ratings.dat", "movies.dat"])
def test_data_file_that_is_a_directory(tmp_path, name):
    (tmp_path / "ratings.dat").write_bytes(RATINGS)
    (tmp_path / "movies.dat").write_bytes(MOVIES)
    (tmp_path / name).unlink()
    (tmp_path / name).mkdir()
    assert dataset_error(tmp_path).startswith(
        f"MovieLens 1M directory {tmp_path} {WHERE}: its {name} is a directory, not a file. Put the real "
        f"{name} file there instead, or set SBR_ML1M_DIR"
    )


def test_data_file_that_is_a_dangling_symlink_or_unreadable(tmp_path, monkeypatch):
    (tmp_path / "ratings.dat").write_bytes(RATINGS)
    (tmp_path / "movies.dat").symlink_to("/nowhere/movies.dat")
    assert dataset_error(tmp_path).startswith(
        f"MovieLens 1M directory {tmp_path} {WHERE}: its movies.dat is a broken symbolic link: it points to "
        "/nowhere/movies.dat, which does not exist."
    )
    (tmp_path / "movies.dat").unlink()
    (tmp_path / "movies.dat").write_bytes(MOVIES)
    monkeypatch.setattr(os, "access", lambda path, mode: Path(path).name != "ratings.dat")
    assert dataset_error(tmp_path).startswith(
        f"MovieLens 1M directory {tmp_path} {WHERE}: its ratings.dat cannot be read: permission denied."
    )


def test_a_broken_file_is_named_before_a_missing_one(tmp_path):
    (tmp_path / "movies.dat").mkdir()  # ratings.dat missing as well
    assert "its movies.dat is a directory" in dataset_error(tmp_path)
    (tmp_path / "movies.dat").rmdir()
    assert "lacks ratings.dat, movies.dat." in dataset_error(tmp_path)
