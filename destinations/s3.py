"""S3 buckets (`s3://bucket/prefix`), via s3fs.

Decision: no temp key + copy. An S3 object becomes visible only when its PUT (or the completion
of its multipart upload) succeeds, so a reader never sees half an object: the single upload is
already the atomic step that temp + rename provides elsewhere. A copy would double the traffic
and, being copy + delete, would not be atomic either. So S3 uploads straight to the final key:

- with `If-None-Match: *` (s3fs `mode="create"`), so an existing object is never overwritten
  (AWS, MinIO and moto honour it; a store that ignores it is still protected by the existence check
  made before every upload);
- then verified: size from HEAD, and the ETag as MD5 when the upload was single-part (the ETag of a
  multipart upload or of SSE-KMS objects is not an MD5 and is not compared);
- an object that fails verification right after a successful create-only put is deleted (that put
  created it, so it is ours); after a FAILED put, whatever is under the key may be another writer's:
  it is never deleted, its content (size + MD5 ETag or sha256) is compared instead.

A killed multipart upload (files over ~100 MB) leaves only an invisible incomplete upload, which
still costs storage: `sweep` aborts incomplete uploads under the prefix that are older than the
grace period (a lifecycle rule on the bucket is a good second line).
"""

from __future__ import annotations

import re
import time
from collections.abc import Collection
from pathlib import Path

from fsspec.callbacks import Callback

from destinations.base import DestinationUnavailable, PublishError
from destinations.fsspec_dest import FsspecDestination

_MD5_ETAG = re.compile(r'^"?([0-9a-f]{32})"?$')
_MAX_LIST_PAGES = 20
_UNAVAILABLE_CODES = (
    "NoSuchBucket",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "InvalidToken",
    "EndpointConnectionError",
    "Could not connect",
)


class S3Destination(FsspecDestination):
    atomic_put = True

    def put(self, local_path: Path, path: str, *, callback: Callback | None, create_only: bool) -> None:
        kwargs = {"callback": callback} if callback is not None else {}
        self.fs.put_file(str(local_path), path, mode="create" if create_only else "overwrite", **kwargs)

    def size_of(self, path: str) -> int | None:
        self.fs.invalidate_cache(path)
        return super().size_of(path)

    def makedirs(self, path: str) -> None:
        """S3 has no folders; creating one would create the bucket, which is not ours to do."""

    def remove_folder(self, path: str) -> None:
        """S3 has no folders."""

    def root_exists(self) -> bool:
        """S3 prefixes exist only through their objects, so only the bucket must exist."""
        bucket = self.root.strip("/").partition("/")[0]
        self.fs.invalidate_cache(bucket)
        return bool(self.fs.exists(bucket))

    def root_display(self) -> str:
        return f"bucket {self.root.strip('/').partition('/')[0]}"

    def rename_noreplace(self, src: str, dst: str) -> None:  # pragma: no cover - atomic_put never renames
        raise NotImplementedError("S3 destinations upload straight to the final key")

    def remote_checksum(self, path: str) -> str | None:
        info = self.fs.info(path)
        if str(info.get("ServerSideEncryption", "")).startswith("aws:kms"):
            return None
        match = _MD5_ETAG.match(str(info.get("ETag", "")))
        return f"md5:{match[1]}" if match else None

    def classify(self, exc: BaseException) -> type[PublishError]:
        text = f"{type(exc).__name__} {exc} {exc.__cause__!r}"
        if any(code in text for code in _UNAVAILABLE_CODES):
            return DestinationUnavailable
        return super().classify(exc)

    def sweep(self, *, older_than: float | None = None, keep: Collection[str] = ()) -> list[str]:
        grace = self.config.sweep_grace_seconds if older_than is None else older_than
        removed = super().sweep(older_than=grace, keep=keep)
        aborted = self._guard("", lambda: self._abort_stale_uploads(grace))
        return sorted(removed + aborted)

    def _abort_stale_uploads(self, older_than: float) -> list[str]:
        bucket, _, prefix = self.root.strip("/").partition("/")
        prefix = f"{prefix.rstrip('/')}/" if prefix else ""
        cutoff = time.time() - older_than
        aborted: list[str] = []
        markers: dict[str, str] = {}
        for _page in range(_MAX_LIST_PAGES):  # bounded, like the folder walk
            page = self.fs.call_s3("list_multipart_uploads", Bucket=bucket, Prefix=prefix, **markers)
            for upload in page.get("Uploads", []) or []:
                if upload["Initiated"].timestamp() > cutoff:
                    continue  # may belong to a run in progress
                self.fs.call_s3("abort_multipart_upload", Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
                aborted.append(upload["Key"][len(prefix) :])
            if not page.get("IsTruncated"):
                break
            markers = {"KeyMarker": page["NextKeyMarker"], "UploadIdMarker": page["NextUploadIdMarker"]}
        return aborted
