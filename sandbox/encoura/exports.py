"""What an export is to the sandbox: its bytes, its listing entry and its presigned download grants."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from sandbox.encoura.config import fice_of

EXPORT_BUCKET = "encoura-datalab-export-files-sandbox"
EXPORT_STATUSES = ("NotDelivered", "Delivered")


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

    def listing_entry(self) -> dict[str, Any]:
        """Shaped like the documented example (minus `deliveries`, removed in July 2024), then overridden."""
        entry: dict[str, Any] = {
            "uid": self.uid,
            "fice": fice_of(self.organization_uid),
            "organizationUid": self.organization_uid,
            "productKey": self.product_key,
            "purchaseItems": [],
            "status": self.status,
            "listGenerated": True,
            "listPath": str(uuid.uuid5(uuid.UUID(self.uid), "listPath")),
            "quantity": max(self.content.count(b"\n") - 1, 0),
            "costInPoints": 0,
            "costInDollars": 0,
            "date": self.created_at_ms,
            "created": {
                "createdBy": {"uid": "00000000-5a4d-4b0c-8000-0000000000aa", "name": "", "type": ""},
                "createdAt": self.created_at_ms,
            },
            "isExpired": False,
            "overdueEmailSentAt": None,
            "isContinuous": False,
        }
        for key, value in (self.listing_overrides or {}).items():
            if value is None:
                entry.pop(key, None)  # None drops the key: how tests fake entries without "uid"
            else:
                entry[key] = value
        return entry


@dataclass
class PresignedDownload:
    uid: str
    bucket: str
    key: str
    expires_at: float  # time.monotonic() deadline; the Expires query value is only informative
    used: bool = False
