"""The upload side: file records, the presigned-POST contract, and the status chain a file walks through.

Pure logic: SandboxState stores the records and holds the lock; this module decides what a
record looks like and whether a multipart POST satisfies its policy, the way S3 would.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import PurePosixPath
from typing import Any

from sandbox.encoura.config import ACCESS_KEY_ID, fice_of
from sandbox.encoura.errors import ApiError, S3Error
from sandbox.multipart import Part

UPLOAD_BUCKET = "uploads"
PRODUCT_TYPES = ("enrollment", "affinity", "ematch")
_DONE_CHAIN = ("analyzing", "enqueued", "cleansing", "ingesting", "processing", "done")
FAILURE_ERROR = "Row 3: missing required column 'Student ID'"


@dataclass
class ReceivedUpload:
    """One multipart POST that S3 accepted: what a client really sent, in order, byte for byte."""

    upload_id: str
    field_order: list[str]
    fields: dict[str, str]
    file_name: str | None
    file_content_type: str | None
    file_bytes: bytes


@dataclass
class UploadRecord:
    id: str
    organization_uid: str
    file_name: str
    original_file_name: str | None
    product_type: str
    data_source: str
    file_description: str
    fields: dict[str, str]
    upload_date: str
    uploaded: bool = False
    polls_since_upload: int = 0
    record_volume: int = 0
    columns: list[str] = field(default_factory=list)

    @property
    def chain(self) -> tuple[str, ...]:
        """Statuses after the file arrives; the file name picks the scenario so tests need no extra knobs."""
        name = self.file_name.lower()
        if "fail" in name:
            return ("analyzing", "failure")
        if "mapping" in name:
            return ("analyzing", "fields_mapping_required")
        if "cancel" in name:
            return ("analyzing", "fields_mapping_required", "canceled")
        return _DONE_CHAIN

    def status_at(self, steps: int) -> str:
        if not self.uploaded:
            return "uploading"
        chain = self.chain
        return chain[min(max(self.polls_since_upload - 1, 0) // steps, len(chain) - 1)]

    def to_json(self, status: str) -> dict[str, Any]:
        analyzed = status != "uploading"
        return {
            "id": self.id,
            "fileName": self.file_name,
            "originalFileName": self.original_file_name,
            "filePath": self.fields["key"],
            "productType": self.product_type,
            "status": status,
            "userName": "API-User",
            "uploadDate": self.upload_date,
            "recordVolume": self.record_volume if analyzed else 0,
            "meta": {"columns": self.columns, "delimiter": ","} if analyzed else {},
            "fieldsMap": {c: c for c in self.columns} if status == "done" else None,
            "valuesMap": {} if status == "done" else None,
            "dataSource": self.data_source,
            "fileDescription": self.file_description,
            "error": FAILURE_ERROR if status == "failure" else None,
        }


def new_upload(org: str, body: dict[str, Any]) -> UploadRecord:
    """Validate a `POST /files/upload` body and mint the presigned-POST fields for it."""
    file_name = body.get("fileName")
    product_type = body.get("productType")
    problems = []
    if not isinstance(file_name, str) or not file_name.strip():
        problems.append("fileName is required")
    if not isinstance(product_type, str) or product_type not in PRODUCT_TYPES:
        problems.append(f"productType must be one of {', '.join(PRODUCT_TYPES)}, not {product_type!r}")
    if problems or not isinstance(file_name, str) or not isinstance(product_type, str):
        raise ApiError(400, "; ".join(problems))
    original = body.get("originalFileName")
    if original is not None and (not isinstance(original, str) or not original.strip()):
        raise ApiError(400, "originalFileName must be a non-empty string when given")
    stamp = int(time.time())
    # The sample: "Signed URL will be generated to save file with this name" - originalFileName names the
    # stored object; fileName is the record's label. Only its last path part is used (no `../` in keys).
    path = PurePosixPath(re.split(r"[/\\]", original or file_name)[-1])
    unique = uuid.uuid4().hex[:8]  # two same-name records in one second must not share a key
    key = f"{fice_of(org)}/{product_type}/{path.stem}.{stamp}-{unique}{path.suffix}"
    now = datetime.now(UTC)
    amz_date = now.strftime("%Y%m%dT%H%M%SZ")
    policy = {
        "expiration": datetime.fromtimestamp(stamp + 3600, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "conditions": [{"bucket": UPLOAD_BUCKET}, {"key": key}],
    }
    fields = {
        "key": key,
        "x-amz-algorithm": "AWS4-HMAC-SHA256",
        "x-amz-credential": f"{ACCESS_KEY_ID}/{amz_date[:8]}/us-east-1/s3/aws4_request",
        "x-amz-date": amz_date,
        "x-amz-security-token": base64.b64encode(secrets.token_bytes(48)).decode(),
        "policy": base64.b64encode(json.dumps(policy).encode()).decode(),
        "x-amz-signature": secrets.token_hex(32),
    }
    return UploadRecord(
        id=str(uuid.uuid4()),
        organization_uid=org,
        file_name=file_name,
        original_file_name=body.get("originalFileName"),
        product_type=product_type,
        data_source=str(body.get("dataSource", body.get("datasource", "API"))),
        file_description=str(body.get("fileDescription", "")),
        fields=fields,
        upload_date=now.isoformat(timespec="microseconds").replace("+00:00", ""),
    )


def accept_form(record: UploadRecord | None, parts: list[Part]) -> ReceivedUpload:
    """Check a browser-style POST like S3 does (policy fields first and exact, `file` last) and apply it."""
    names = [name for name, *_ in parts]
    if names.count("file") != 1:
        raise S3Error(400, "InvalidArgument", "POST requires exactly one file upload per request.")
    if names[-1] != "file":
        after = ", ".join(names[names.index("file") + 1 :])
        raise S3Error(400, "InvalidArgument", f"The file must be the last field of the form; found after it: {after}")
    if record is None:
        raise S3Error(
            400,
            "InvalidArgument",
            "Bucket POST must contain a field named 'key'.  If it is specified, please check the order of the fields.",
        )
    fields = {name: data.decode("utf-8", "replace") for name, _, _, data in parts[:-1]}
    problems = {
        "missing fields": [n for n in record.fields if n not in fields],
        "extra fields": [n for n in fields if n not in record.fields],
        "fields that differ from the presigned values": [
            n for n in record.fields if n in fields and fields[n] != record.fields[n]
        ],
        "fields sent twice": sorted({n for n in names[:-1] if names.count(n) > 1}),
    }
    detail = "; ".join(f"{label}: {', '.join(found)}" for label, found in problems.items() if found)
    if detail:
        raise S3Error(400, "InvalidPolicyDocument", f"Invalid according to Policy: {detail}")
    _, file_name, content_type, data = parts[-1]
    header, _, rest = data.partition(b"\n")
    record.uploaded = True
    record.polls_since_upload = 0
    record.columns = [c.strip().strip('"') for c in header.decode("utf-8", "replace").split(",") if c.strip()]
    record.record_volume = rest.count(b"\n") + (1 if rest and not rest.endswith(b"\n") else 0)
    return ReceivedUpload(record.id, names[:-1], fields, file_name, content_type, data)
