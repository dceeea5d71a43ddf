"""URL scheme -> destination class, the way fsspec picks a filesystem: callers never branch on protocol.

Plugins register under the `encoura_slate.destinations` entry-point group, name = URL scheme,
value = "package.module:DestinationClass" (a `destinations.Destination` subclass constructed as
`Class(name, config)`). A plugin wins over the built-in class for the same scheme, so a site can
replace, say, the SFTP behaviour without forking.
"""

from __future__ import annotations

import fsspec

from destinations.base import Destination, DestinationUnavailable
from destinations.config import DestinationConfig, plugin_protocols, reveal_options

_BUILTIN = {
    "sftp": "destinations.sftp:SFTPDestination",
    "ssh": "destinations.sftp:SFTPDestination",
    "file": "destinations.local:LocalDestination",
    "local": "destinations.local:LocalDestination",
    "s3": "destinations.s3:S3Destination",
    "s3a": "destinations.s3:S3Destination",
}
_GENERIC = "destinations.fsspec_dest:FsspecDestination"


def _load(target: str) -> type[Destination]:
    from importlib import import_module

    module, _, attr = target.partition(":")
    cls = getattr(import_module(module), attr)
    return cls


def destination_class(config: DestinationConfig) -> type[Destination]:
    protocol = config.protocol
    plugin = plugin_protocols().get(protocol)
    if plugin is not None:
        cls = plugin.load()
        if not (isinstance(cls, type) and issubclass(cls, Destination)):
            raise TypeError(
                f"entry point {plugin.name!r} = {plugin.value!r} in group 'encoura_slate.destinations' "
                "is not a destinations.Destination subclass"
            )
        return cls
    return _load(_BUILTIN.get(protocol, _GENERIC))


def open_destination(name: str, config: DestinationConfig, *, setting_prefix: str | None = None) -> Destination:
    """Build the destination for `config.url`; no network I/O happens until it is first used.

    `setting_prefix` names the settings in error messages when they are not
    `DESTINATIONS__<NAME>__*` (e.g. "UPLOAD_SOURCE_" for the upload flow's source).
    """
    dest = destination_class(config)(name, config)
    if setting_prefix is not None:
        dest.setting_prefix = setting_prefix
    return dest


def filesystem_for(
    config: DestinationConfig, *, name: str = "destination", setting_prefix: str | None = None
) -> tuple[fsspec.AbstractFileSystem, str]:
    """(fs, root path) with credentials and host-key checks applied; also how flows READ sources.

    `setting_prefix` names the settings in messages (e.g. "UPLOAD_SOURCE_" or
    "DESTINATIONS__SLATE__"). Each call opens a fresh filesystem (no fsspec instance cache), so
    a dropped connection is never handed out again.
    """
    prefix = setting_prefix if setting_prefix is not None else f"DESTINATIONS__{name.upper()}__"
    if config.is_sftp:
        from destinations.sftp import connect_filesystem

        return connect_filesystem(config, name=name, setting_prefix=prefix)
    options = reveal_options(config.storage_options, f"{prefix}STORAGE_OPTIONS")
    try:
        return fsspec.url_to_fs(config.url, skip_instance_cache=True, **options)
    except (ImportError, ValueError, TypeError) as exc:
        raise DestinationUnavailable(
            f"{name}: cannot open {config.protocol}:// filesystem ({type(exc).__name__}: {exc}); "
            f"check {prefix}URL and {prefix}STORAGE_OPTIONS",
            destination=name,
        ) from None


def close_filesystem(fs: fsspec.AbstractFileSystem) -> None:
    """Close what `filesystem_for` opened (SSH connections are closed now, quietly, even if dropped)."""
    from sshfs import SSHFileSystem

    if isinstance(fs, SSHFileSystem):
        from destinations.sftp import SFTPDestination

        SFTPDestination._close_fs(fs)
