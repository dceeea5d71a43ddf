"""Slate-style SFTP destinations (`sftp://user@ft.technolutions.net/incoming/Encoura`) over SlateSFTPFileSystem.

Rules this module keeps, each for a reason:
- Host keys are always verified (by `destinations.sftpfs.SlateSFTPFileSystem`); an unknown or
  changed key raises HostKeyError naming the host and the SHA256 and MD5 fingerprints it saw.
- Never a shell command: Slate's server is SFTP-only (see sftpfs).
- Rename never replaces: the plain SFTP rename first, posix-rename only behind a create-only guard
  where plain rename is missing (see sftpfs).
- One SSH connection per destination per run, shared by all threads (sshfs multiplexes SFTP
  channels over it), keepalives on. If the connection drops, the file being published is retried
  once on a fresh connection (`skip_instance_cache`, since fsspec caches instances by arguments).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import asyncssh
import fsspec
from fsspec.callbacks import Callback

from destinations.config import DestinationConfig
from destinations.connect import CONNECTION_ERRORS, close_filesystem, connect_filesystem
from destinations.errors import DestinationUnavailable, PublishError
from destinations.fsspec_dest import FsspecDestination
from destinations.publish import retry_cleanup
from destinations.sftpfs import SlateSFTPFileSystem

T = TypeVar("T")

class SFTPDestination(FsspecDestination):
    def __init__(self, name: str, config: DestinationConfig) -> None:
        super().__init__(name, config)
        self._generation = 0
        self._known_dirs: set[tuple[int, str]] = set()

    def _connect(self) -> tuple[fsspec.AbstractFileSystem, str]:
        return connect_filesystem(self.config, name=self.name, setting_prefix=self.setting_prefix)

    # ---- connection handling ----------------------------------------------------------------
    def _connection_lost(self) -> bool:
        fs = self._fs
        if fs is None:
            return False
        return fs.connection_lost() if isinstance(fs, SlateSFTPFileSystem) else False

    def _with_reconnect(self, op: Callable[[], T]) -> T:
        generation = self._generation
        try:
            return op()
        except PublishError:
            raise
        except Exception as exc:
            if not (isinstance(exc, CONNECTION_ERRORS) or self._connection_lost()):
                raise
            self._reconnect(generation)
        result = op()  # once, on a fresh connection; a second failure is reported as is
        retry_cleanup(self)  # the first attempt's temp, stranded by the drop
        return result

    def _reconnect(self, generation: int) -> None:
        with self._lock:
            if self._generation != generation:
                return  # another thread already replaced the connection
            old, self._fs = self._fs, None
            self._generation += 1
            self.reset_root_check()
        close_filesystem(old)

    def close(self) -> None:
        with self._lock:
            old, self._fs = self._fs, None
        close_filesystem(old)

    def classify(self, exc: BaseException) -> type[PublishError]:
        if isinstance(exc, CONNECTION_ERRORS):
            return DestinationUnavailable
        return PublishError

    def describe_exception(self, exc: BaseException) -> str:
        if isinstance(exc, asyncssh.SFTPError):
            return f"{type(exc).__name__}: {exc.reason}"
        return super().describe_exception(exc)

    # ---- primitives -------------------------------------------------------------------------
    def sftp_fs(self) -> SlateSFTPFileSystem:
        fs = self.fs
        if not isinstance(fs, SlateSFTPFileSystem):  # a chained URL: the outer layer is not ours
            raise NotImplementedError("this SFTP destination is reached through a chained URL")
        return fs

    def rename_noreplace(self, src: str, dst: str) -> None:
        self.sftp_fs().rename_noreplace(src, dst)

    def server_host_key(self) -> dict[str, str] | None:
        from destinations.hostkeys import describe_key

        key = self.sftp_fs().client.get_server_host_key()
        return describe_key(key) if key is not None else None

    def makedirs(self, path: str) -> None:
        """Remembered per connection: asyncssh's makedirs costs a round trip or two per path
        component, and the publish path asks for the same folder for every file."""
        key = (self._generation, path)
        if key in self._known_dirs:
            return
        self.fs.makedirs(path, exist_ok=True)
        self._known_dirs.add(key)

    def put(self, local_path: Path, path: str, *, callback: Callback | None, create_only: bool) -> int | None:
        """Upload on one of the pooled SFTP channels (several files in flight share the connection),
        without re-making the parent folder, which the publish path has just done. `create_only` costs
        no extra round trip (FXF_EXCL on the open); the size comes from an fstat pipelined with the
        writes and the close (see SlateSFTPFileSystem._put_file), so verifying costs none either."""
        size: int | None = self.sftp_fs().put_file(
            str(local_path), path, callback=callback, create_parents=False, create_only=create_only
        )
        return size

