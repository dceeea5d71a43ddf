"""The sandbox's multipart parser is strict: it must reject what Canvas's parser would reject."""

from __future__ import annotations

import httpx
import pytest

from sandbox.canvas.multipart import MultipartError, parse_multipart


def test_round_trip_of_an_httpx_upload_keeps_bytes_exact() -> None:
    blob = bytes(range(256)) * 20 + b"\r\n--not-the-boundary\r\n"
    request = httpx.Request(
        "POST", "http://x/", data={"a": "1", "b": ["2", "3"]}, files={"attachment": ("f.zip", blob, "application/zip")}
    )
    fields, files = parse_multipart(request.read(), request.headers["content-type"])
    assert fields == [("a", "1"), ("b", "2"), ("b", "3")]
    assert (files["attachment"].filename, files["attachment"].content_type) == ("f.zip", "application/zip")
    assert files["attachment"].data == blob


@pytest.mark.parametrize(
    ("body", "ctype"),
    [
        (b'--b\r\nContent-Disposition: form-data; name="a"\r\n\r\n1\r\n', "multipart/form-data; boundary=b"),
        (b"x", "multipart/form-data; boundary=b"),
        (b"--b--\r\n", "application/json"),
        (b"--b\r\nContent-Type: text/plain\r\n\r\n1\r\n--b--\r\n", "multipart/form-data; boundary=b"),
    ],
)
def test_malformed_bodies_are_rejected(body: bytes, ctype: str) -> None:
    with pytest.raises(MultipartError):
        parse_multipart(body, ctype)
