"""The errors and the receipt every destination speaks, in a module that imports nothing of ours
but common, so every other module of the package can use them without an import cycle."""

from __future__ import annotations

from dataclasses import dataclass

from common.redaction import redact_text


@dataclass(frozen=True)
class Receipt:
    destination: str
    final_path: str  # redacted full location, for reports
    relative_path: str
    size: int
    sha256: str | None  # verified at the destination (read back), else None
    checksum: str | None  # e.g. "md5:<hex>" from a single-part S3 ETag
    already_present: bool


class PublishError(Exception):
    """One file could not be delivered to one destination; the destination stays usable."""

    def __init__(self, message: str, *, destination: str = "", relative_path: str = "") -> None:
        self.destination = destination
        self.relative_path = relative_path
        super().__init__(redact_text(message))

    def __reduce__(self):  # picklable across Prefect task boundaries
        return (type(self), (self.args[0],), {"destination": self.destination, "relative_path": self.relative_path})


class DestinationUnavailable(PublishError):
    """Nothing can be delivered there right now: down, refused, bad credentials, host key mismatch."""


class AuthenticationRefused(DestinationUnavailable):
    """The server refused the user name, password or key: the settings' to fix (exit 2), never worth a retry."""


class HostKeyError(DestinationUnavailable):
    """The server's host key is unknown or differs from the pinned/known one (message has its fingerprint)."""
