"""`SlateSFTPFileSystem`: sshfs hardened for SFTP-only servers, registered for `sftp://` and `ssh://`.

Why a subclass registered with fsspec rather than a wrapper: every way of reaching `sftp://`
(`fsspec.open`, `fsspec.filesystem("sftp")`, a chained `simplecache::sftp://...`, a Canvas or
upload source) then gets the same checks. What it changes, each for a reason:

- Host keys are always verified. sshfs defaults to `known_hosts=None` (no checking); here the
  constructor takes `known_hosts` (a file) or `host_key` (a key line, or a `SHA256:`/`MD5:`
  fingerprint) and otherwise falls back to `~/.ssh/known_hosts`; with none of them it refuses to
  connect (HostKeyRequired), whatever the URL looked like.
- A password inside a URL is refused (never echoed): URLs end up in logs and flow parameters.
- Never a shell command: Slate's server is SFTP-only. sshfs's `mv` falls back to shell `cp` and
  `checksum` runs `md5sum`; here `mv` is a rename that never replaces, and `cp`/shell raise.
- `rename_noreplace`: the plain SFTP rename first (SFTPv3 rename refuses to replace an existing
  name); `posix-rename@openssh.com` (which replaces) only where plain rename is missing, and then
  only behind a create-only guard: an exclusively created claim file for the final name.
- `close_connection()` closes channels and connection now (sshfs only closes from a finalizer,
  which prints a traceback at exit when the connection had dropped).

Only public or documented hooks are overridden: `connect` (the constructor's connection hook),
`_get_kwargs_from_urls` and the async `_put_file`/`_mv`/`_cp_file` methods fsspec documents as an
AsyncFileSystem's implementation interface.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import posixpath
import time
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import asyncssh
from fsspec.asyn import sync, sync_wrapper
from fsspec.callbacks import Callback
from fsspec.utils import infer_storage_options
from sshfs import SSHFileSystem

from destinations.errors import HostKeyError
from destinations.hostkeys import host_key_options

# sshfs's own sizes (its read/write block sizes are not public names).
WRITE_BLOCK_SIZE = 240 * 1024
# SFTP write requests outstanding at once per upload: 16 x 240 KiB keeps a 100 Mbit/s, 40 ms path
# (0.5 MB in flight) full several times over while bounding the memory one upload holds.
WRITES_IN_FLIGHT = 16
CLAIM_PREFIX = ".~claim."
CLAIM_SUFFIX = ".lock"
# A claim older than this belongs to a writer that died between creating it and removing it.
STALE_CLAIM_SECONDS = 600.0
CLAIM_WAIT_SECONDS = 30.0


class HostKeyRequired(HostKeyError, ValueError):
    """No known_hosts file and no pinned key: we never connect without verifying the host key."""


def claim_name(final_name: str) -> str:
    """The guard file for one final name: a dot-file without the final name's extension, so no Slate
    source-format mask can match it, and the same for every writer racing for that name."""
    digest = hashlib.sha256(final_name.encode("utf-8")).hexdigest()[:16]
    return f"{CLAIM_PREFIX}{digest}{CLAIM_SUFFIX}"


async def _pipelined_upload(
    remote: asyncssh.SFTPClientFile, lpath: str, block_size: int, callback: Callback | None
) -> int | None:
    """Send every block of `lpath`, then an fstat and the close, without waiting on each answer.

    Returns the size the fstat saw (None if the server did not say). Raises the first write, fstat
    or close error once all have answered. The close is always sent, also when a local read fails
    or the caller is cancelled mid-way."""
    in_flight: set[asyncio.Task[int]] = set()
    close_sent = False
    try:
        with open(lpath, "rb") as local:
            offset = 0
            while block := local.read(block_size):
                if len(in_flight) >= WRITES_IN_FLIGHT:
                    done, in_flight = await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
                    _report(done, callback)
                in_flight.add(asyncio.ensure_future(remote.write(block, offset)))
                offset += len(block)
        # Tasks start in creation order and each sends its request in its first step: the fstat and
        # the close go out after every write, in this order.
        fstat = asyncio.ensure_future(remote.stat())
        close = asyncio.ensure_future(remote.close())
        close_sent = True
        writes, in_flight = in_flight, set()
        results = await asyncio.gather(*writes, fstat, close, return_exceptions=True)
    finally:
        for task in in_flight:  # only after a failure: stop waiting, and consume errors already there
            if task.done():
                _ = task.cancelled() or task.exception()
            else:
                task.cancel()
        if not close_sent:
            with contextlib.suppress(Exception):
                await remote.close()
    for result in results:
        if isinstance(result, BaseException):
            raise result
    _report(writes, callback)
    attrs = fstat.result()
    return None if attrs.size is None else int(attrs.size)


def _report(done: set[asyncio.Task[int]], callback: Callback | None) -> None:
    """Count finished writes for the progress callback; raise the first failed write's error (after
    looking at every task, so asyncio never logs an unretrieved exception at exit)."""
    errors = [exc for task in done if (exc := task.exception()) is not None]
    if errors:
        raise errors[0]
    if callback is not None:
        for task in done:
            callback.relative_update(task.result())


class SlateSFTPFileSystem(SSHFileSystem):
    protocol = ("sftp", "ssh")

    def __init__(
        self,
        host: str,
        *,
        known_hosts: Any = None,
        host_key: str | None = None,
        **kwargs: Any,
    ) -> None:
        if known_hosts is None or isinstance(known_hosts, (str, Path)) or host_key:
            try:
                kwargs.update(host_key_options(known_hosts, host_key))
            except ValueError as exc:
                raise HostKeyRequired(f"sftp://{host}: refusing to connect: {exc}") from None
            except OSError as exc:
                raise HostKeyRequired(f"sftp://{host}: cannot read known_hosts ({exc.strerror or exc})") from None
        else:
            kwargs["known_hosts"] = known_hosts  # already an asyncssh known_hosts object (never None here)
        self.channel_pool: Any = None
        self.connection_stack: AsyncExitStack | None = None
        super().__init__(host, **kwargs)

    @staticmethod
    def _get_kwargs_from_urls(urlpath: str) -> dict[str, Any]:
        out = infer_storage_options(urlpath)
        if out.get("password"):
            raise ValueError(
                "an sftp:// URL must not contain a password; give it as a setting (e.g. __PASSWORD) instead"
            )
        out.pop("path", None)
        out.pop("protocol", None)
        return out

    # ---- connection -----------------------------------------------------------------------
    async def _open_connection(
        self,
        host: str,
        pool_type: Any,
        max_sftp_channels: int,
        connect_args: dict[str, Any],
        sftp_client_kwargs: dict[str, Any],
    ) -> tuple[asyncssh.SSHClientConnection, Any]:
        if connect_args.get("known_hosts") is None:  # belt and braces: sshfs's default disables checking
            raise HostKeyRequired(f"sftp://{host}: refusing to connect without host key verification")
        stack = AsyncExitStack()
        client = await stack.enter_async_context(asyncssh.connect(host, **connect_args))
        pool = pool_type(client, max_channels=max_sftp_channels, sftp_client_kwargs=sftp_client_kwargs)
        self.connection_stack, self.channel_pool = stack, pool
        return client, pool

    connect = sync_wrapper(_open_connection)

    def connection_lost(self) -> bool:
        try:
            return bool(self.client.is_closed())
        except Exception:
            return True

    def close_connection(self) -> None:
        """Close channels and the SSH connection now, swallowing errors of an already dead connection."""
        pool, stack = self.channel_pool, self.connection_stack

        async def close() -> None:
            if pool is not None:
                with contextlib.suppress(Exception):
                    await pool.close()
            if stack is not None:
                with contextlib.suppress(Exception):
                    await stack.aclose()

        with contextlib.suppress(Exception):
            sync(self.loop, close, timeout=10)

    # ---- no shell, never replace ----------------------------------------------------------
    async def _execute(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("SFTP-only server: no shell commands (cp, md5sum) are run")

    async def _cp_file(self, lpath: str, rpath: str, **kwargs: Any) -> None:
        raise NotImplementedError("SFTP has no server-side copy and this server runs no shell")

    async def _mv(self, lpath: str, rpath: str, **kwargs: Any) -> None:
        await self._rename_noreplace(lpath, rpath)

    async def _put_file(
        self,
        lpath: str,
        rpath: str,
        block_size: int = WRITE_BLOCK_SIZE,
        callback: Callback | None = None,
        create_parents: bool = True,
        create_only: bool = False,
        **kwargs: Any,
    ) -> int | None:
        """Upload in two round trips whatever the size: the open, then every write, an fstat and the
        close pipelined (sent without waiting on each answer). Returns the size the server reported
        after the last write, so the publish path needs no separate stat to verify the upload.

        Unlike sshfs's put (asyncssh `put`, which first stats the target to see whether it is a
        folder, then waits on the close), this costs no extra round trip; `create_parents=False`
        skips the folder creation for callers that made it already, and `create_only=True` opens
        with FXF_EXCL. The close is sent after the last write and the fstat between them; SFTP
        servers answer requests on one handle in order, so the fstat sees every write and nothing
        is sent after the close. At most WRITES_IN_FLIGHT writes are outstanding (bounded memory).
        """
        if create_parents:
            await self._makedirs(posixpath.dirname(rpath), exist_ok=True)
        if callback is not None:
            callback.set_size(os.path.getsize(lpath))
        mode = "xb" if create_only else "wb"
        async with self.channel_pool.get() as sftp:
            # block_size=0: every write() is exactly one SFTP request, sent when called (asyncssh
            # splits larger writes into requests of its own, sent later, after our fstat and close).
            remote = await sftp.open(rpath, mode, block_size=0)
            return await _pipelined_upload(remote, lpath, block_size, callback)

    async def _rename_noreplace(self, src: str, dst: str) -> None:
        async with self.channel_pool.get() as sftp:
            try:
                await sftp.rename(src, dst)  # SFTPv3 rename: refuses to replace an existing name
                return
            except asyncssh.SFTPOpUnsupported:
                pass  # plain rename missing on this server: the guarded posix-rename below
            except asyncssh.SFTPError as exc:
                if await sftp.exists(dst):
                    raise FileExistsError(dst) from None
                if isinstance(exc, asyncssh.SFTPPermissionDenied):
                    raise PermissionError(f"rename refused by the server: {exc.reason}") from None
                raise
            await self._guarded_posix_rename(sftp, src, dst)

    async def _guarded_posix_rename(self, sftp: asyncssh.SFTPClient, src: str, dst: str) -> None:
        """posix-rename replaces, so only the writer holding the final name's claim file may use it,
        and only after seeing that the final name is still free."""
        parent, _, name = dst.rpartition("/")
        claim = f"{parent}/{claim_name(name)}" if parent or dst.startswith("/") else claim_name(name)
        deadline = time.monotonic() + CLAIM_WAIT_SECONDS
        while True:
            try:
                async with sftp.open(claim, "xb"):
                    break
            except asyncssh.SFTPError:
                if await sftp.exists(dst):
                    raise FileExistsError(dst) from None
                with contextlib.suppress(asyncssh.SFTPError):
                    attrs = await sftp.stat(claim)
                    if attrs.mtime is not None and time.time() - attrs.mtime > STALE_CLAIM_SECONDS:
                        await sftp.remove(claim)  # left by a writer killed mid-rename
                        continue
                if time.monotonic() > deadline:
                    raise OSError(f"another writer holds {claim} for more than {CLAIM_WAIT_SECONDS:.0f} s") from None
                await asyncio.sleep(0.05)
        try:
            if await sftp.exists(dst):
                raise FileExistsError(dst)
            await sftp.posix_rename(src, dst)
        finally:
            with contextlib.suppress(asyncssh.SFTPError):
                await sftp.remove(claim)

    rename_noreplace = sync_wrapper(_rename_noreplace)

    async def _rmdir_empty(self, path: str) -> None:
        async with self.channel_pool.get() as sftp:
            await sftp.rmdir(path)

    # fsspec's AbstractFileSystem.rmdir is a silent no-op and sshfs does not wrap its own: remove an
    # empty folder for real (the preflight removes its probe subfolder with it).
    rmdir = sync_wrapper(_rmdir_empty)
