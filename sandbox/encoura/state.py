"""Everything the sandbox remembers, behind one lock.

The HTTP handlers run on uvicorn's event-loop thread while tests read counters and add exports
from the pytest thread, so every mutation and every consistent read happens under `lock`.
Handlers get plain results or raise ApiError/S3Error; HTTP shaping lives in the routers.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import threading
import time
import uuid
from collections import Counter
from typing import Any
from urllib.parse import quote, urlencode

from sandbox.encoura.config import (
    ACCESS_KEY_ID,
    PRODUCT_KEYS,
    SANDBOX_CREDENTIALS,
    SandboxConfig,
    org_json,
    organization_uids,
)
from sandbox.encoura.errors import ApiError, S3Error
from sandbox.encoura.exports import EXPORT_BUCKET, EXPORT_STATUSES, ExportRecord, PresignedDownload
from sandbox.encoura.faults import FaultPlan
from sandbox.encoura.samples import export_content, seed_exports
from sandbox.encoura.uploads import ReceivedUpload, UploadRecord, accept_form, new_upload
from sandbox.multipart import Part


class SandboxState:
    """All mutable sandbox state; see the module docstring for the locking rule."""

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
            self.s3_aborted: Counter[str] = Counter()  # downloads the client walked away from mid-body
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
        filename: str | None = None,
        content: bytes | None = None,
        *,
        size: int | None = None,
        seed: int = 0,
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
            content=export_content(product_key, content, size=size, seed=seed),
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
                "s3_aborted": dict(self.s3_aborted),
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
            fault = self.faults.api_fault(endpoint)
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
        token = token.strip()
        if scheme.lower() not in ("bearer", "jwt") or not token:
            raise ApiError(401, "Unauthorized")
        with self.lock:
            expires_at = self.tokens.get(token)
        if expires_at is None:
            raise ApiError(401, "Unauthorized")
        if time.monotonic() >= expires_at:
            raise ApiError(401, "The incoming token has expired")
        return token

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
        orgs = [org_json(uid) for uid in self.organizations]
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

    def refresh(self) -> dict[str, str]:
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
            entries = [e.listing_entry() for e in chosen]
            for e in chosen:
                e.status = "Delivered"
            return entries

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
            raise S3Error(
                403,
                "AccessDenied",
                "Query-string authentication requires the Signature, Expires and AWSAccessKeyId parameters",
            )
        with self.lock:
            grant = self.presigned.get(signature)
            if grant is None or grant.bucket != bucket or grant.key != key:
                raise S3Error(
                    403,
                    "SignatureDoesNotMatch",
                    "The request signature we calculated does not match the signature you "
                    "provided. Check your key and signing method.",
                )
            if time.monotonic() >= grant.expires_at:
                raise S3Error(403, "AccessDenied", "Request has expired")
            if grant.used:
                raise S3Error(403, "AccessDenied", "Access Denied")
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

    def note_s3_abort(self, uid: str) -> None:
        with self.lock:
            self.s3_aborted[uid] += 1

    def note_s3_rejection(self, code: str) -> None:
        with self.lock:
            self.s3_rejected[code] += 1

    def reject_api_headers(self, headers: dict[str, str]) -> None:
        if "authorization" in headers or "x-api-key" in headers:
            raise S3Error(
                400,
                "InvalidArgument",
                "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, Signature query "
                "string parameter or the Authorization header should be specified",
            )

    # ------------------------------------------------------------------ uploads
    def create_upload(self, org: str, body: dict[str, Any]) -> UploadRecord:
        record = new_upload(org, body)
        with self.lock:
            self.uploads[record.id] = record
        return record

    def receive_upload(self, parts: list[Part]) -> ReceivedUpload:
        key = next((data.decode("utf-8", "replace") for name, _, _, data in parts if name == "key"), None)
        with self.lock:
            record = next((u for u in self.uploads.values() if u.fields["key"] == key), None)
            received = accept_form(record, parts)
            self.uploads_received.append(received)
        return received

    def poll_upload(self, org: str, upload_id: str) -> dict[str, Any]:
        with self.lock:
            record = self.uploads.get(upload_id)
            if record is None or record.organization_uid != org:
                raise ApiError(404, f"File {upload_id} not found")
            if record.uploaded:
                record.polls_since_upload += 1
            return record.to_json(record.status_at(self.config.upload_status_steps))
