"""The source folder on a real local disk: what the glob matches, moves that never overwrite, notes."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from encoura_tasks.upload.settings import load_upload_settings
from encoura_tasks.upload.source import UploadSource


@pytest.fixture
def make_source(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.chdir(tmp_path)

    def make(pattern: str, **env: str) -> UploadSource:
        monkeypatch.setenv("UPLOAD_SOURCE", f"{(tmp_path / 'out').as_uri()}/{pattern}")
        monkeypatch.setenv("UPLOAD_PRODUCT_TYPE", "enrollment")
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        return UploadSource(*load_upload_settings())

    return make


def _put(root: Path, relative: str, data: bytes = b"id\n1\n") -> None:
    path = root / "out" / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def test_glob_never_matches_archive_failed_or_hidden_files(make_source, tmp_path: Path) -> None:
    for rel in ["a.csv", "b.CSV", "c.txt", ".hidden.csv", "processed/a.csv", "failed/b.csv", "x/processed/d.csv",
                "x/e.csv", "x/failed/e.csv.error.txt", ".encoura-slate.1700000000.1-abcdef01.part"]:
        _put(tmp_path, rel)
    assert [f.relative for f in make_source("*.csv").list_files()] == ["a.csv"]
    assert [f.relative for f in make_source("*/*.csv").list_files()] == ["x/e.csv"]
    assert sorted(f.relative for f in make_source("**/*.csv").list_files()) == ["a.csv", "x/e.csv"]
    done = make_source("*.csv", UPLOAD_ARCHIVE_DIR="done/encoura")
    _put(tmp_path, "done/encoura/z.csv")
    assert [f.relative for f in done.list_files()] == ["a.csv"]


def test_missing_folder_lists_nothing(make_source) -> None:
    assert make_source("*.csv").list_files() == []


def test_moves_never_overwrite_and_are_deterministic(make_source, tmp_path: Path) -> None:
    source = make_source("*.csv")
    _put(tmp_path, "processed/daily.csv", b"yesterday\n")
    _put(tmp_path, "daily.csv", b"today\n")
    sha = hashlib.sha256(b"today\n").hexdigest()
    moved = source.move("daily.csv", "processed", sha256=sha)
    assert moved == f"processed/daily.{sha[:12]}.csv"
    assert (tmp_path / "out" / "processed" / "daily.csv").read_bytes() == b"yesterday\n"
    assert (tmp_path / "out" / moved).read_bytes() == b"today\n"
    assert not (tmp_path / "out" / "daily.csv").exists()
    # A re-run after a crash between the move and the ledger update finds where it went.
    found = source.find_moved("daily.csv", "processed", size=6, sha256=sha, work_dir=tmp_path / "work")
    assert found == moved


def test_nested_files_move_beside_themselves(make_source, tmp_path: Path) -> None:
    _put(tmp_path, "x/e.csv")
    source = make_source("*/*.csv")
    assert source.move("x/e.csv", "failed", sha256="0" * 64) == "x/failed/e.csv"


def test_fetch_and_fingerprint_read_exact_bytes(make_source, tmp_path: Path) -> None:
    data = b'id,zip\n1,"01234"\r\n'
    _put(tmp_path, "a.csv", data)
    source = make_source("*.csv")
    [item] = source.list_files()
    size, sha = source.fetch(item, tmp_path / "stage" / "a.csv")
    assert (size, sha) == (len(data), hashlib.sha256(data).hexdigest())
    assert (tmp_path / "stage" / "a.csv").read_bytes() == data
    assert source.fingerprint("a.csv", tmp_path / "work") == (size, sha)
    assert source.fingerprint("gone.csv", tmp_path / "work") is None


def test_note_is_written_atomically(make_source, tmp_path: Path) -> None:
    source = make_source("*.csv")
    assert source.write_note("failed/a.csv.error.txt", "Row 3: bad\n", tmp_path / "work") == "failed/a.csv.error.txt"
    assert (tmp_path / "out" / "failed" / "a.csv.error.txt").read_text() == "Row 3: bad\n"
    assert [p.name for p in (tmp_path / "out" / "failed").iterdir()] == ["a.csv.error.txt"]
