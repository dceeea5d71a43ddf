"""Turn what the user points at (a CSV, zip or XML file, or a folder of CSVs; local or any fsspec URL)
into exactly one local file to upload, with an extension that matches its content."""

from __future__ import annotations

import re
import shutil
import zipfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import fsspec
from fsspec import AbstractFileSystem
from fsspec.implementations.local import LocalFileSystem
from pydantic import BaseModel

from canvas_tasks.sis_import.csv_kinds import ORDER, kind_of, parse_header
from canvas_tasks.sis_import.settings import source_config
from common.errors import ConfigError
from common.hashing import file_hexdigest
from common.redaction import redact_url
from destinations import PublishError, uses_sftp
from destinations import filesystem_for as destination_filesystem

CONTENT_TYPES = {"zip": "application/zip", "csv": "text/csv", "xml": "text/xml"}
_IGNORED = re.compile(r"^(\..*|__macosx|desktop\.ini|thumbs\.db)$", re.IGNORECASE)
_HEAD_BYTES = 64 * 1024


class Package(BaseModel):
    """The file that will be uploaded and what we know about it (all of it safe to log)."""

    source: str  # redacted
    path: Path
    filename: str
    extension: str
    content_type: str
    size: int
    sha256: str
    members: list[str] = []  # for zips: the files inside, in order
    staged: bool = False  # True when `path` is our own copy/zip (removed after submit), not the user's file


def filesystem_for(source: str, storage_options: dict[str, Any] | None = None) -> tuple[AbstractFileSystem, str]:
    """Open the input. SFTP goes through the destinations layer (credentials from CANVAS_SOURCE_*,
    host keys always verified); other URLs use plain fsspec dispatch with `storage_options`."""
    if uses_sftp(source):
        try:
            return destination_filesystem(source_config(source), name="input", setting_prefix="CANVAS_SOURCE_")
        except PublishError as exc:
            raise ConfigError(f"input {redact_url(source)}: {exc}") from None
    try:
        return fsspec.core.url_to_fs(source, **(storage_options or {}))
    except (ValueError, ImportError) as exc:
        raise ConfigError(f"input {redact_url(source)}: cannot open ({exc})") from None


def check_source_has_no_secrets(source: str) -> None:
    """The source is a flow parameter, and Prefect stores parameters: no passwords or signed queries in it."""
    if "://" not in source:
        return
    try:
        parts = urlsplit(source)
    except ValueError:
        raise ConfigError("input: the URL cannot be parsed") from None
    if parts.password:
        raise ConfigError(
            f"input {redact_url(source)}: remove the password from the URL; it would be stored with the flow run "
            "(give credentials through settings or fsspec configuration instead)"
        )
    if parts.query:
        raise ConfigError(
            f"input {redact_url(source)}: URLs with a query string (e.g. signed URLs) would be stored with the "
            "flow run; download the file first or use the storage's own URL (s3://, sftp://, ...)"
        )


def detect_content(head: bytes) -> str | None:
    """zip | xml | csv from the first bytes, or None when it is none of them."""
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        return "zip"
    text = head.lstrip(b"\xef\xbb\xbf").lstrip()
    if text.startswith(b"<?xml") or text.startswith(b"<"):
        return "xml"
    if not head.strip() or b"\x00" in head:
        return None
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A multi-byte character cut at the end of the sample is still UTF-8.
        if exc.start < len(head) - 4:
            return None
    return "csv"


def _read_head(fs: AbstractFileSystem, path: str) -> bytes:
    with fs.open(path, "rb") as fh:
        return fh.read(_HEAD_BYTES)


def _zip_members(path: Path, shown: str) -> list[str]:
    try:
        with zipfile.ZipFile(path) as zf:
            names = [n for n in zf.namelist() if not n.endswith("/")]
    except zipfile.BadZipFile:
        raise ConfigError(f"input {shown}: looks like a zip file but cannot be read as one") from None
    if not names:
        raise ConfigError(f"input {shown}: the zip file is empty")
    return names


def _first_line(head: bytes) -> str:
    return head.split(b"\n", 1)[0].decode("utf-8", errors="replace").rstrip("\r")


def package_input(
    source: str, staging_dir: Path, *, extension: str | None = None, storage_options: dict[str, Any] | None = None
) -> Package:
    """Check the input and produce the single file to upload; folders are zipped in Canvas's order."""
    return _checked(source, staging_dir, extension, storage_options)()


def check_input(
    source: str, staging_dir: Path, *, extension: str | None = None, storage_options: dict[str, Any] | None = None
) -> None:
    """Every check `package_input` makes, without copying or zipping anything (the CLI's preflight)."""
    _checked(source, staging_dir, extension, storage_options)


def _checked(
    source: str, staging_dir: Path, extension: str | None, storage_options: dict[str, Any] | None
) -> Callable[[], Package]:
    """Run every check now; return what builds the package (copy or zip), so a preflight can stop there."""
    shown = redact_url(source)
    check_source_has_no_secrets(source)
    fs, path = filesystem_for(source, storage_options)
    if not fs.exists(path):
        raise ConfigError(f"input {shown}: does not exist")
    if fs.isdir(path):
        if extension not in (None, "zip"):
            raise ConfigError(f"--extension {extension}: a folder is always uploaded as a zip; drop --extension")
        return _package_folder(fs, path, shown, staging_dir)
    return _package_file(fs, path, shown, staging_dir, extension)


def _package_file(
    fs: AbstractFileSystem, path: str, shown: str, staging_dir: Path, override: str | None
) -> Callable[[], Package]:
    name = PurePosixPath(path).name or "sis_import"
    head = _read_head(fs, path)
    content = detect_content(head)
    if content is None:
        raise ConfigError(f"input {shown}: is neither a CSV (UTF-8 text), a zip nor an XML file")
    suffix = PurePosixPath(name).suffix.lower().lstrip(".")
    if suffix in CONTENT_TYPES and suffix != content:
        raise ConfigError(f"input {shown}: named .{suffix} but its content is {content}; rename it or fix the file")
    if override and override != content:
        raise ConfigError(f"--extension {override}: input {shown} is {content}, not {override}")
    if content == "csv" and kind_of(parse_header(_first_line(head))) is None:
        raise ConfigError(f"input {shown}: the header row is not one Canvas recognises as an SIS CSV")
    if content == "zip" and isinstance(fs, LocalFileSystem):
        _zip_members(Path(path), shown)  # a local zip is checked in place, before anything is sent

    def build() -> Package:
        if isinstance(fs, LocalFileSystem):
            local = Path(path)  # uploaded in place; the user's file is only ever read
        else:
            staging_dir.mkdir(parents=True, exist_ok=True)
            local = staging_dir / name
            with fs.open(path, "rb") as src, open(local, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
        upload_name = name if suffix == content else f"{PurePosixPath(name).stem or 'sis_import'}.{content}"
        members = _zip_members(local, shown) if content == "zip" else []
        sha, size = file_hexdigest(local), local.stat().st_size
        return Package(
            source=shown,
            path=local,
            filename=upload_name,
            extension=content,
            content_type=CONTENT_TYPES[content],
            size=size,
            sha256=sha,
            members=members,
            staged=not isinstance(fs, LocalFileSystem),
        )

    return build


def _package_folder(fs: AbstractFileSystem, path: str, shown: str, staging_dir: Path) -> Callable[[], Package]:
    entries = [e for e in fs.ls(path, detail=True) if e.get("type") == "file"]
    files = sorted(str(e["name"]) for e in entries if not _IGNORED.match(PurePosixPath(str(e["name"])).name))
    if not files:
        raise ConfigError(f"input {shown}: the folder has no files")
    not_csv = [PurePosixPath(f).name for f in files if not f.lower().endswith(".csv")]
    if not_csv:
        raise ConfigError(f"input {shown}: a folder may only hold SIS CSV files; move these out: {', '.join(not_csv)}")
    ranked: list[tuple[int, str, str]] = []
    problems: list[str] = []
    for f in files:
        base = PurePosixPath(f).name
        head = _read_head(fs, f)
        if detect_content(head) != "csv":
            problems.append(f"{base}: is not UTF-8 CSV text")
            continue
        kind = kind_of(parse_header(_first_line(head)))
        if kind is None:
            problems.append(f"{base}: the header row is not one Canvas recognises as an SIS CSV")
            continue
        ranked.append((ORDER[kind], base, f))
    if problems:
        raise ConfigError([f"input {shown}: {p}" for p in problems])
    ranked.sort()

    def build() -> Package:
        staging_dir.mkdir(parents=True, exist_ok=True)
        folder_name = PurePosixPath(path.rstrip("/")).name or "sis_import"
        zip_path = staging_dir / f"{folder_name}.zip"
        tmp = zip_path.with_name(f".{zip_path.name}.part")
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for _, base, f in ranked:
                # A fixed timestamp makes the zip a function of the CSVs alone, so the same export gives
                # the same sha256 and a re-run is recognised as the same submission.
                info = zipfile.ZipInfo(base, date_time=(1980, 1, 1, 0, 0, 0))
                info.compress_type = zipfile.ZIP_DEFLATED
                with fs.open(f, "rb") as src, zf.open(info, "w") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
        tmp.replace(zip_path)
        sha, size = file_hexdigest(zip_path), zip_path.stat().st_size
        return Package(
            source=shown,
            path=zip_path,
            filename=zip_path.name,
            extension="zip",
            content_type=CONTENT_TYPES["zip"],
            size=size,
            sha256=sha,
            members=[base for _, base, _ in ranked],
            staged=True,
        )

    return build
