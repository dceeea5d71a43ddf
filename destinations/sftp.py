"""Slate-style SFTP destinations (`sftp://user@ft.technolutions.net/incoming/Encoura`) via sshfs/asyncssh.

Rules this module keeps, each for a reason:
- Host keys are always verified (sshfs defaults to `known_hosts=None`, i.e. no checking); an
  unknown or changed key raises HostKeyError naming the host and the SHA256 fingerprint it saw.
- Never a shell command: Slate's server is SFTP-only, so sshfs's `mv` (shell `cp` fallback) and
  `checksum` (`md5sum`) are never called; rename goes through an asyncssh SFTP client.
- Rename: `posix-rename@openssh.com` when the server offers it, after checking that the final name
  does not exist (posix-rename itself would replace it). Without the extension, the plain SFTP
  rename is used: SFTPv3 rename refuses to replace an existing file, which is exactly the
  no-overwrite behaviour we want, and it is atomic on OpenSSH-based servers (link + unlink).
- One SSH connection per destination per run, shared by all threads (sshfs multiplexes SFTP
  channels over it), keepalives on. If the connection drops, the file being published is retried
  once on a fresh connection (`skip_instance_cache`, since fsspec caches instances by arguments).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

import asyncssh
import fsspec
from fsspec.asyn import get_loop, sync
from fsspec.callbacks import Callback
from sshfs.utils import WRITE_BLOCK_SIZE, as_progress_handler

from common.secrets import reveal
from destinations.base import DestinationUnavailable, HostKeyError, PublishError
from destinations.config import DestinationConfig, reveal_options
from destinations.fsspec_dest import FsspecDestination
from destinations.hostkeys import fetch_server_fingerprint, known_hosts_option

T = TypeVar("T")

_RESERVED_OPTIONS = ("known_hosts", "password", "client_keys", "passphrase", "host", "port", "username")
_CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    asyncssh.DisconnectError,
    asyncssh.sftp.SFTPConnectionLost,
    asyncssh.sftp.SFTPNoConnection,
    ConnectionError,
    TimeoutError,
    EOFError,
)


def _host_port(url: str) -> tuple[str, int, str | None]:
    parts = urlsplit(url)
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
        known_hosts = known_hosts_option(str(config.known_hosts) if config.known_hosts else None, config.host_key)
    except (ValueError, OSError) as exc:
        raise DestinationUnavailable(
            f"{name}: cannot load host keys ({exc}); set {setting_prefix}KNOWN_HOSTS or {setting_prefix}HOST_KEY",
            destination=name,
        ) from None
    options.update(
        host=host,
        port=port,
        known_hosts=known_hosts,
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
        if isinstance(exc, _CONNECTION_ERRORS) and "never retrieved" in str(context.get("message", "")):
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
    try:
        fs, root = fsspec.url_to_fs(config.url, skip_instance_cache=True, **options)
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
        raise DestinationUnavailable(
            f"{name}: authentication failed for user {options.get('username', '(default)')!r} at {where}; "
            f"check {setting_prefix}PASSWORD / {setting_prefix}CLIENT_KEY",
            destination=name,
        ) from None
    except (OSError, asyncssh.Error, fsspec.asyn.FSTimeoutError) as exc:
        reason = getattr(exc, "reason", None) or getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        raise DestinationUnavailable(f"{name}: cannot connect to {where} ({reason})", destination=name) from None
    return fs, root


class SFTPDestination(FsspecDestination):
    def __init__(self, name: str, config: DestinationConfig) -> None:
        super().__init__(name, config)
        self._generation = 0
        self._known_dirs: set[tuple[int, str]] = set()
        self._sftp: asyncssh.SFTPClient | None = None
        self._sftp_fs: fsspec.AbstractFileSystem | None = None

    def _connect(self) -> tuple[fsspec.AbstractFileSystem, str]:
        return connect_filesystem(self.config, name=self.name, setting_prefix=self.setting_prefix)

    # ---- connection handling ----------------------------------------------------------------
    def _connection_lost(self) -> bool:
        fs = self._fs
        if fs is None:
            return False
        try:
            return bool(fs.client.is_closed())
        except Exception:
            return True

    def _with_reconnect(self, op: Callable[[], T]) -> T:
        generation = self._generation
        try:
            return op()
        except PublishError:
            raise
        except Exception as exc:
            if not (isinstance(exc, _CONNECTION_ERRORS) or self._connection_lost()):
                raise
            self._reconnect(generation)
        from destinations.publish import retry_cleanup

        result = op()  # once, on a fresh connection; a second failure is reported as is
        retry_cleanup(self)  # the first attempt's temp, stranded by the drop
        return result

    def _reconnect(self, generation: int) -> None:
        with self._lock:
            if self._generation != generation:
                return  # another thread already replaced the connection
            old, self._fs, self._sftp, self._sftp_fs = self._fs, None, None, None
            self._generation += 1
        self._close_fs(old)

    @staticmethod
    def _close_fs(fs: fsspec.AbstractFileSystem | None) -> None:
        """Close channels and connection now, swallowing errors of an already dead connection.

        sshfs only closes from a weakref finalizer, which prints a traceback at interpreter exit
        when the connection was dropped; closing here (sshfs's own pool and exit stack) avoids that.
        """
        if fs is None:
            return

        async def close() -> None:
            with contextlib.suppress(Exception):
                await fs._pool.close()
            with contextlib.suppress(Exception):
                await fs._stack.aclose()

        with contextlib.suppress(Exception):
            sync(fs.loop, close, timeout=10)

    def close(self) -> None:
        with self._lock:
            old, self._fs, self._sftp, self._sftp_fs = self._fs, None, None, None
        self._close_fs(old)

    def classify(self, exc: BaseException) -> type[PublishError]:
        if isinstance(exc, _CONNECTION_ERRORS):
            return DestinationUnavailable
        return PublishError

    def describe_exception(self, exc: BaseException) -> str:
        if isinstance(exc, asyncssh.SFTPError):
            return f"{type(exc).__name__}: {exc.reason}"
        return super().describe_exception(exc)

    # ---- primitives -------------------------------------------------------------------------
    def _sftp_client(self) -> tuple[asyncssh.SFTPClient, fsspec.AbstractFileSystem]:
        fs = self.fs
        with self._lock:
            if self._sftp is None or self._sftp_fs is not fs:
                self._sftp = sync(fs.loop, fs.client.start_sftp_client)
                self._sftp_fs = fs
            return self._sftp, fs

    def _rename_noreplace(self, src: str, dst: str) -> None:
        sftp, fs = self._sftp_client()
        sync(fs.loop, _rename_noreplace, sftp, src, dst)

    def _makedirs(self, path: str) -> None:
        """Remembered per connection: asyncssh's makedirs costs a round trip or two per path
        component, and the publish path asks for the same folder for every file."""
        key = (self._generation, path)
        if key in self._known_dirs:
            return
        self.fs.makedirs(path, exist_ok=True)
        self._known_dirs.add(key)

    def _put(self, local_path: Path, path: str, *, callback: Callback | None, create_only: bool) -> None:
        """Upload on one of sshfs's pooled SFTP channels (several files in flight share the
        connection); `fs.put_file` would first re-run makedirs on the parent, which the publish path
        has just done. `create_only` needs no extra round trip: temp names are unique per attempt."""
        fs = self.fs

        async def put() -> None:
            async with fs._pool.get() as channel:
                await channel.put(
                    str(local_path),
                    path,
                    block_size=WRITE_BLOCK_SIZE,
                    progress_handler=as_progress_handler(callback),
                )

        sync(fs.loop, put)


async def _rename_noreplace(sftp: asyncssh.SFTPClient, src: str, dst: str) -> None:
    if await sftp.exists(dst):
        raise FileExistsError(dst)
    try:
        await sftp.posix_rename(src, dst)
        return
    except asyncssh.SFTPOpUnsupported:
        pass  # no posix-rename@openssh.com: plain SFTP rename refuses to overwrite, which is what we want
    try:
        await sftp.rename(src, dst)
    except asyncssh.SFTPError:
        if await sftp.exists(dst):
            raise FileExistsError(dst) from None
        raise
