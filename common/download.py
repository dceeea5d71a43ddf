"""One way to save an HTTP body to disk: a temporary name, bounded memory, a sha256 and a length check.

Every downloader (Encoura exports, Canvas error CSVs) needs the same four promises: nothing appears under
the final name until the whole body is on disk (fsynced), a short body is an error rather than a
smaller file, the file is readable by its owner only (it holds student records), and a failure leaves
no temp behind.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

CHUNK_BYTES = 1 << 20
PROGRESS_EVERY_BYTES = 64 * 1024 * 1024


class TruncatedBody(Exception):
    """The server promised more bytes (Content-Length) than arrived."""


@dataclass(frozen=True)
class SavedFile:
    size: int
    sha256: str


def save_body(
    response: httpx.Response,
    target: Path,
    *,
    on_progress: Callable[[int], None] | None = None,
) -> SavedFile:
    """Stream `response` (opened with `client.stream`) to `target`; raises TruncatedBody or the transport error.

    Reads the raw bytes when the body is not content-encoded, so Content-Length can be checked exactly.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = target.with_name(f".{target.name}.part")
    encoded = bool(response.headers.get("content-encoding"))
    expected = None if encoded else response.headers.get("content-length")
    chunks = response.iter_bytes(CHUNK_BYTES) if encoded else response.iter_raw(CHUNK_BYTES)
    digest = hashlib.sha256()
    received = 0
    next_progress = PROGRESS_EVERY_BYTES
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_BINARY", 0), 0o600)
        with os.fdopen(fd, "wb") as fh:
            for chunk in chunks:
                fh.write(chunk)
                digest.update(chunk)
                received += len(chunk)
                if on_progress and received >= next_progress:
                    on_progress(received)
                    next_progress += PROGRESS_EVERY_BYTES
            fh.flush()
            os.fsync(fh.fileno())
        if expected is not None and int(expected) != received:
            raise TruncatedBody(f"got {received} of {expected} bytes")
        os.replace(temp, target)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return SavedFile(size=received, sha256=digest.hexdigest())
