"""Light checks on a file before it is sent to Encoura, so a bad file is refused with a reason a person
can act on instead of an opaque `failure` an hour later. The file is only ever read, never rewritten
(Excel-style "fixes" drop leading zeros).

Checks: extension allowed for the product type, not empty, UTF-8 (else name the encoding found),
a header row, and every row with the header's number of fields (csv module, so quoted fields with
commas or line breaks count as one field).
"""

from __future__ import annotations

import codecs
import csv
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

# From the upload API docs: all products take CSV; enrollment also XLS, XLSX, TXT, TSV, or those inside a zip.
ALLOWED_EXTENSIONS: dict[str, tuple[str, ...]] = {
    "enrollment": (".csv", ".xls", ".xlsx", ".txt", ".tsv", ".zip"),
    "affinity": (".csv",),
    "ematch": (".csv",),
}
TEXT_EXTENSIONS = (".csv", ".txt", ".tsv")
ZIP_MEMBER_EXTENSIONS = (".csv", ".xls", ".xlsx", ".txt", ".tsv")
MAX_REPORTED_ROWS = 5
# The csv module refuses fields over 128 KiB by default; free-text columns can be longer than that.
csv.field_size_limit(max(csv.field_size_limit(), 64 * 1024 * 1024))
_BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF32_LE, "UTF-32 LE"),  # before UTF-16 LE: it starts with the same two bytes
    (codecs.BOM_UTF32_BE, "UTF-32 BE"),
    (codecs.BOM_UTF16_LE, "UTF-16 LE"),
    (codecs.BOM_UTF16_BE, "UTF-16 BE"),
)
_XLS_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_ZIP_MAGIC = b"PK\x03\x04"
# A header cell that is really data: a number, a date, an e-mail address.
_DATA_LIKE = re.compile(r"^\s*([-+]?[\d.,/: -]+|[^@\s]+@[^@\s]+\.[^@\s]+)\s*$")


@dataclass
class ValidationReport:
    """What was found; `problems` empty means the file may be sent."""

    problems: list[str] = field(default_factory=list)
    rows: int | None = None  # data rows (text files only)
    columns: int | None = None
    notes: list[str] = field(default_factory=list)  # informative, not blocking (e.g. a UTF-8 BOM)

    @property
    def ok(self) -> bool:
        return not self.problems

    def message(self) -> str:
        return "; ".join(self.problems)


def extension_of(name: str) -> str:
    return PurePosixPath(name).suffix.lower()


def check_extension(name: str, product_type: str) -> str | None:
    allowed = ALLOWED_EXTENSIONS.get(product_type, (".csv",))
    ext = extension_of(name)
    if ext in allowed:
        return None
    shown = ext or "no extension"
    return f"{shown} is not accepted for {product_type} uploads (allowed: {', '.join(allowed)})"


# ----------------------------------------------------------------------------- encoding
def _looks_like_cp1252(data: bytes) -> bool:
    try:
        data.decode("cp1252")
    except UnicodeDecodeError:
        return False
    return True


def check_utf8(path: Path) -> tuple[str | None, bool]:
    """(problem or None, has UTF-8 BOM). Line by line: bounded memory, and exact, since a UTF-8
    multi-byte sequence never contains a newline byte."""
    with path.open("rb") as fh:
        head = fh.read(4)
        for bom, label in _BOMS:
            if head.startswith(bom):
                return f"is not UTF-8: it is {label} (byte-order mark found); save it as UTF-8 CSV", False
        has_bom = head.startswith(codecs.BOM_UTF8)
        fh.seek(0)
        offset = 0
        for number, raw in enumerate(fh, start=1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                if b"\x00" in raw:
                    guess = "looks like UTF-16 without a byte-order mark"
                elif _looks_like_cp1252(raw):
                    guess = "looks like Windows-1252/latin-1"
                else:
                    guess = "encoding not recognised"
                bad = raw[exc.start : exc.start + 1].hex().upper()
                return (
                    f"is not UTF-8 ({guess}): invalid byte 0x{bad} at offset {offset + exc.start} on line {number}; "
                    "save it as UTF-8 CSV",
                    has_bom,
                )
            offset += len(raw)
    return None, has_bom


# ----------------------------------------------------------------------------- rows
def _delimiter(path: Path, ext: str) -> str:
    if ext == ".tsv":
        return "\t"
    if ext == ".csv":
        return ","
    with path.open("r", encoding="utf-8-sig", newline="") as fh:
        first = fh.readline()
    counts = {d: first.count(d) for d in (",", "\t", "|", ";")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


class CsvSyntaxError(ValueError):
    def __init__(self, line: int, message: str) -> None:
        self.line = line
        super().__init__(message)


def _rows(path: Path, delimiter: str) -> Iterator[tuple[int, list[str]]]:
    """(line number where the row starts, fields); csv handles quoted commas and line breaks."""
    with path.open("r", encoding="utf-8-sig", newline="") as fh:
        reader = csv.reader(fh, delimiter=delimiter, quotechar='"', doublequote=True, strict=True)
        start = 1
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                hint = " (a text qualifier \" opened and never closed?)" if "end of data" in str(exc) else ""
                raise CsvSyntaxError(start, f"{exc}{hint}") from None
            yield start, row
            start = reader.line_num + 1


def _header_problem(header: list[str]) -> str | None:
    if not header or all(not cell.strip() for cell in header):
        return "has no header row: the first line is empty"
    blanks = [str(i) for i, cell in enumerate(header, start=1) if not cell.strip()]
    data_like = [(i, cell) for i, cell in enumerate(header, start=1) if cell.strip() and _DATA_LIKE.match(cell)]
    if data_like:
        i, cell = data_like[0]
        return (
            f"has no header row: the first line looks like data (field {i} is {cell.strip()[:40]!r}); "
            "the first line must name the columns"
        )
    if blanks:
        return f"has a header row with empty column name(s) at position(s) {', '.join(blanks[:MAX_REPORTED_ROWS])}"
    seen: set[str] = set()
    dupes = []
    for cell in header:
        key = cell.strip().lower()
        if key in seen:
            dupes.append(cell.strip())
        seen.add(key)
    if dupes:
        return f"has a header row with duplicate column name(s): {', '.join(sorted(set(dupes))[:MAX_REPORTED_ROWS])}"
    return None


def check_rows(path: Path, ext: str) -> tuple[list[str], int, int]:
    """(problems, data rows, columns); blank lines are ignored, as CSV readers on Encoura's side do."""
    delimiter = _delimiter(path, ext)
    problems: list[str] = []
    ragged: list[str] = []
    ragged_count = 0
    header: list[str] | None = None
    rows = 0
    try:
        for line, row in _rows(path, delimiter):
            if not row or (len(row) == 1 and not row[0].strip() and header is not None):
                continue
            if header is None:
                header = row
                problem = _header_problem(header)
                if problem:
                    return [problem], 0, len(header)
                continue
            rows += 1
            if len(row) != len(header):
                ragged_count += 1
                if len(ragged) < MAX_REPORTED_ROWS:
                    ragged.append(f"line {line} has {len(row)}")
    except CsvSyntaxError as exc:
        return [f"is not valid CSV in the row starting on line {exc.line}: {exc}"], rows, len(header or [])
    if header is None:
        return ["has no header row (no data at all)"], 0, 0
    if ragged_count:
        more = f" (and {ragged_count - len(ragged)} more)" if ragged_count > len(ragged) else ""
        sep = "tab" if delimiter == "\t" else repr(delimiter)
        problems.append(
            f"has rows whose number of fields differs from the header's {len(header)} "
            f"(separator {sep}, text qualifier '\"'): {'; '.join(ragged)}{more}"
        )
    if rows == 0:
        problems.append("has a header row but no data rows")
    return problems, rows, len(header)


# ----------------------------------------------------------------------------- binary kinds
def check_binary_kind(path: Path, ext: str) -> str | None:
    with path.open("rb") as fh:
        head = fh.read(8)
    if ext == ".xls" and not head.startswith(_XLS_MAGIC):
        return "is named .xls but is not an Excel 97-2003 workbook"
    if ext == ".xlsx" and not head.startswith(_ZIP_MAGIC):
        return "is named .xlsx but is not an Excel workbook"
    if ext == ".zip":
        if not zipfile.is_zipfile(path):
            return "is named .zip but is not a zip archive"
        with zipfile.ZipFile(path) as archive:
            members = [m for m in archive.infolist() if not m.is_dir()]
        if not members:
            return "is a zip archive with no files in it"
        odd = [m.filename for m in members if extension_of(m.filename) not in ZIP_MEMBER_EXTENSIONS]
        if odd:
            return (
                f"is a zip archive holding files Encoura does not accept: {', '.join(odd[:MAX_REPORTED_ROWS])} "
                f"(allowed inside a zip: {', '.join(ZIP_MEMBER_EXTENSIONS)})"
            )
    return None


# ----------------------------------------------------------------------------- entry point
def validate_upload_file(path: Path, *, name: str, product_type: str) -> ValidationReport:
    """Check the local copy `path` of the source file `name`; the first blocking problem found ends the check."""
    report = ValidationReport()
    problem = check_extension(name, product_type)
    if problem:
        report.problems.append(problem)
        return report
    size = path.stat().st_size
    if size == 0:
        report.problems.append("is empty (0 bytes)")
        return report
    ext = extension_of(name)
    if ext not in TEXT_EXTENSIONS:
        problem = check_binary_kind(path, ext)
        if problem:
            report.problems.append(problem)
        return report
    problem, has_bom = check_utf8(path)
    if problem:
        report.problems.append(problem)
        return report
    if has_bom:
        report.notes.append("starts with a UTF-8 byte-order mark (sent unchanged)")
    problems, rows, columns = check_rows(path, ext)
    report.problems.extend(problems)
    report.rows, report.columns = rows, columns
    return report
