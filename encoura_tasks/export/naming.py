"""File names from download URLs: the only input from outside that becomes a path, so it is sanitised hard.

The rule is the official Encoura sample's (nrccua/file_export_sample `get_valid_filename`), which the
scripts we replace copied: strip, spaces become `_`, every character outside `[-\\w.]` is removed,
extension case is kept. Matching it keeps existing Slate source-format masks matching after a
migration. On top of it we keep the safety properties the sample lacks: no `..`, no leading or
trailing dot, no Windows device name, bounded length, never empty.

`\\w` is Unicode here, as in the sample (Python's default), so `Café.csv` stays `Café.csv`: NTFS,
S3 keys and OpenSSH's SFTP (UTF-8 bytes) all store such names, and turning them into ASCII would
break the masks written against what the scripts delivered. Names are NFC-normalised first so one
visible name is always the same bytes (a macOS-produced NFD `é` would otherwise differ).
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import PurePosixPath

MAX_NAME_BYTES = 180  # leaves room for templates and suffixes within common 255-byte limits
_UNSAFE = re.compile(r"[^-\w.]")  # the sample's rule; str patterns are Unicode-aware by default
_DOTS = re.compile(r"\.{2,}")
_WORD = re.compile(r"[^\W_]")  # a letter or digit in any script: something a person can read
_WINDOWS_RESERVED = re.compile(r"(?i)^(con|prn|aux|nul|com[0-9¹²³]|lpt[0-9¹²³])(\.|$)")


def _clean(text: str) -> str:
    text = unicodedata.normalize("NFC", text).strip().replace(" ", "_")
    text = _UNSAFE.sub("", text)
    return _DOTS.sub(".", text)


def sanitize_filename(name: str, *, fallback: str) -> str:
    """The sample's name for `name`, made safe on SFTP, S3 and Windows shares: no separators, no `..`,
    no control chars, no leading dot (dot names are our temporary files), bounded length, never empty.

    `fallback` is a stem used when no letter or digit is left (e.g. a name made only of `#&%`);
    the original extension is kept so Slate's masks still recognise the file type.
    """
    cleaned = _clean(name)
    match = re.search(r"\.([A-Za-z0-9]{1,10})$", cleaned)
    stem, suffix = (cleaned[: match.start()], match.group(0)) if match else (cleaned, "")
    stem = stem.strip(".")
    if not _WORD.search(stem):
        stem = _clean(fallback)
    if _WINDOWS_RESERVED.match(stem):
        stem = f"{stem}_"  # `NUL.csv` opens the null device on Windows, whatever the extension
    return _truncate(stem + suffix)


def _truncate(name: str) -> str:
    """Cut to MAX_NAME_BYTES of UTF-8, keeping the extension and never splitting a character."""
    if len(name.encode()) <= MAX_NAME_BYTES:
        return name
    path = PurePosixPath(name)
    suffix = path.suffix if len(path.suffix) <= 10 else ""
    stem = name[: len(name) - len(suffix)] if suffix else name
    budget = MAX_NAME_BYTES - len(suffix.encode())
    cut = stem.encode()[:budget].decode(errors="ignore").rstrip(".")
    return cut + suffix


def fallback_stem(uid: str) -> str:
    return f"encoura-export-{_clean(uid).strip('.')[:40] or 'unknown'}"


def unique_variant(name: str, uid: str) -> str:
    """`Prospects.csv` -> `Prospects_<uid8>.csv`: the name a second export with the same name gets."""
    path = PurePosixPath(name)
    tag = _clean(uid).strip(".")[:8] or "x"
    suffix = path.suffix if len(path.suffix) <= 10 else ""
    stem = name[: len(name) - len(suffix)] if suffix else name
    budget = MAX_NAME_BYTES - len(suffix.encode()) - len(tag) - 1
    stem = stem.encode()[:budget].decode(errors="ignore")
    return _truncate(f"{stem}_{tag}{suffix}")
