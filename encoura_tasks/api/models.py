"""Shapes of what the Encoura API returns, validated so bad responses fail clearly and early."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

from pydantic import BaseModel, ConfigDict, Field

from common.redaction import redact_url


def source_name_from_url(url: str) -> str:
    """Basename of the percent-decoded URL path, as Encoura named it (may be anything: do not use as a path)."""
    path = unquote(urlsplit(url).path)
    return re.split(r"[/\\]", path)[-1]


class Organization(BaseModel):
    model_config = ConfigDict(extra="ignore")
    uid: str
    name: str = ""
    fice: str | None = None


class ExportListing(BaseModel):
    """One entry of GET /datacenter/exports. Only uid is required; the rest is informative."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)
    uid: str = Field(min_length=1, max_length=128)
    product_key: str = Field(default="", alias="productKey")
    status: str | None = None
    quantity: int | None = None
    date: int | float | None = None
    created: dict[str, Any] | None = None

    def created_ms(self) -> float | None:
        """Creation time in epoch milliseconds, from `created.createdAt` or `date`, when present."""
        value = (self.created or {}).get("createdAt", self.date)
        return float(value) if isinstance(value, int | float) else None


@dataclass
class ListingResult:
    exports: list[ExportListing] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # entries we could not accept, described for the report
    # An earlier attempt of this listing went unanswered (timeout, dropped connection, 5xx): it may
    # have consumed exports that this answer no longer holds. See client.UncertainAttempts.
    uncertain: bool = False


class PresignedUrl:
    """A one-time download/upload URL. Its query string is a credential: str() and repr() redact it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __str__(self) -> str:
        return redact_url(self._value)

    def __repr__(self) -> str:
        return f"PresignedUrl({redact_url(self._value)!r})"


@dataclass(frozen=True)
class UploadTicket:
    """Answer of POST /files/upload: where and how to send the file."""

    id: str
    url: PresignedUrl
    fields: dict[str, Any]


@dataclass(frozen=True)
class DownloadedFile:
    source_name: str  # basename from the URL path, percent-decoded, unsanitised (for the report only)
    size: int
    sha256: str
