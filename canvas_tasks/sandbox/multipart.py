"""A small, strict multipart/form-data parser (python-multipart is not a dependency here).

Strict on purpose: the sandbox exists to prove that clients send a well-formed upload, so a body
that a lenient parser would accept but Canvas's Rack parser would not should fail loudly.
"""

from __future__ import annotations

from dataclasses import dataclass
from email.message import Message


class MultipartError(ValueError):
    pass


@dataclass(frozen=True)
class UploadedFile:
    filename: str
    content_type: str
    data: bytes


def _header_params(value: str) -> tuple[str, dict[str, str]]:
    msg = Message()
    msg["content-type"] = value
    params = {k.lower(): v for k, v in msg.get_params(header="content-type", failobj=[])[1:]}
    return msg.get_content_type(), params


def boundary_of(content_type: str) -> bytes:
    kind, params = _header_params(content_type)
    if kind != "multipart/form-data" or not params.get("boundary"):
        raise MultipartError(f"not multipart/form-data with a boundary: {content_type!r}")
    return params["boundary"].encode("latin-1")


def parse_multipart(body: bytes, content_type: str) -> tuple[list[tuple[str, str]], dict[str, UploadedFile]]:
    """Return (text fields in order, files by field name)."""
    boundary = b"--" + boundary_of(content_type)
    if not body.startswith(boundary):
        raise MultipartError("body does not start with the boundary")
    fields: list[tuple[str, str]] = []
    files: dict[str, UploadedFile] = {}
    chunks = (b"\r\n" + body).split(b"\r\n" + boundary)
    if not chunks[-1].startswith(b"--"):
        raise MultipartError("missing closing boundary")
    for chunk in chunks[1:-1]:
        if not chunk.startswith(b"\r\n"):
            raise MultipartError("malformed part delimiter")
        head, sep, data = chunk[2:].partition(b"\r\n\r\n")
        if not sep:
            raise MultipartError("part without a header/body separator")
        headers: dict[str, str] = {}
        for line in head.decode("utf-8").split("\r\n"):
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        disposition = headers.get("content-disposition", "")
        kind, params = _header_params(disposition.replace("form-data", "form-data/x", 1))
        if kind != "form-data/x" or "name" not in params:
            raise MultipartError(f"part without form-data name: {disposition!r}")
        if "filename" in params:
            files[params["name"]] = UploadedFile(
                params["filename"], headers.get("content-type", "application/octet-stream"), data
            )
        else:
            fields.append((params["name"], data.decode("utf-8")))
    return fields, files
