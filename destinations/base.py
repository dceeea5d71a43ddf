"""The one interface every flow publishes through, and the errors it raises.

Protocol classes only supply storage primitives (put, size, rename without overwrite, remove,
mkdirs, list); the publish sequence itself lives once in `destinations.publish`, the way rclone
keeps copy/verify/rename in its operations layer and each backend only speaks its protocol.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Iterable
from pathlib import Path
from typing import ClassVar, TypeVar, Unpack

from fsspec.callbacks import Callback

from common.host_limits import host_slot
from common.redaction import redact_url
from destinations import publish as operations
from destinations.config import DEFAULT_SWEEP_GRACE_SECONDS, DestinationConfig
from destinations.errors import AuthenticationRefused, DestinationUnavailable, HostKeyError, PublishError, Receipt
from destinations.publish import PublishOptions
from destinations.templates import check_relative_path

T = TypeVar("T")

__all__ = [
    "DEFAULT_SWEEP_GRACE_SECONDS",
    "AuthenticationRefused",
    "Destination",
    "DestinationUnavailable",
    "HostKeyError",
    "PublishError",
    "Receipt",
]


class Destination:
    """Base class: one instance per configured destination per run; `publish` is thread-safe.

    Subclasses (and plugins registered under the `encoura_slate.destinations` entry-point group)
    are constructed as `Class(name, config)` and implement the primitives (put, size_of,
    rename_noreplace, remove, makedirs, ...) on full storage paths. They must not open connections
    in `__init__`: connecting lazily keeps one unreachable destination from stopping a run before the others are tried.
    """

    # True when the storage makes a single upload appear atomically (S3): no temp + rename needed.
    atomic_put: ClassVar[bool] = False
    # True when reading a stored file back is cheap (local disk): sha256 is verified on every publish.
    cheap_readback: ClassVar[bool] = False

    def __init__(self, name: str, config: DestinationConfig) -> None:
        self.name = name
        self.config = config
        # Setting names used in messages; open_destination may point them elsewhere (UPLOAD_SOURCE_).
        self.setting_prefix = f"DESTINATIONS__{name.upper()}__"
        self._slots = threading.BoundedSemaphore(config.max_concurrency)
        # Temp files a failed attempt could not remove (list.append/pop are atomic under the GIL).
        self.pending_cleanup: list[str] = []
        # Set once the root folder was seen to exist on the current connection (publish checks it once).
        self.root_checked = False

    # ---- public API -------------------------------------------------------------------------
    def publish(
        self, local_path: Path, relative_path: str, *, sha256: str, size: int, **options: Unpack[PublishOptions]
    ) -> Receipt:
        """Deliver `local_path` under `relative_path` exactly once: temp name, verify, rename.

        Options (destinations.publish.PublishOptions): `callback` (fsspec progress), `first_attempt`
        and `before_rename`, below.

        `before_rename(temp, final)` (root-relative paths; temp None for a create-only put) runs
        right before the final name can appear: the caller records its publish intent there.

        `first_attempt=True` (the ledger knows this file was never published here) skips the stat of
        the final name before uploading: one SFTP round trip less per file. It is safe either way,
        since the rename never replaces and a taken name is then compared as usual.
        """
        self._check_relative(relative_path)
        # A cap per SFTP host across all runs (a Prefect global concurrency limit, when one exists),
        # then this run's own cap per destination.
        with host_slot(self.config.url), self._slots:
            return self._guard(
                relative_path,
                lambda: operations.publish_file(
                    self, Path(local_path), relative_path, sha256=sha256, size=size, **options
                ),
            )

    def settle_intent(
        self, local_path: Path | None, temp_path: str | None, relative_path: str, *, sha256: str, size: int
    ) -> tuple[str, Receipt | None]:
        """Finish a recorded publish intent: ("renamed"|"present"|"taken"|"absent", receipt). See
        destinations.publish.settle_intent."""
        self._check_relative(relative_path)
        if temp_path is not None:
            self._check_relative(temp_path)
        with host_slot(self.config.url), self._slots:
            return self._guard(
                relative_path,
                lambda: operations.settle_intent(self, local_path, temp_path, relative_path, sha256=sha256, size=size),
            )

    def exists(self, relative_path: str) -> int | None:
        self._check_relative(relative_path)
        return self._guard(relative_path, lambda: self.size_of(self.full_path(relative_path)))

    def sweep(self, *, older_than: float | None = None, keep: Collection[str] = ()) -> list[str]:
        """Remove temp files left by killed runs (only our own temp names, older than `older_than` s,
        never those in `keep`: temps an open publish intent owns).

        Default: the destination's `sweep_grace_seconds` (DESTINATIONS__<NAME>__SWEEP_GRACE_SECONDS).
        """
        if older_than is None:
            older_than = self.config.sweep_grace_seconds
        return self._guard("", lambda: operations.sweep_temps(self, older_than=older_than, keep=keep))

    def probe(self) -> operations.ProbeReport:
        """The whole publish path on a probe file (see `destinations.probe`); raises on the first problem."""
        return self._guard("", lambda: operations.probe(self))

    def describe(self) -> str:
        return redact_url(self.config.url)

    def connect_check(self) -> None:
        """Connect now (destinations connect lazily); raises DestinationUnavailable when that fails."""
        self._guard("", lambda: self.root)

    def reset_root_check(self) -> None:
        self.root_checked = False

    def root_display(self) -> str:
        return self.root or "/"

    def host_display(self) -> str:
        """Where the root lives, for messages: the host for network URLs, else the storage kind."""
        from urllib.parse import urlsplit

        host = urlsplit(self.config.url.split("::")[-1]).hostname
        return host or f"this machine ({self.config.protocol}://)"

    def server_host_key(self) -> dict[str, str] | None:
        """The SSH host key the server presented (key line, SHA256, MD5); None for non-SSH storage."""
        return None

    def close(self) -> None:
        """Release connections; safe to call twice."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} {self.describe()}>"

    def __enter__(self) -> Destination:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- helpers shared by subclasses --------------------------------------------------------
    @property
    def root(self) -> str:
        raise NotImplementedError

    def full_path(self, relative_path: str) -> str:
        root = self.root
        if not root:
            return relative_path
        return f"{root.rstrip('/')}/{relative_path}"

    def relative_to_root(self, full_path: str) -> str:
        root = self.root.rstrip("/")
        if root and full_path.startswith(root + "/"):
            return full_path[len(root) + 1 :]
        return full_path.lstrip("/") if not root else full_path

    def location(self, relative_path: str) -> str:
        return f"{self.describe().rstrip('/')}/{relative_path}"

    def sweep_depth(self) -> int:
        """How deep temp files can be: the template's folder depth (keeps the walk bounded)."""
        return self.config.path_template.count("/") + 1

    def classify(self, exc: BaseException) -> type[PublishError]:
        """Which error class a raw exception becomes; connection-level failures make the destination unavailable."""
        if isinstance(exc, (ConnectionError, TimeoutError)) and not isinstance(exc, (PermissionError, FileExistsError)):
            return DestinationUnavailable
        return PublishError

    def describe_exception(self, exc: BaseException) -> str:
        text = str(exc).strip()
        if isinstance(exc, OSError) and exc.strerror:
            text = exc.strerror
        return f"{type(exc).__name__}: {text}" if text else type(exc).__name__

    def _check_relative(self, relative_path: str) -> None:
        try:
            check_relative_path(relative_path, what="relative path")
        except ValueError as exc:
            raise PublishError(f"{self.name}: {exc}", destination=self.name, relative_path=relative_path) from None

    def _guard(self, relative_path: str, op: Callable[[], T]) -> T:
        """Run `op` (with the subclass's reconnect policy) and turn raw exceptions into our errors."""
        try:
            return self._with_reconnect(op)
        except PublishError:
            raise
        except Exception as exc:
            cls = self.classify(exc)
            where = f"{self.name}: {relative_path}" if relative_path else self.name
            location = self.location(relative_path) if relative_path else self.describe()
            raise cls(
                f"{where}: {self.describe_exception(exc)} ({location})",
                destination=self.name,
                relative_path=relative_path,
            ) from exc

    def _with_reconnect(self, op: Callable[[], T]) -> T:
        return op()

    # ---- primitives (full storage paths) -----------------------------------------------------
    def put(self, local_path: Path, path: str, *, callback: Callback | None, create_only: bool) -> int | None:
        """Upload; `create_only` asks the storage to fail with FileExistsError if `path` exists.

        Returns the stored file's size when the storage reported it as part of the upload itself (SFTP:
        an fstat pipelined with the writes), else None: the publish path then stats the file."""
        raise NotImplementedError

    def size_of(self, path: str) -> int | None:
        raise NotImplementedError

    def rename_noreplace(self, src: str, dst: str) -> None:
        """Rename `src` to `dst`; FileExistsError (and `src` left alone) if `dst` exists."""
        raise NotImplementedError

    def remove(self, path: str) -> None:
        raise NotImplementedError

    def makedirs(self, path: str) -> None:
        raise NotImplementedError

    def remove_folder(self, path: str) -> None:
        """Remove an empty folder (the preflight's probe subfolder)."""
        raise NotImplementedError

    def root_exists(self) -> bool:
        """Whether the root folder exists (it is never created; see destinations.check_root)."""
        raise NotImplementedError

    def sha256_of(self, path: str) -> str:
        raise NotImplementedError

    def remote_checksum(self, path: str) -> str | None:
        """A checksum the storage keeps anyway (S3 ETag), as 'algo:hex'; None when there is none."""
        return None

    def list_files(self, maxdepth: int) -> Iterable[tuple[str, str]]:
        """(full path, base name) of files under the root, at most `maxdepth` folders deep."""
        raise NotImplementedError
