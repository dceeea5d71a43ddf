"""Pre-upload checks: each refusal names the problem a person must fix; valid files pass untouched."""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

import pytest

from encoura_tasks.upload.validation import validate_upload_file

GOOD = b'StudentID,FirstName,ZIP\n000123,Ana,"01234"\n000124,"Kim, Jr.","02139"\n'


def _check(tmp_path: Path, name: str, data: bytes, product_type: str = "enrollment") -> list[str]:
    path = tmp_path / name
    path.write_bytes(data)
    before = hashlib.sha256(data).hexdigest()
    report = validate_upload_file(path, name=name, product_type=product_type)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before  # never rewritten
    return report.problems


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buf.getvalue()


@pytest.mark.parametrize(
    ("name", "data", "product_type"),
    [
        ("enrollment.csv", GOOD, "enrollment"),
        ("affinity.CSV", GOOD, "affinity"),
        ("ematch.csv", GOOD, "ematch"),
        ("bom.csv", b"\xef\xbb\xbf" + GOOD, "enrollment"),
        ("crlf.csv", GOOD.replace(b"\n", b"\r\n"), "enrollment"),
        ("quoted-newline.csv", b'id,note\n1,"two\nlines, and a comma"\n2,plain\n', "enrollment"),
        ("no-final-newline.csv", GOOD.rstrip(b"\n"), "enrollment"),
        ("tabs.tsv", b"id\tname\n1\tAna\n", "enrollment"),
        ("pipes.txt", b"id|name\n1|Ana\n", "enrollment"),
        ("utf8.csv", "id,name\n1,José Ñúñez\n".encode(), "enrollment"),
        ("book.xlsx", _zip({"xl/workbook.xml": b"<workbook/>"}), "enrollment"),
        ("bundle.zip", _zip({"enrollment.csv": GOOD}), "enrollment"),
    ],
)
def test_valid_files_pass(tmp_path: Path, name: str, data: bytes, product_type: str) -> None:
    assert _check(tmp_path, name, data, product_type) == []


@pytest.mark.parametrize(
    ("name", "data", "product_type", "expected"),
    [
        ("scan.pdf", b"%PDF-1.4", "enrollment", ".pdf is not accepted for enrollment uploads"),
        ("list.txt", GOOD, "affinity", ".txt is not accepted for affinity uploads (allowed: .csv)"),
        ("book.xlsx", GOOD, "ematch", ".xlsx is not accepted for ematch"),
        ("noext", GOOD, "enrollment", "no extension is not accepted"),
        ("empty.csv", b"", "enrollment", "is empty (0 bytes)"),
        ("latin1.csv", "id,name\n1,José\n".encode("latin-1"), "enrollment",
         "is not UTF-8 (looks like Windows-1252/latin-1): invalid byte 0xE9 at offset 13 on line 2"),
        ("utf16.csv", "id,name\n1,Ana\n".encode("utf-16"), "enrollment", "is not UTF-8: it is UTF-16 LE"),
        ("ragged.csv", b"id,name,zip\n1,Ana,01234\n2,Kim\n3,Lee,02139,extra\n", "enrollment",
         "line 3 has 2; line 4 has 4"),
        ("noheader.csv", b"000123,Ana,01234\n000124,Kim,02139\n", "enrollment", "has no header row"),
        ("emailheader.csv", b"ana@example.edu,Ana\nkim@example.edu,Kim\n", "enrollment", "has no header row"),
        ("blankname.csv", b"id,,zip\n1,a,2\n", "enrollment", "empty column name"),
        ("dupe.csv", b"id,ID\n1,2\n", "enrollment", "duplicate column name"),
        ("headeronly.csv", b"id,name\n", "enrollment", "no data rows"),
        ("blank.csv", b"\n\n", "enrollment", "no header row"),
        ("fake.xlsx", GOOD, "enrollment", "is not an Excel workbook"),
        ("fake.zip", GOOD, "enrollment", "is not a zip archive"),
        ("odd.zip", _zip({"notes.pdf": b"%PDF"}), "enrollment", "notes.pdf"),
        ("unclosed.csv", b'id,name\n1,"Ana\n2,Kim\n', "enrollment",
         "is not valid CSV in the row starting on line 2: unexpected end of data (a text qualifier"),
    ],
)
def test_invalid_files_are_refused_with_a_reason(
    tmp_path: Path, name: str, data: bytes, product_type: str, expected: str
) -> None:
    problems = _check(tmp_path, name, data, product_type)
    assert problems and expected in problems[0], problems


def test_quoted_fields_count_as_one_field(tmp_path: Path) -> None:
    data = b'id,name,comment\n1,"Lopez, Ana","said ""hi"", left"\n'
    assert _check(tmp_path, "quoted.csv", data) == []


def test_long_free_text_fields_are_fine(tmp_path: Path) -> None:
    data = b'id,essay\n1,"' + b"x" * 300_000 + b'"\n'
    assert _check(tmp_path, "long.csv", data) == []


def test_many_ragged_rows_are_summarised(tmp_path: Path) -> None:
    data = b"a,b\n" + b"1\n" * 40
    problem = _check(tmp_path, "many.csv", data)[0]
    assert "(and 35 more)" in problem and "header's 2" in problem
