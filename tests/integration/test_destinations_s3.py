"""S3 specifics against moto in server mode: create-only uploads, ETag checksums, stale multipart uploads."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from destinations import DestinationUnavailable, PublishError, open_destination
from tests.support.s3_server import S3TestServer


def _staged(tmp_path: Path, data: bytes) -> tuple[Path, str, int]:
    path = tmp_path / "staged.csv"
    path.write_bytes(data)
    return path, hashlib.sha256(data).hexdigest(), len(data)


def test_receipt_carries_etag_md5(s3_server: S3TestServer, tmp_path: Path) -> None:
    local, sha, size = _staged(tmp_path, b"a,b\n1,2\n")
    with open_destination("archive", s3_server.config("exports")) as dest:
        receipt = dest.publish(local, "aos/a.csv", sha256=sha, size=size)
    assert receipt.checksum == "md5:" + hashlib.md5(b"a,b\n1,2\n", usedforsecurity=False).hexdigest()
    assert receipt.final_path == f"s3://{s3_server.bucket}/exports/aos/a.csv"
    assert s3_server.keys() == ["exports/aos/a.csv"]


def test_object_appearing_between_check_and_put_is_not_overwritten(s3_server: S3TestServer, tmp_path: Path) -> None:
    """The create-only PUT (If-None-Match) protects even when the existence check was passed."""
    local, sha, size = _staged(tmp_path, b"ours\n")
    dest = open_destination("archive", s3_server.config("exports"))
    real_size = dest.size_of

    def racing_size(path: str) -> int | None:
        result = real_size(path)
        if path.endswith("a.csv") and not s3_server.keys():
            s3_server.client().put_object(Bucket=s3_server.bucket, Key="exports/a.csv", Body=b"theirs\n")
        return result

    dest.size_of = racing_size  # type: ignore[method-assign]
    with pytest.raises(PublishError, match="exists with different content"):
        dest.publish(local, "a.csv", sha256=sha, size=size)
    assert s3_server.read("exports/a.csv") == b"theirs\n"


def test_sweep_aborts_only_stale_incomplete_multipart_uploads(s3_server: S3TestServer) -> None:
    """What a run killed during a big (multipart) upload leaves: nothing visible, an incomplete upload."""
    client = s3_server.client()
    upload = client.create_multipart_upload(Bucket=s3_server.bucket, Key="exports/big.csv")
    client.upload_part(
        Bucket=s3_server.bucket, Key="exports/big.csv", UploadId=upload["UploadId"], PartNumber=1, Body=b"x" * 1024
    )
    client.create_multipart_upload(Bucket=s3_server.bucket, Key="elsewhere/other.csv")
    with open_destination("archive", s3_server.config("exports")) as dest:
        assert dest.exists("big.csv") is None
        # moto reports every upload as initiated in 2010, so the grace period is shown with a century.
        assert dest.sweep(older_than=100 * 365 * 86400) == []
        assert dest.sweep(older_than=0) == ["big.csv"]
    remaining = client.list_multipart_uploads(Bucket=s3_server.bucket).get("Uploads", [])
    assert [u["Key"] for u in remaining] == ["elsewhere/other.csv"]


def test_missing_bucket_is_unavailable(s3_server: S3TestServer, tmp_path: Path) -> None:
    local, sha, size = _staged(tmp_path, b"x")
    config = s3_server.config()
    config = config.model_copy(update={"url": "s3://no-such-bucket-here/p"})
    with open_destination("archive", config) as dest, pytest.raises(DestinationUnavailable, match="archive"):
        dest.publish(local, "a.csv", sha256=sha, size=size)
