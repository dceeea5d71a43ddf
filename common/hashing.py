"""Checksums of files and open streams in bounded memory: one implementation for every module that
verifies what it staged, published, read back or uploaded."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import BinaryIO

CHUNK_BYTES = 1 << 20


def stream_hexdigest(fh: BinaryIO, algorithm: str = "sha256") -> str:
    """Hash an open binary stream (a local file or an fsspec remote file) chunk by chunk."""
    digest = hashlib.new(algorithm, usedforsecurity=algorithm != "md5")
    for block in iter(lambda: fh.read(CHUNK_BYTES), b""):
        digest.update(block)
    return digest.hexdigest()


def file_hexdigest(path: Path | str, algorithm: str = "sha256") -> str:
    with open(path, "rb") as fh:
        return stream_hexdigest(fh, algorithm)
