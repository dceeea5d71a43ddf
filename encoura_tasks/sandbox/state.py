"""Everything the sandbox remembers, behind one lock.

The HTTP handlers run on uvicorn's event-loop thread while tests read counters and add exports
from the pytest thread, so every mutation and every consistent read happens under `lock`.
Handlers get plain results or raise ApiError/S3Error; HTTP shaping lives in the routers.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import quote, urlencode

from encoura_tasks.sandbox.config import SANDBOX_CREDENTIALS, SandboxConfig, organization_uids
from encoura_tasks.sandbox.errors import ApiError, S3Error
from encoura_tasks.sandbox.faults import FaultPlan
from encoura_tasks.sandbox.samples import seed_exports
from encoura_tasks.settings import PRODUCT_KEYS

EXPORT_BUCKET = "encoura-datalab-export-files-sandbox"
UPLOAD_BUCKET = "uploads"
ACCESS_KEY_ID = "AKIASANDBOXFAKE00000"
EXPORT_STATUSES = ("NotDelivered", "Delivered")
PRODUCT_TYPES = ("enrollment", "affinity", "ematch")
_DONE_CHAIN = ("analyzing", "enqueued", "cleansing", "ingesting", "processing", "done")
FAILURE_ERROR = "Row 3: missing required column 'Student ID'"


@dataclass
class ExportRecord:
    uid: str
    product_key: str
    filename: str
    content: bytes
    organization_uid: str
    status: str = "NotDelivered"
    created_at_ms: int = 0
    listing_overrides: dict[str, Any] | None = None

    @property
    def s3_key(self) -> str:
        return f"{self.product_key}/{self.filename}"

    # Content never changes after creation; hashing a large export on every GET or snapshot would not scale.
    @cached_property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()

    @cached_property
    def etag(self) -> str:
        return f'"{hashlib.md5(self.content, usedforsecurity=False).hexdigest()}"'

    def summary(self) -> dict[str, Any]:
        return {
            "uid": self.uid,
            "product_key": self.product_key,
            "filename": self.filename,
            "status": self.status,
            "organization_uid": self.organization_uid,
            "size": len(self.content),
            "sha256": self.sha256,
        }


@dataclass
class PresignedDownload:
    uid: str
    bucket: str
    key: str
    expires_at: float  # time.monotonic() deadline; the Expires query value is only informative
    used: bool = False


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


def _org_json(n: int, uid: str) -> dict[str, str]:
    suffix = "" if n == 1 else f" Campus {n}"
    return {"uid": uid, "name": f"Sandbox University{suffix} (fake)", "fice": f"SANDBOX{n}", "stateCode": "MO"}


def _fice(org_uid: str) -> str:
    known = organization_uids(20)
    return f"SANDBOX{known.index(org_uid) + 1}" if org_uid in known else "SANDBOX"


class SandboxState:
    def __init__(self, config: SandboxConfig, *, seed_samples: bool = False) -> None:
        self.lock = threading.RLock()
        self._initial_config = config
        self._seed_samples = seed_samples
        self.root_url = f"http://{config.host}:{config.port}"
        self.reset()

    # ------------------------------------------------------------------ lifecycle / admin
    def reset(self) -> None:
        """Back to how the server started: initial config, no tokens, no counters, samples re-seeded if asked."""
        with self.lock:
            self.config = self._initial_config
            self.faults = FaultPlan(self.config)
            self.exports: dict[str, ExportRecord] = {}
            self.uploads: dict[str, UploadRecord] = {}
            self.uploads_received: list[ReceivedUpload] = []
            self.tokens: dict[str, float] = {}
            self.presigned: dict[str, PresignedDownload] = {}
            self.counters: Counter[str] = Counter()
            self.faults_injected: Counter[str] = Counter()
            self.login_attempts = 0
            self.login_failures = 0
            self.refresh_count = 0
            self.download_url_requests: Counter[str] = Counter()
            self.s3_gets: Counter[str] = Counter()
            self.s3_truncated: Counter[str] = Counter()
            self.s3_rejected: Counter[str] = Counter()
            if self._seed_samples:
                for sample in seed_exports():
                    uid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"sandbox:{sample.product_key}/{sample.filename}"))
                    self.add_export(
                        sample.product_key,
                        sample.filename,
                        sample.content,
                        uid=uid,
                        created_at_ms=int(sample.created.timestamp() * 1000),
                    )

    def configure(self, **changes: Any) -> SandboxConfig:
        with self.lock:
            self.config = self.config.updated(**changes)
            # A new seed restarts the fault sequence; other changes keep the sequence going.
            if "seed" in changes:
                self.faults = FaultPlan(self.config)
            else:
                self.faults.config = self.config
            return self.config

    def expire_tokens(self) -> None:
        """Lets auth tests see a 401 on an expired token without sleeping for token_ttl_seconds."""
        with self.lock:
            self.tokens = dict.fromkeys(self.tokens, 0.0)

    @property
    def organizations(self) -> list[str]:
        return organization_uids(self.config.organizations)

    def add_export(
        self,
        product_key: str,
        filename: str | None,
        content: bytes,
        *,
        listing_overrides: dict[str, Any] | None = None,
        status: str = "NotDelivered",
        organization_uid: str | None = None,
        uid: str | None = None,
        created_at_ms: int | None = None,
    ) -> str:
        if product_key not in PRODUCT_KEYS:
            raise ValueError(f"unknown product key {product_key!r}; known: {', '.join(PRODUCT_KEYS)}")
        if status not in EXPORT_STATUSES:
            raise ValueError(f"status must be one of {EXPORT_STATUSES}, not {status!r}")
        uid = uid or str(uuid.uuid4())
        record = ExportRecord(
            uid=uid,
            product_key=product_key,
            filename=filename or f"{product_key}-{uid[:8]}.csv",
            content=bytes(content),
            organization_uid=organization_uid or SANDBOX_CREDENTIALS["organization_uid"],
            status=status,
            created_at_ms=created_at_ms if created_at_ms is not None else int(time.time() * 1000),
            listing_overrides=dict(listing_overrides) if listing_overrides else None,
        )
        with self.lock:
            self.exports[record.uid] = record
        return record.uid

    def snapshot(self) -> dict[str, Any]:
        """A consistent JSON-ready copy for the admin API and for assertions from other processes."""
        with self.lock:
            return {
                "config": self.config.model_dump(mode="json"),
                "counters": dict(self.counters),
                "faults_injected": dict(self.faults_injected),
                "login_attempts": self.login_attempts,
                "login_failures": self.login_failures,
                "refresh_count": self.refresh_count,
                "download_url_requests": dict(self.download_url_requests),
                "s3_gets": dict(self.s3_gets),
                "s3_truncated": dict(self.s3_truncated),
                "s3_rejected": dict(self.s3_rejected),
                "exports": [e.summary() for e in self.exports.values()],
                "uploads": [
                    {
                        "id": u.id,
                        "fileName": u.file_name,
                        "productType": u.product_type,
                        "uploaded": u.uploaded,
                        "status": u.status_at(self.config.upload_status_steps),
                    }
                    for u in self.uploads.values()
                ],
                "uploads_received": [
                    {
                        "upload_id": r.upload_id,
                        "field_order": r.field_order,
                        "file_name": r.file_name,
                        "size": len(r.file_bytes),
                        "sha256": hashlib.sha256(r.file_bytes).hexdigest(),
                    }
                    for r in self.uploads_received
                ],
            }

    # ------------------------------------------------------------------ API gate
    def count(self, endpoint: str) -> None:
        with self.lock:
            self.counters[endpoint] += 1

    def draw_fault(self, endpoint: str) -> ApiError | None:
        with self.lock:
            fault = self.faults.api_fault()
            if fault is None:
                return None
            self.faults_injected[endpoint] += 1
        return ApiError(fault.status, fault.message, headers=fault.headers)

    def draw_delay(self) -> float:
        with self.lock:
            return self.faults.delay()

    def check_api_key(self, api_key: str | None) -> None:
        if not api_key or not secrets.compare_digest(api_key, SANDBOX_CREDENTIALS["api_key"]):
            raise ApiError(403, "Forbidden")

    def check_token(self, authorization: str | None) -> str:
        scheme, _, token = (authorization or "").strip().partition(" ")
        if scheme.lower() not in ("bearer", "jwt") or not token.strip():
            raise ApiError(401, "Unauthorized")
        with self.lock:
            expires_at = self.tokens.get(token.strip())
        if expires_at is None:
            raise ApiError(401, "Unauthorized")
        if time.monotonic() >= expires_at:
            raise ApiError(401, "The incoming token has expired")
        return token.strip()

    def check_organization(self, organization: str | None) -> str:
        if not organization:
            raise ApiError(403, "Missing Organization header")
        if organization not in self.organizations:
            raise ApiError(403, f"User is not a member of organization {organization}")
        return organization

    # ------------------------------------------------------------------ auth
    def note_login_attempt(self) -> None:
        """Every login that gets past the gateway counts, well-formed or not: tests assert no retry storms."""
        with self.lock:
            self.login_attempts += 1

    def login(self, body: dict[str, Any]) -> dict[str, Any]:
        user = body.get("userName", body.get("email"))
        password = body.get("password")
        if body.get("acceptedTerms") is not True:
            raise ApiError(400, "acceptedTerms must be true")
        if not isinstance(user, str) or not isinstance(password, str):
            raise ApiError(400, "userName (or email) and password are required")
        if user.lower() != SANDBOX_CREDENTIALS["username"] or not secrets.compare_digest(
            password, SANDBOX_CREDENTIALS["password"]
        ):
            with self.lock:
                self.login_failures += 1
            raise ApiError(401, "Invalid username or password")
        token = self._new_token()
        orgs = [_org_json(n, uid) for n, uid in enumerate(self.organizations, start=1)]
        return {
            "user": {
                "uid": "00000000-5a4d-4b0c-8000-0000000000aa",
                "type": "User",
                "userName": SANDBOX_CREDENTIALS["username"],
                "firstName": "Sandbox",
                "lastName": "Service Account",
                "email": SANDBOX_CREDENTIALS["username"],
                "status": "Active",
                "organizations": orgs,
                "attributes": [{"key": "acceptedTerms", "value": {"accepted": True}}],
            },
            "sessionToken": self._wire_token(token),
        }

    def refresh(self, _old_token: str) -> dict[str, str]:
        with self.lock:
            self.refresh_count += 1
        return {"sessionToken": self._wire_token(self._new_token())}

    def _new_token(self) -> str:
        token = base64.urlsafe_b64encode(secrets.token_bytes(48)).decode().rstrip("=")
        with self.lock:
            self.tokens[token] = time.monotonic() + self.config.token_ttl_seconds
        return token

    def _wire_token(self, token: str) -> str:
        return f'"{token}"' if self.config.quote_session_token else token

    # ------------------------------------------------------------------ exports
    def list_exports(self, org: str, status: str | None, product_key: str | None) -> list[dict[str, Any]]:
        """Listing consumes: every NotDelivered export returned is Delivered from now on."""
        with self.lock:
            chosen = [
                e
                for e in sorted(self.exports.values(), key=lambda e: e.created_at_ms)
                if e.organization_uid == org
                and (status is None or e.status == status)
                and (product_key is None or e.product_key == product_key)
            ]
            entries = [self._listing_entry(e) for e in chosen]
            for e in chosen:
                e.status = "Delivered"
            return entries

    def _listing_entry(self, e: ExportRecord) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "uid": e.uid,
            "fice": _fice(e.organization_uid),
            "organizationUid": e.organization_uid,
            "productKey": e.product_key,
            "purchaseItems": [],
            "status": e.status,
            "listGenerated": True,
            "listPath": str(uuid.uuid5(uuid.UUID(e.uid), "listPath")),
            "quantity": max(e.content.count(b"\n") - 1, 0),
            "costInPoints": 0,
            "costInDollars": 0,
            "date": e.created_at_ms,
            "created": {
                "createdBy": {"uid": "00000000-5a4d-4b0c-8000-0000000000aa", "name": "", "type": ""},
                "createdAt": e.created_at_ms,
            },
            "isExpired": False,
            "overdueEmailSentAt": None,
            "isContinuous": False,
        }
        for key, value in (e.listing_overrides or {}).items():
            if value is None:
                entry.pop(key, None)  # None drops the key: how tests fake entries without "uid"
            else:
                entry[key] = value
        return entry

    def export_for(self, org: str, uid: str) -> ExportRecord:
        with self.lock:
            record = self.exports.get(uid)
        if record is None or record.organization_uid != org:
            raise ApiError(404, f"Export {uid} not found")
        return record

    def issue_download_url(self, record: ExportRecord) -> str:
        signature = base64.b64encode(secrets.token_bytes(20)).decode()
        ttl = self.config.url_ttl_seconds
        with self.lock:
            self.download_url_requests[record.uid] += 1
            self.presigned[signature] = PresignedDownload(
                record.uid, EXPORT_BUCKET, record.s3_key, time.monotonic() + ttl
            )
        query = urlencode({"AWSAccessKeyId": ACCESS_KEY_ID, "Expires": int(time.time() + ttl), "Signature": signature})
        path = f"{quote(record.product_key, safe='')}/{quote(record.filename, safe='')}"
        return f"{self.root_url}/_s3/{EXPORT_BUCKET}/{path}?{query}"

    # ------------------------------------------------------------------ S3
    def redeem_download(self, bucket: str, key: str, signature: str | None, expires: str | None) -> ExportRecord:
        """Check a presigned GET the way S3 does and consume it; the URL is spent even if the body is cut."""
        if not signature or not expires:
            raise self.s3_reject(
                403,
                "AccessDenied",
                "Query-string authentication requires the Signature, Expires and AWSAccessKeyId parameters",
            )
        with self.lock:
            grant = self.presigned.get(signature)
            if grant is None or grant.bucket != bucket or grant.key != key:
                raise self.s3_reject(
                    403,
                    "SignatureDoesNotMatch",
                    "The request signature we calculated does not match the signature you "
                    "provided. Check your key and signing method.",
                )
            if time.monotonic() >= grant.expires_at:
                raise self.s3_reject(403, "AccessDenied", "Request has expired")
            if grant.used:
                raise self.s3_reject(403, "AccessDenied", "Access Denied")
            grant.used = True
            record = self.exports[grant.uid]
            self.s3_gets[record.uid] += 1
            return record

    def draw_truncate(self, uid: str) -> bool:
        with self.lock:
            cut = self.faults.truncate()
            if cut:
                self.s3_truncated[uid] += 1
            return cut

    def s3_reject(self, status: int, code: str, message: str) -> S3Error:
        with self.lock:
            self.s3_rejected[code] += 1
        return S3Error(status, code, message)

    def reject_api_headers(self, headers: dict[str, str]) -> None:
        if "authorization" in headers or "x-api-key" in headers:
            raise self.s3_reject(
                400,
                "InvalidArgument",
                "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, Signature query "
                "string parameter or the Authorization header should be specified",
            )

    # ------------------------------------------------------------------ uploads
    def create_upload(self, org: str, body: dict[str, Any]) -> UploadRecord:
        file_name = body.get("fileName")
        product_type = body.get("productType")
        problems = []
        if not isinstance(file_name, str) or not file_name.strip():
            problems.append("fileName is required")
        if product_type not in PRODUCT_TYPES:
            problems.append(f"productType must be one of {', '.join(PRODUCT_TYPES)}, not {product_type!r}")
        if problems:
            raise ApiError(400, "; ".join(problems))
        assert isinstance(file_name, str) and isinstance(product_type, str)
        upload_id = str(uuid.uuid4())
        stamp = int(time.time())
        path = PurePosixPath(file_name)
        key = f"{_fice(org)}/{product_type}/{path.stem}.{stamp}{path.suffix}"
        amz_date = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        policy = base64.b64encode(
            json.dumps(
                {
                    "expiration": datetime.fromtimestamp(stamp + 3600, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "conditions": [{"bucket": UPLOAD_BUCKET}, {"key": key}],
                }
            ).encode()
        ).decode()
        fields = {
            "key": key,
            "x-amz-algorithm": "AWS4-HMAC-SHA256",
            "x-amz-credential": f"{ACCESS_KEY_ID}/{amz_date[:8]}/us-east-1/s3/aws4_request",
            "x-amz-date": amz_date,
            "x-amz-security-token": base64.b64encode(secrets.token_bytes(48)).decode(),
            "policy": policy,
            "x-amz-signature": secrets.token_hex(32),
        }
        record = UploadRecord(
            id=upload_id,
            organization_uid=org,
            file_name=file_name,
            original_file_name=body.get("originalFileName"),
            product_type=product_type,
            data_source=str(body.get("dataSource", body.get("datasource", "API"))),
            file_description=str(body.get("fileDescription", "")),
            fields=fields,
            upload_date=datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", ""),
        )
        with self.lock:
            self.uploads[upload_id] = record
        return record

    def receive_upload(self, parts: list[tuple[str, str | None, str | None, bytes]]) -> ReceivedUpload:
        """Validate a browser-style POST like S3 does: policy fields first, exactly, then `file` last."""
        names = [name for name, *_ in parts]
        if names.count("file") != 1:
            raise self.s3_reject(400, "InvalidArgument", "POST requires exactly one file upload per request.")
        if names[-1] != "file":
            after = ", ".join(names[names.index("file") + 1 :])
            raise self.s3_reject(
                400, "InvalidArgument", f"The file must be the last field of the form; found after it: {after}"
            )
        fields = {name: data.decode("utf-8", "replace") for name, _, _, data in parts[:-1]}
        with self.lock:
            record = next((u for u in self.uploads.values() if u.fields["key"] == fields.get("key")), None)
        if record is None:
            raise self.s3_reject(
                400,
                "InvalidArgument",
                "Bucket POST must contain a field named 'key'.  If it is specified, please "
                "check the order of the fields.",
            )
        missing = [n for n in record.fields if n not in fields]
        extra = [n for n in fields if n not in record.fields]
        wrong = [n for n in record.fields if n in fields and fields[n] != record.fields[n]]
        if missing or extra or wrong or len(fields) != len(parts) - 1:
            detail = (
                "; ".join(
                    f"{label}: {', '.join(names_)}"
                    for label, names_ in (
                        ("missing fields", missing),
                        ("extra fields", extra),
                        ("fields that differ from the presigned values", wrong),
                    )
                    if names_
                )
                or "duplicate fields"
            )
            raise self.s3_reject(400, "InvalidPolicyDocument", f"Invalid according to Policy: {detail}")
        _, file_name, content_type, data = parts[-1]
        received = ReceivedUpload(record.id, names[:-1], fields, file_name, content_type, data)
        header, _, rest = data.partition(b"\n")
        with self.lock:
            self.uploads_received.append(received)
            record.uploaded = True
            record.polls_since_upload = 0
            record.columns = [c.strip().strip('"') for c in header.decode("utf-8", "replace").split(",") if c.strip()]
            record.record_volume = rest.count(b"\n") + (1 if rest and not rest.endswith(b"\n") else 0)
        return received

    def poll_upload(self, org: str, upload_id: str) -> dict[str, Any]:
        with self.lock:
            record = self.uploads.get(upload_id)
            if record is None or record.organization_uid != org:
                raise ApiError(404, f"File {upload_id} not found")
            if record.uploaded:
                record.polls_since_upload += 1
            return record.to_json(record.status_at(self.config.upload_status_steps))
