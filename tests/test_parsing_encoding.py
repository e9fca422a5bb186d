"""Which characters a movies.dat gives: ML-1M's Latin-1, a UTF-8 re-save, or a Windows-1252 save."""

from __future__ import annotations

import pytest

from sbr_dagster.data import parsing

C1 = range(0x80, 0xA0)
# Curly quotes, an en dash and a curly apostrophe, written as escapes (ruff flags look-alikes).
JEDI = "\u201cReturn\u201d of the Jedi \u2013 Director\u2019s Cut"
UNDEFINED_IN_CP1252 = (0x81, 0x8D, 0x8F, 0x90, 0x9D)


def movies_file(tmp_path, data: bytes):
    path = tmp_path / "movies.dat"
    path.write_bytes(data)
    return path


def test_windows_1252_smart_quotes_and_dashes(tmp_path):
    title = f"{JEDI}\u2026 for \u20ac5 \u2014 \u2018quoted\u2019"
    data = f"1::{title} (1983)::Sci-Fi\n2::Misérables, Les (1995)::Drama\n".encode("cp1252")
    assert any(byte in C1 for byte in data), "the file really holds cp1252-only bytes"
    movies = parsing.read_movies(movies_file(tmp_path, data))
    assert movies["title"].to_list() == [title, "Misérables, Les"]
    assert movies["year"].to_list() == [1983, 1995]


def test_every_byte_from_0x80_to_0x9f_decodes_and_no_line_is_lost(tmp_path):
    lines = [b"%d::Title \x93%c\x94 (1999)::Drama\n" % (byte, byte) for byte in C1]
    movies = parsing.read_movies(movies_file(tmp_path, b"".join(lines)))
    assert movies["item_id"].to_list() == list(C1)
    for byte, title in zip(C1, movies["title"], strict=True):
        expected = chr(byte) if byte in UNDEFINED_IN_CP1252 else bytes([byte]).decode("cp1252")
        assert title == f"Title “{expected}”", hex(byte)
    controls = {char for title in movies["title"] for char in title if "\x80" <= char <= "\x9f"}
    assert controls == set(map(chr, UNDEFINED_IN_CP1252)), "only the bytes cp1252 leaves undefined"


def test_latin1_accents_are_unchanged(tmp_path):
    text = "".join(chr(code) for code in range(0xA0, 0x100) if chr(code) not in ":|()")
    movies = parsing.read_movies(movies_file(tmp_path, f"1::{text} (1999)::Drama\n".encode("latin-1")))
    assert movies["title"].to_list() == [text.strip()]


def test_utf8_smart_quotes_stay_utf8(tmp_path):
    title = JEDI
    movies = parsing.read_movies(movies_file(tmp_path, f"1::{title} (1983)::Sci-Fi\n".encode()))
    assert movies["title"].to_list() == [title]


@pytest.mark.real_data
def test_real_movielens_movies_read_exactly_as_latin1(real_ml1m_dir, monkeypatch):
    path = real_ml1m_dir / "movies.dat"
    if not path.is_file():
        pytest.skip(f"{path} is not present")
    data = path.read_bytes()
    # The rule is safe for ML-1M because the file holds none of the bytes where cp1252 and Latin-1 differ.
    assert sorted({byte for byte in data if byte in C1}) == []
    assert any(byte >= 0xA0 for byte in data), "it does hold Latin-1 accents"
    movies = parsing.read_movies(path)
    assert movies.height == 3_883
    monkeypatch.setattr(parsing, "_decode", lambda raw: raw.decode("latin-1"))
    assert movies.equals(parsing.read_movies(path))
