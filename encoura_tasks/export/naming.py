"""File names from download URLs: the only input from outside that becomes a path, so it is sanitised hard."""

from __future__ import annotations

import re
import unicodedata
from pathlib import PurePosixPath

MAX_NAME_BYTES = 180  # leaves room for templates and suffixes within common 255-byte limits
_UNSAFE = re.compile(r"[^A-Za-z0-9._\-+=@()\[\]~,]")
_DOTS = re.compile(r"\.{2,}")


def _clean(text: str) -> str:
    text = unicodedata.normalize("NFKD", text)
    text = "".join(ch for ch in text if not unicodedata.combining(ch) and unicodedata.category(ch)[0] != "C")
    text = _UNSAFE.sub("_", text.replace(" ", "_"))
    return _DOTS.sub(".", text).strip("._-")


def sanitize_filename(name: str, *, fallback: str) -> str:
    """A name safe on SFTP, S3 and Windows shares: ASCII, no separators, no `..`, no control chars,
    no leading dot (dot names are our temporary files), spaces as `_`, bounded length, never empty.

    `fallback` is a stem used when nothing readable is left (e.g. a name written only in CJK characters);
    the original extension is kept so Slate's masks still recognise the file type.
    """
    match = re.search(r"\.([A-Za-z0-9]{1,10})$", name.strip())
    suffix = f".{match.group(1).lower()}" if match else ""
    stem = _clean(name.strip()[: match.start()] if match else name)
    if not re.search(r"[A-Za-z0-9]", stem):
        stem = _clean(fallback)
    return _truncate(stem + suffix)


def _truncate(name: str) -> str:
    if len(name.encode()) <= MAX_NAME_BYTES:
        return name
    path = PurePosixPath(name)
    suffix = path.suffix if len(path.suffix) <= 10 else ""
    stem = name[: len(name) - len(suffix)] if suffix else name
    return stem[: MAX_NAME_BYTES - len(suffix)] + suffix


def fallback_stem(uid: str) -> str:
    return f"encoura-export-{_clean(uid)[:40] or 'unknown'}"


def unique_variant(name: str, uid: str) -> str:
    """`Prospects.csv` -> `Prospects_<uid8>.csv`: the name a second export with the same name gets."""
    path = PurePosixPath(name)
    tag = _clean(uid)[:8] or "x"
    suffix = path.suffix if len(path.suffix) <= 10 else ""
    stem = name[: len(name) - len(suffix)] if suffix else name
    return _truncate(f"{stem[: MAX_NAME_BYTES - len(suffix) - len(tag) - 1]}_{tag}{suffix}")
