"""Opening filesystems with credentials and host-key checks applied: how destinations connect and
how flows READ sources (UPLOAD_SOURCE, Canvas inputs), so both get the same checks and messages."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote, urlsplit

import asyncssh
import fsspec
from fsspec.asyn import get_loop, sync

from common.secrets import reveal
from destinations.config import DestinationConfig, reveal_options, sftp_segment
from destinations.errors import AuthenticationRefused, DestinationUnavailable, HostKeyError
from destinations.hostkeys import fetch_server_fingerprint, host_key_options
from destinations.sftpfs import HostKeyRequired, SlateSFTPFileSystem

_RESERVED_OPTIONS = ("known_hosts", "password", "client_keys", "passphrase", "host", "port", "username")
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    asyncssh.DisconnectError,
    asyncssh.sftp.SFTPConnectionLost,
    asyncssh.sftp.SFTPNoConnection,
    ConnectionError,
    TimeoutError,
    EOFError,
)


def _host_port(url: str) -> tuple[str, int, str | None]:
    parts = urlsplit(sftp_segment(url) or url)
    username = unquote(parts.username) if parts.username else None
    return parts.hostname or "", parts.port or 22, username


def connect_options(config: DestinationConfig, *, name: str, setting_prefix: str) -> dict[str, Any]:
    """asyncssh.connect options with credentials and host-key checking applied (secrets revealed here)."""
    host, port, username = _host_port(config.url)
    revealed = reveal_options(config.storage_options, f"{setting_prefix}STORAGE_OPTIONS")
    options: dict[str, Any] = {key: value for key, value in revealed.items() if key not in _RESERVED_OPTIONS}
    password = reveal(config.password, setting=f"{setting_prefix}PASSWORD")
    client_keys: list[asyncssh.SSHKey] | None = None
    if config.client_key is not None:
        passphrase = reveal(config.passphrase, setting=f"{setting_prefix}PASSPHRASE")
        try:
            client_keys = [asyncssh.read_private_key(str(config.client_key), passphrase)]
        except asyncssh.KeyEncryptionError:
            raise DestinationUnavailable(
                f"{name}: cannot decrypt {setting_prefix}CLIENT_KEY {str(config.client_key)!r}: "
                f"wrong or missing {setting_prefix}PASSPHRASE",
                destination=name,
            ) from None
        except (asyncssh.KeyImportError, OSError) as exc:
            raise DestinationUnavailable(
                f"{name}: {setting_prefix}CLIENT_KEY {str(config.client_key)!r} is not a usable private key "
                f"({type(exc).__name__})",
                destination=name,
            ) from None
    try:
        # Parsed here so a broken known_hosts file is reported with the setting's name; the
        # filesystem itself re-derives the same options from the path / pin it is given.
        host_key_options(str(config.known_hosts) if config.known_hosts else None, config.host_key)
    except (ValueError, OSError) as exc:
        raise DestinationUnavailable(
            f"{name}: cannot load host keys ({exc}); set {setting_prefix}KNOWN_HOSTS or {setting_prefix}HOST_KEY",
            destination=name,
        ) from None
    if config.host_key:
        options["host_key"] = config.host_key
    else:
        options["known_hosts"] = str(config.known_hosts) if config.known_hosts else None
    options.update(
        host=host,
        port=port,
        keepalive_interval=config.keepalive_interval or None,
        keepalive_count_max=3,
        connect_timeout=config.connect_timeout,
        login_timeout=config.connect_timeout,
    )
    if username:
        options["username"] = username
    if password is not None:
        options["password"] = password
    if client_keys is not None:
        options["client_keys"] = client_keys
    elif password is not None:
        options["client_keys"] = None  # password only: do not offer whatever keys ~/.ssh holds
    return options


def _quiet_lost_connection_tasks(loop: Any) -> None:
    """Drop asyncio's "Task exception was never retrieved" reports for a lost SSH connection.

    When a connection drops mid-upload, asyncssh's parallel write tasks all fail with
    ConnectionLost; the first is raised to us (and handled: reconnect and retry), the others are
    never awaited and asyncio prints each with a traceback when collected. Those are noise; every
    other report still goes to the previous handler.
    """
    if getattr(loop, "_encoura_quiet_ssh", False):
        return
    previous = loop.get_exception_handler()

    def handler(loop: Any, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        if isinstance(exc, CONNECTION_ERRORS) and "never retrieved" in str(context.get("message", "")):
            return
        if previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    loop.set_exception_handler(handler)
    loop._encoura_quiet_ssh = True


def connect_filesystem(
    config: DestinationConfig, *, name: str, setting_prefix: str
) -> tuple[fsspec.AbstractFileSystem, str]:
    """Open one sshfs filesystem (one SSH connection); map every failure to a clear error."""
    options = connect_options(config, name=name, setting_prefix=setting_prefix)
    _quiet_lost_connection_tasks(get_loop())
    host, port = options["host"], options["port"]
    where = f"{host}:{port}"
    options.pop("host")
    options["skip_instance_cache"] = True
    protocol = urlsplit(sftp_segment(config.url) or config.url).scheme.lower()
    # Chained URLs (simplecache::sftp://...): fsspec hands kwargs keyed by protocol to that segment.
    kwargs = options if "::" not in config.url else {protocol: options, "skip_instance_cache": True}
    try:
        fs, root = fsspec.url_to_fs(config.url, **kwargs)
    except HostKeyRequired as exc:
        raise HostKeyError(
            f"{name}: {exc}; set {setting_prefix}KNOWN_HOSTS or {setting_prefix}HOST_KEY", destination=name
        ) from None
    except asyncssh.HostKeyNotVerifiable:
        seen = sync(get_loop(), fetch_server_fingerprint, host, port, wait=config.connect_timeout)
        raise HostKeyError(
            f"{name}: host key of {where} is not trusted: the server presented "
            f"{seen or 'a key whose fingerprint could not be read'}. Compare it with the fingerprint the "
            f"server's operator publishes; if it matches, add it to {setting_prefix}KNOWN_HOSTS or "
            f"{setting_prefix}HOST_KEY, otherwise do not connect",
            destination=name,
        ) from None
    except (PermissionError, asyncssh.PermissionDenied):
        raise AuthenticationRefused(
            f"{name}: authentication failed for user {options.get('username', '(default)')!r} at {where}; "
            f"check {setting_prefix}PASSWORD / {setting_prefix}CLIENT_KEY",
            destination=name,
        ) from None
    except (OSError, asyncssh.Error, fsspec.asyn.FSTimeoutError) as exc:
        reason = getattr(exc, "reason", None) or getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        raise DestinationUnavailable(f"{name}: cannot connect to {where} ({reason})", destination=name) from None
    return fs, root



def filesystem_for(
    config: DestinationConfig, *, name: str = "destination", setting_prefix: str | None = None
) -> tuple[fsspec.AbstractFileSystem, str]:
    """(fs, root path) with credentials and host-key checks applied; also how flows READ sources.

    `setting_prefix` names the settings in messages (e.g. "UPLOAD_SOURCE_" or
    "DESTINATIONS__SLATE__"). Each call opens a fresh filesystem (no fsspec instance cache), so
    a dropped connection is never handed out again.
    """
    prefix = setting_prefix if setting_prefix is not None else f"DESTINATIONS__{name.upper()}__"
    if config.uses_sftp:
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


def close_filesystem(fs: fsspec.AbstractFileSystem | None) -> None:
    """Close an SSH connection now, quietly, even if it had dropped; other filesystems need nothing."""
    if isinstance(fs, SlateSFTPFileSystem):
        fs.close_connection()
