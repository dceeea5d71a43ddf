"""A strict multipart/form-data reader for both sandboxes (the Encoura S3 upload endpoint, Canvas SIS imports).

Written here rather than borrowed because the sandbox must see what a client really sent: the
order of the parts and the exact bytes of the file, which form parsers normalise away.
"""

from __future__ import annotations

from email.message import Message


class MultipartError(ValueError):
    pass


# (field name, file name or None, part Content-Type or None, raw bytes)
Part = tuple[str, str | None, str | None, bytes]


def _header_params(value: str) -> Message:
    msg = Message()
    msg["content-type"] = value
    return msg


def boundary_of(content_type: str | None) -> bytes:
    if not content_type or not content_type.lower().startswith("multipart/form-data"):
        raise MultipartError("Bucket POST must be of the enclosure-type multipart/form-data")
    boundary = _header_params(content_type).get_param("boundary")
    if not isinstance(boundary, str) or not boundary:
        raise MultipartError("multipart/form-data without a boundary")
    return boundary.encode("latin-1")


def parse_form(body: bytes, content_type: str | None) -> list[Part]:
    delimiter = b"--" + boundary_of(content_type)
    chunks = body.split(b"\r\n" + delimiter)
    first = chunks[0]
    if not first.startswith(delimiter):
        raise MultipartError("multipart body does not start with its boundary")
    chunks[0] = first[len(delimiter) :]
    if not chunks[-1].startswith(b"--"):
        raise MultipartError("multipart body is not terminated (missing closing boundary)")
    parts: list[Part] = []
    for chunk in chunks[:-1]:
        if not chunk.startswith(b"\r\n"):
            raise MultipartError("malformed multipart boundary line")
        head, sep, data = chunk[2:].partition(b"\r\n\r\n")
        if not sep:
            raise MultipartError("multipart part without a blank line after its headers")
        headers = {}
        for line in head.decode("utf-8", "replace").split("\r\n"):
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        disposition = _header_params(f"form-data; {headers.get('content-disposition', '').partition(';')[2]}")
        name = disposition.get_param("name")
        if not isinstance(name, str):
            raise MultipartError("multipart part without a name")
        filename = disposition.get_param("filename")
        parts.append((name, filename if isinstance(filename, str) else None, headers.get("content-type"), data))
    return parts
