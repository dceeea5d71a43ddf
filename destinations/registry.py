"""URL scheme -> destination class, the way fsspec picks a filesystem: callers never branch on protocol.

Plugins register under the `encoura_slate.destinations` entry-point group, name = URL scheme,
value = "package.module:DestinationClass" (a `destinations.Destination` subclass constructed as
`Class(name, config)`). A plugin wins over the built-in class for the same scheme, so a site can
replace, say, the SFTP behaviour without forking.
"""

from __future__ import annotations

from destinations.base import Destination
from destinations.config import DestinationConfig, plugin_protocols
from destinations.connect import close_filesystem, filesystem_for

__all__ = ["close_filesystem", "destination_class", "filesystem_for", "open_destination"]

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
