"""What the sandbox pretends to be (credentials) and which faults it injects (SandboxConfig).

Faults are plain data so that a test, the reliability suite and a subprocess (through the admin
API) all drive them the same way, and so that a fixed `seed` replays the same sequence of faults.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

# Obviously fake on purpose: these must never be mistaken for (or replaced by) real credentials.
SANDBOX_CREDENTIALS: Mapping[str, str] = MappingProxyType(
    {
        "api_key": "sandbox-api-key-0000",
        "username": "sandbox@example.edu",
        "password": "sandbox-password",
        "organization_uid": "00000000-5a4d-4b0c-8000-000000000001",
    }
)

# Names of the /v1 endpoints, as used in `state.counters`, `faults_injected` and `fail_endpoints`.
# The Data Lab product keys the emulator serves (Encoura's API docs). Kept here rather than imported
# from the client, so a client-side typo in the list cannot be hidden by the emulator agreeing with it.
PRODUCT_KEYS = (
    "aos", "prospect", "affinity", "ematch", "score-reporter", "declared", "inquiry", "enrollment-marketing",
)
API_ENDPOINTS = ("login", "refresh_token", "list_exports", "download_url", "upload_create", "file_status")

ListingMode = Literal["normal", "malformed_json", "html_200", "non_list", "empty"]

# Names of the fault fields: everything `configure()` may change while the server runs.
FAULT_FIELDS = (
    "token_ttl_seconds",
    "url_ttl_seconds",
    "fail_rate",
    "fail_statuses",
    "fail_endpoints",
    "fail_after_acting",
    "retry_after_seconds",
    "truncate_rate",
    "slow_rate",
    "slow_seconds",
    "s3_chunk_delay_seconds",
    "organizations",
    "seed",
    "listing_mode",
    "bad_listing_consumes",
    "quote_session_token",
    "upload_status_steps",
    "require_content_type",
)


ACCESS_KEY_ID = "AKIASANDBOXFAKE00000"
MAX_ORGANIZATIONS = 20


def organization_uids(count: int = MAX_ORGANIZATIONS) -> list[str]:
    """Org uids the sandbox user belongs to; the first is the one in SANDBOX_CREDENTIALS."""
    first = SANDBOX_CREDENTIALS["organization_uid"]
    return [first] + [str(uuid.uuid5(uuid.UUID(first), f"org-{n}")) for n in range(2, count + 1)]


def fice_of(org_uid: str) -> str:
    known = organization_uids()
    return f"SANDBOX{known.index(org_uid) + 1}" if org_uid in known else "SANDBOX"


def org_json(org_uid: str) -> dict[str, str]:
    """An entry of `user.organizations` in the login answer."""
    fice = fice_of(org_uid)
    suffix = "" if fice == "SANDBOX1" else f" Campus {fice.removeprefix('SANDBOX')}"
    return {"uid": org_uid, "name": f"Sandbox University{suffix} (fake)", "fice": fice, "stateCode": "MO"}


class SandboxConfig(BaseModel):
    """Server behaviour; every field has a default so `SandboxConfig()` is a well-behaved API."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(default=0, ge=0, le=65535)
    token_ttl_seconds: float = Field(default=1200, ge=0)
    url_ttl_seconds: float = Field(default=60, ge=0)
    # Fraction of /v1 calls answered with a status from fail_statuses (S3 is never hit by this).
    fail_rate: float = Field(default=0.0, ge=0, le=1)
    fail_statuses: tuple[int, ...] = (500, 502, 503, 429)
    # Endpoints fail_rate applies to (names from API_ENDPOINTS); empty means every /v1 endpoint.
    fail_endpoints: tuple[str, ...] = ()
    # Answer a drawn fault only after the endpoint did its work (today: creating an upload record), as
    # a backend that acted behind a gateway that then timed out does. Catches blind POST retries.
    fail_after_acting: bool = False
    retry_after_seconds: int = Field(default=1, ge=0)
    # Fraction of S3 GETs that announce the full Content-Length and then close the connection halfway.
    truncate_rate: float = Field(default=0.0, ge=0, le=1)
    # Fraction of /v1 and S3 calls delayed by slow_seconds before answering.
    slow_rate: float = Field(default=0.0, ge=0, le=1)
    slow_seconds: float = Field(default=0.0, ge=0)
    # Pause between 64 KiB chunks of an S3 body: gives kill tests a window in the middle of a download.
    s3_chunk_delay_seconds: float = Field(default=0.0, ge=0)
    organizations: int = Field(default=1, ge=1, le=MAX_ORGANIZATIONS)
    seed: int = 0
    listing_mode: ListingMode = "normal"
    # Whether a garbage listing (listing_mode != normal/empty) still marks the exports Delivered, as a
    # server that consumed them and then broke while answering would.
    bad_listing_consumes: bool = False
    # Send sessionToken wrapped in double quotes, as a C# sample reports the real API sometimes does.
    quote_session_token: bool = False
    upload_status_steps: int = Field(default=1, ge=1)
    require_content_type: bool = False

    @field_validator("fail_statuses")
    @classmethod
    def _statuses_are_errors(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if not value or any(not 400 <= s <= 599 for s in value):
            raise ValueError("fail_statuses must be a non-empty list of HTTP error statuses (400-599)")
        return value

    @field_validator("fail_endpoints")
    @classmethod
    def _known_endpoints(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [e for e in value if e not in API_ENDPOINTS]
        if unknown:
            raise ValueError(f"unknown endpoint(s) {unknown}; known: {', '.join(API_ENDPOINTS)}")
        return value

    def updated(self, **changes: Any) -> SandboxConfig:
        """A validated copy; unknown or non-fault fields are refused so a typo never silently does nothing."""
        unknown = sorted(set(changes) - set(FAULT_FIELDS))
        if unknown:
            raise ValueError(f"not a sandbox fault field: {', '.join(unknown)} (known: {', '.join(FAULT_FIELDS)})")
        return SandboxConfig.model_validate({**self.model_dump(), **changes})
