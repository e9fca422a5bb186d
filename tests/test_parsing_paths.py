"""Each reason a ratings or movies path cannot be read gets its own message, in both readers."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from sbr_dagster.data import parsing, streaming
from sbr_dagster.errors import InputDataError

RATINGS = "1::10::5::978300760\n"
ADVICE = "point SBR_ML1M_DIR at the extracted MovieLens 1M directory"


def message(reader, path: Path, tmp_path: Path) -> str:
    with pytest.raises(InputDataError) as caught:
        if reader == "streaming":
            streaming.preprocess_streaming(path, tmp_path / "lake", definitions=())
        else:
            parsing.read_ratings(path)
    text = str(caught.value)
    assert "\n" not in text
    return text


@pytest.fixture(params=["in_memory", "streaming"])
def reader(request) -> str:
    return request.param


def test_missing_file(tmp_path, reader):
    path = tmp_path / "ratings.dat"
    assert f"ratings file {path} does not exist." in message(reader, path, tmp_path)


def test_directory_instead_of_file(tmp_path, reader):
    path = tmp_path / "ratings.dat"
    path.mkdir()
    text = message(reader, path, tmp_path)
    assert (
        f"ratings file {path} is a directory, not a file. Put the real ratings.dat file there instead" in text
    )


def test_dangling_symlink_says_where_it_points(tmp_path, reader):
    path = tmp_path / "ratings.dat"
    path.symlink_to("elsewhere/ratings.dat")
    text = message(reader, path, tmp_path)
    assert (
        f"ratings file {path} is a broken symbolic link: it points to elsewhere/ratings.dat "
        f"(that is {tmp_path / 'elsewhere' / 'ratings.dat'}), which does not exist. Fix the link "
        f"(ln -sfn <real file> {path})"
    ) in text


def test_absolute_dangling_symlink_is_named_once(tmp_path):
    path = tmp_path / "ratings.dat"
    path.symlink_to(tmp_path / "gone.dat")
    text = message("in_memory", path, tmp_path)
    assert f"it points to {tmp_path / 'gone.dat'}, which does not exist" in text


def test_symlink_loop(tmp_path, reader):
    path, other = tmp_path / "ratings.dat", tmp_path / "other.dat"
    path.symlink_to(other)
    other.symlink_to(path)
    text = message(reader, path, tmp_path)
    assert f"ratings file {path} is a symbolic link loop: following it leads back to itself." in text
    assert "Replace the link with one to the real file" in text


def test_link_loop_above_the_file(tmp_path):
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    text = message("in_memory", loop / "ratings.dat", tmp_path)
    assert "cannot be reached: a symbolic link above it loops back to itself" in text


def test_file_in_place_of_a_parent_directory(tmp_path):
    (tmp_path / "ml-1m").write_text("not a directory")
    text = message("in_memory", tmp_path / "ml-1m" / "ratings.dat", tmp_path)
    assert "does not exist: a path above it is a file, not a directory" in text


def test_fifo_is_not_a_regular_file(tmp_path, reader):
    path = tmp_path / "ratings.dat"
    os.mkfifo(path)
    assert f"ratings file {path} is not a regular file" in message(reader, path, tmp_path)


def test_unreadable_file_permission_denied(tmp_path, reader, monkeypatch):
    """Tests run as root, who reads anything: ``os.access`` is made to answer as for another user."""
    path = tmp_path / "ratings.dat"
    path.write_text(RATINGS)
    calls = []

    def access(target, mode):
        calls.append((Path(target), mode))
        return False

    monkeypatch.setattr(os, "access", access)
    text = message(reader, path, tmp_path)
    assert text.startswith(
        f"ratings file {path} cannot be read: permission denied. Give this user read permission "
        f"(chmod u+r {path}), or "
    )
    assert (path, os.R_OK) in calls


def test_unreachable_file_permission_denied_above(tmp_path, monkeypatch):
    path = tmp_path / "ratings.dat"
    path.write_text(RATINGS)

    def stat(self, **kwargs):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "stat", stat)
    text = message("in_memory", path, tmp_path)
    assert f"ratings file {path} cannot be reached: permission denied on a directory above it." in text


def test_read_failing_after_the_checks_is_still_a_user_error(tmp_path, monkeypatch):
    path = tmp_path / "movies.dat"
    path.write_text("1::A (1999)::Drama\n")

    def read_bytes(self):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    with pytest.raises(InputDataError) as caught:
        parsing.read_movies(path)
    assert str(caught.value).startswith(f"movies file {path} cannot be read: Permission denied. Point ")


UNREADABLE_SCRIPT = """
import sys
from sbr_dagster.data import parsing, source
from sbr_dagster.errors import InputDataError
root = sys.argv[1]
for read, args in (
    (parsing.read_ratings, (f"{root}/ratings.dat",)),
    (parsing.read_ratings, (f"{root}/closed/ratings.dat",)),
    (source.locate_ml1m, (f"{root}/closed", f"{root}/cache")),
):
    try:
        read(*args)
    except InputDataError as error:
        print(error)
"""


def test_really_unreadable_paths_as_an_ordinary_user():
    """No mock: a mode-000 file and directory, read by a user who is not root (root reads anyway)."""
    as_user = [sys.executable]
    if os.geteuid() == 0:
        if not shutil.which("setpriv"):
            pytest.skip("running as root without setpriv: the mocked tests above cover this")
        as_user = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable]
    root = Path(tempfile.mkdtemp())  # not pytest's tmp_path: that is private to root
    try:
        root.chmod(0o755)
        (root / "ratings.dat").write_text(RATINGS)
        (root / "ratings.dat").chmod(0)
        (root / "closed").mkdir(mode=0)
        result = subprocess.run(
            [*as_user, "-c", UNREADABLE_SCRIPT, str(root)],
            capture_output=True,
            text=True,
            cwd=Path(parsing.__file__).parents[2],
            check=False,
        )
        lines = result.stdout.splitlines()
        assert lines == [
            f"ratings file {root}/ratings.dat cannot be read: permission denied. Give this user read "
            f"permission (chmod u+r {root}/ratings.dat), or {ADVICE} (the one holding ratings.dat and "
            "movies.dat) or let the pipeline download it.",
            f"ratings file {root}/closed/ratings.dat cannot be reached: permission denied on a directory "
            f"above it. Give this user search (x) permission on the directories above it, or {ADVICE} (the "
            "one holding ratings.dat and movies.dat) or let the pipeline download it.",
            f"MovieLens 1M directory {root}/closed (from SBR_ML1M_DIR / local_dir) cannot be read: "
            f"permission denied. Give this user read permission (chmod u+rx {root}/closed), or set "
            "SBR_ML1M_DIR to the extracted ml-1m directory holding ratings.dat and movies.dat, or unset it "
            "to download the data set.",
        ], result.stderr
    finally:
        (root / "closed").chmod(0o755)
        shutil.rmtree(root)


def test_advice_follows_each_fix(tmp_path):
    path = tmp_path / "ratings.dat"
    path.mkdir()
    assert ADVICE in message("in_memory", path, tmp_path)
    problem = parsing.path_problem(path, "file")
    assert problem.code == "wrong_kind"
    assert not problem.missing
    assert parsing.path_problem(tmp_path / "none", "file").missing
    assert parsing.path_problem(tmp_path, "directory") is None
    (tmp_path / "movies.dat").write_text("x")
    assert parsing.path_problem(tmp_path / "movies.dat", "file") is None
