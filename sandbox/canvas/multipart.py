"""Canvas's view of a multipart upload: text fields in order, files by field name.

Strict on purpose (see sandbox.multipart): the sandbox exists to prove that clients send a
well-formed upload, so a body that a lenient parser would accept but Canvas's Rack parser would
not should fail loudly.
"""

from __future__ import annotations

from dataclasses import dataclass

from sandbox.multipart import MultipartError, parse_form

__all__ = ["MultipartError", "UploadedFile", "parse_multipart"]


@dataclass(frozen=True)
class UploadedFile:
    filename: str
    content_type: str
    data: bytes


def parse_multipart(body: bytes, content_type: str) -> tuple[list[tuple[str, str]], dict[str, UploadedFile]]:
    """Return (text fields in order, files by field name)."""
    fields: list[tuple[str, str]] = []
    files: dict[str, UploadedFile] = {}
    for name, filename, part_type, data in parse_form(body, content_type):
        if filename is not None:
            files[name] = UploadedFile(filename, part_type or "application/octet-stream", data)
        else:
            try:
                fields.append((name, data.decode("utf-8")))
            except UnicodeDecodeError:
                raise MultipartError(f"form field {name!r} is not UTF-8 text") from None
    return fields, files
