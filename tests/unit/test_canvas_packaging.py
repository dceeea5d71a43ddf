"""Input packaging: the extension comes from the content, folders are zipped in Canvas's order."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from canvas_tasks.sis_import.csv_kinds import kind_of, parse_header
from canvas_tasks.sis_import.packaging import check_input, detect_content, package_input
from common.errors import ConfigError

USERS = b"user_id,login_id,first_name,last_name,status\nU1,a,A,B,active\n"
COURSES = b"course_id,short_name,long_name,status\nC1,C,Course,active\n"
ENROLLMENTS = b"course_id,user_id,role,status\nC1,U1,student,active\n"
TERMS = b"term_id,name,status\nT1,Fall,active\n"


@pytest.mark.parametrize(
    ("head", "kind"),
    [
        (b"PK\x03\x04rest", "zip"),
        (b'\xef\xbb\xbf<?xml version="1.0"?><enterprise/>', "xml"),
        (b"  <enterprise/>", "xml"),
        (USERS, "csv"),
        ("user_id,login_id\nU1,zoë\n".encode(), "csv"),
        (b"\x89PNG\r\n\x1a\n\x00\x00", None),
        (b"", None),
    ],
)
def test_detect_content(head: bytes, kind: str | None) -> None:
    assert detect_content(head) == kind


@pytest.mark.parametrize(
    ("header", "kind"),
    [
        ("account_id,parent_account_id,name,status", "account"),
        ("term_id,name,status", "term"),
        ("course_id,short_name,long_name,account_id,term_id,status", "course"),
        ("section_id,course_id,name,status", "section"),
        ("\ufeffUser_ID,Login_ID,status", "user"),
        ("course_id,user_id,role,section_id,status", "enrollment"),
        ("user_id,account_id,role,status", "admin"),
        ("group_id,account_id,name,status", "group"),
        ("group_id,user_id,status", "group_membership"),
        ("xlist_course_id,section_id,status", "xlist"),
        ("observer_id,student_id,status", "user_observer"),
        ("foo,bar", None),
    ],
)
def test_csv_kinds_from_headers(header: str, kind: str | None) -> None:
    assert kind_of(parse_header(header)) == kind


def test_local_csv_is_uploaded_in_place(tmp_path: Path) -> None:
    src = tmp_path / "users.csv"
    src.write_bytes(USERS)
    package = package_input(str(src), tmp_path / "staging")
    assert package is not None
    assert (package.path, package.filename, package.extension, package.content_type) == (
        src,
        "users.csv",
        "csv",
        "text/csv",
    )
    assert not package.staged and package.size == len(USERS)
    assert not (tmp_path / "staging").exists()


def test_zip_named_csv_is_refused(tmp_path: Path) -> None:
    src = tmp_path / "users.csv"
    with zipfile.ZipFile(src, "w") as zf:
        zf.writestr("users.csv", USERS)
    with pytest.raises(ConfigError, match=r"named \.csv but its content is zip"):
        package_input(str(src), tmp_path / "staging")


def test_extension_override_must_match_content(tmp_path: Path) -> None:
    src = tmp_path / "export.dat"
    src.write_bytes(USERS)
    with pytest.raises(ConfigError, match="--extension zip"):
        package_input(str(src), tmp_path / "staging", extension="zip")
    package = package_input(str(src), tmp_path / "staging", extension="csv")
    assert package is not None and package.filename == "export.csv"


def test_unrecognised_csv_header_is_refused(tmp_path: Path) -> None:
    src = tmp_path / "people.csv"
    src.write_text("name,age\nx,1\n")
    with pytest.raises(ConfigError, match="header row"):
        package_input(str(src), tmp_path / "staging")


def test_folder_is_zipped_in_canvas_order(tmp_path: Path) -> None:
    folder = tmp_path / "nightly"
    folder.mkdir()
    (folder / "a_enrollments.csv").write_bytes(ENROLLMENTS)
    (folder / "b_users.csv").write_bytes(USERS)
    (folder / "c_courses.csv").write_bytes(COURSES)
    (folder / "d_terms.csv").write_bytes(TERMS)
    (folder / ".DS_Store").write_bytes(b"\x00junk")
    package = package_input(str(folder), tmp_path / "staging")
    assert package is not None and package.staged
    assert package.members == ["d_terms.csv", "c_courses.csv", "b_users.csv", "a_enrollments.csv"]
    with zipfile.ZipFile(package.path) as zf:
        assert zf.namelist() == package.members
        assert zf.read("b_users.csv") == USERS
    assert package.filename == "nightly.zip" and package.content_type == "application/zip"


def test_folder_via_fsspec_url(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "users.csv").write_bytes(USERS)
    package = package_input(f"file://{folder}", tmp_path / "staging")
    assert package is not None and package.members == ["users.csv"]


def test_memory_filesystem_file_is_staged(tmp_path: Path) -> None:
    import fsspec

    fs = fsspec.filesystem("memory")
    fs.pipe("/canvas-test/users.csv", USERS)
    package = package_input("memory://canvas-test/users.csv", tmp_path / "staging")
    assert package is not None and package.staged and package.path.read_bytes() == USERS


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({}, "no files"),
        ({"users.csv": USERS, "README.txt": b"hi"}, "README.txt"),
        ({"users.csv": USERS, "weird.csv": b"a,b\n1,2\n"}, "weird.csv"),
    ],
)
def test_bad_folders_are_refused(tmp_path: Path, files: dict[str, bytes], message: str) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    for name, data in files.items():
        (folder / name).write_bytes(data)
    with pytest.raises(ConfigError, match=message):
        package_input(str(folder), tmp_path / "staging")


def test_dry_run_checks_without_writing(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "users.csv").write_bytes(USERS)
    assert check_input(str(folder), tmp_path / "staging") is None
    assert not (tmp_path / "staging").exists()
    with pytest.raises(ConfigError, match="does not exist"):
        check_input(str(tmp_path / "missing.csv"), tmp_path / "staging")


@pytest.mark.parametrize(
    "url",
    ["sftp://slate:hunter2@sftp.example.edu/out/users.csv", "https://b.s3.amazonaws.com/u.csv?X-Amz-Signature=abc"],
)
def test_urls_carrying_secrets_are_refused_without_echoing_them(tmp_path: Path, url: str) -> None:
    with pytest.raises(ConfigError) as info:
        package_input(url, tmp_path / "staging")
    assert "hunter2" not in info.value.render() and "abc" not in info.value.render()
