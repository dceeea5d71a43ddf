"""Where files land: Slate SFTP, shares, S3 or any fsspec URL, through one atomic, verified publish path.

Importing this package registers `SlateSFTPFileSystem` with fsspec for `sftp://` and `ssh://`
(clobbering sshfs's registration), so every way of reaching SFTP in this process verifies host keys.

Public API (see docs/destinations.md, "For flow authors"): `DestinationConfig`, `open_destination`, `filesystem_for`,
`close_filesystem`, `Destination`, `Receipt`, `PublishError`, `DestinationUnavailable`, `AuthenticationRefused`,
`HostKeyError`, `RootFolderMissing`, `SlateSFTPFileSystem`, the plain functions `publish`, `move_noreplace`, `sweep`,
`probe`, `check_root`, `reachable`, URL helpers `uses_sftp` / `url_protocols`, and the templates
`PathContext`, `render_path`, `validate_template`.
"""

import fsspec

from destinations.base import (
    DEFAULT_SWEEP_GRACE_SECONDS,
    AuthenticationRefused,
    Destination,
    DestinationUnavailable,
    HostKeyError,
    PublishError,
    Receipt,
)
from destinations.config import ENTRY_POINT_GROUP, DestinationConfig, url_protocols, uses_sftp
from destinations.publish import (
    ProbeReport,
    RootFolderMissing,
    check_root,
    move_noreplace,
    reachable,
    sweep,
)
from destinations.registry import close_filesystem, filesystem_for, open_destination
from destinations.sftpfs import HostKeyRequired, SlateSFTPFileSystem
from destinations.templates import PathContext, render_path, validate_template

for _protocol in SlateSFTPFileSystem.protocol:
    fsspec.register_implementation(_protocol, SlateSFTPFileSystem, clobber=True)


def probe(dest: Destination) -> ProbeReport:
    """The preflight's whole-publish-path check (see `Destination.probe`); errors come out as
    PublishError / DestinationUnavailable / HostKeyError naming the destination, secrets redacted."""
    return dest.probe()


# The publish algorithm (temp name, verify, rename never replacing) as a plain function of any
# destination: the method itself, so its signature and its guards are written once.
publish = Destination.publish


__all__ = [
    "DEFAULT_SWEEP_GRACE_SECONDS",
    "ENTRY_POINT_GROUP",
    "AuthenticationRefused",
    "Destination",
    "DestinationConfig",
    "DestinationUnavailable",
    "HostKeyError",
    "HostKeyRequired",
    "PathContext",
    "ProbeReport",
    "PublishError",
    "Receipt",
    "RootFolderMissing",
    "SlateSFTPFileSystem",
    "check_root",
    "close_filesystem",
    "filesystem_for",
    "move_noreplace",
    "open_destination",
    "probe",
    "publish",
    "reachable",
    "render_path",
    "sweep",
    "url_protocols",
    "uses_sftp",
    "validate_template",
]
