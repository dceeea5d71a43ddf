"""Where files land: Slate SFTP, shares, S3 or any fsspec URL, through one atomic, verified publish path.

Public API (see README, "Destinations"): `DestinationConfig`, `open_destination`, `filesystem_for`, `close_filesystem`,
`Destination`, `Receipt`, `PublishError`, `DestinationUnavailable`, `HostKeyError`,
`PathContext`, `render_path`, `validate_template`.
"""

from destinations.base import (
    DEFAULT_SWEEP_GRACE_SECONDS,
    Destination,
    DestinationUnavailable,
    HostKeyError,
    PublishError,
    Receipt,
)
from destinations.config import ENTRY_POINT_GROUP, DestinationConfig
from destinations.registry import close_filesystem, filesystem_for, open_destination
from destinations.templates import PathContext, render_path, validate_template

__all__ = [
    "DEFAULT_SWEEP_GRACE_SECONDS",
    "ENTRY_POINT_GROUP",
    "Destination",
    "DestinationConfig",
    "DestinationUnavailable",
    "HostKeyError",
    "PathContext",
    "PublishError",
    "Receipt",
    "close_filesystem",
    "filesystem_for",
    "open_destination",
    "render_path",
    "validate_template",
]
