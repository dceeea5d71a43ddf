"""A real SFTP server on loopback for destination tests (asyncssh in a background thread).

Slate's server is what we imitate: SFTP only (no shell), a chroot-like root, host key pinned by
clients, password or public-key logins. Knobs for the failure cases tests need:
`posix_rename=False` (server without the posix-rename@openssh.com extension), `plain_rename=False`
(plain SFTP rename unsupported), `deny_rename=True` (an account without rename rights), `deny_write=[...]`
(permission denied under some folders; tests run as root so chmod would not stop writes), and
`drop_connections()` (abort every live connection, e.g. from an upload callback mid-file).

`posix_rename` and `deny_write` are plain attributes: set them on the fixture before the client
connects (`sftp_server.posix_rename = False`), or build extra servers with `make_sftp_server(...)`.

`start_importer()` puts Slate's importer beside the server (`SlateImporter`): it takes every file
that appears under a final (non-dot) name away into `/incoming/processed/` at a random moment,
overwriting a same-named file there, as Slate does. It counts every arrival by content, so a file
delivered twice is visible even though the second copy overwrote the first.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import random
import threading
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncssh
import pytest
from asyncssh.sftp import SFTPServerHandler

_POSIX_RENAME = b"posix-rename@openssh.com"
_WRITE_FLAGS = asyncssh.FXF_WRITE | asyncssh.FXF_CREAT | asyncssh.FXF_TRUNC | asyncssh.FXF_APPEND


class _ExtensionList:
    """Per-session SFTP extension list: hides posix-rename for servers that ask to.

    asyncssh announces extensions from a class attribute of its (internal) handler; this
    descriptor consults the SFTPServer instance the handler serves, so other servers in the same
    process are unaffected.
    """

    def __init__(self, original: list[tuple[bytes, bytes]]) -> None:
        self.original = original

    def __get__(self, handler: Any, owner: type | None = None) -> list[tuple[bytes, bytes]]:
        server = getattr(handler, "_server", None) if handler is not None else None
        if server is not None and not getattr(server, "advertise_posix_rename", True):
            return [ext for ext in self.original if ext[0] != _POSIX_RENAME]
        return self.original


if not isinstance(SFTPServerHandler.__dict__.get("_extensions"), _ExtensionList):
    SFTPServerHandler._extensions = _ExtensionList(list(SFTPServerHandler._extensions))  # type: ignore[assignment]


_KEY_CACHE: dict[str, tuple[bytes, bytes, str]] = {}


def _export_fast(key: asyncssh.SSHKey, passphrase: str) -> bytes:
    """Few KDF rounds: test keys need to be encrypted, not strong; it keeps key loading fast."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return key.export_private_key(passphrase=passphrase, rounds=16)


def _client_keys(keydir: Path, passphrase: str) -> tuple[Path, Path, str]:
    """Client keys, generated once per process: encrypting a key (bcrypt KDF) costs ~1 s each time."""
    if passphrase not in _KEY_CACHE:
        plain = asyncssh.generate_private_key("ssh-ed25519")
        encrypted = asyncssh.generate_private_key("ssh-ed25519")
        _KEY_CACHE[passphrase] = (
            plain.export_private_key(),
            _export_fast(encrypted, passphrase),
            plain.export_public_key().decode() + encrypted.export_public_key().decode(),
        )
    plain_bytes, encrypted_bytes, authorized = _KEY_CACHE[passphrase]
    plain_path, encrypted_path = keydir / "id_ed25519", keydir / "id_ed25519_encrypted"
    plain_path.write_bytes(plain_bytes)
    encrypted_path.write_bytes(encrypted_bytes)
    plain_path.chmod(0o600)
    encrypted_path.chmod(0o600)
    return plain_path, encrypted_path, authorized


class SlateImporter:
    """Takes final-named files out of `watch` (recursively, skipping dot-files and `processed/`)
    into `processed` after a random delay of 0..`max_delay` seconds, like Slate's scheduled import.

    `arrivals` counts every file taken by sha256 of its content; `taken` maps the path it was
    delivered under (relative to `watch`) to its content. Exactly once means every export's sha256
    arrives once (plus zero copies left in `watch`)."""

    def __init__(self, watch: Path, processed: Path, *, max_delay: float = 0.3, seed: int = 12) -> None:
        self.watch, self.processed, self.max_delay = watch, processed, max_delay
        self.rng = random.Random(seed)
        self.arrivals: Counter[str] = Counter()
        self.taken: dict[str, bytes] = {}
        self.lock = threading.Lock()
        self._due: dict[Path, float] = {}
        self._stop = threading.Event()
        self._paused = threading.Event()
        self._thread = threading.Thread(target=self._run, name="slate-importer", daemon=True)

    def start(self) -> SlateImporter:
        self.processed.mkdir(parents=True, exist_ok=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Stop taking files (e.g. while a test inspects the folder)."""
        self._paused.set()
        try:
            yield
        finally:
            self._paused.clear()

    def _finals(self) -> list[Path]:
        found: list[Path] = []
        for dirpath, dirnames, filenames in os.walk(self.watch):
            here = Path(dirpath)
            dirnames[:] = [d for d in dirnames if not d.startswith(".") and here / d != self.processed]
            found.extend(here / name for name in filenames if not name.startswith("."))
        return found

    def _take(self, path: Path) -> None:
        try:
            data = path.read_bytes()
        except (FileNotFoundError, IsADirectoryError):
            return
        rel = path.relative_to(self.watch).as_posix()
        try:
            os.replace(path, self.processed / path.name)  # same name in processed/: overwritten
        except FileNotFoundError:
            return
        with self.lock:
            self.arrivals[hashlib.sha256(data).hexdigest()] += 1
            self.taken[rel] = data

    def drain(self) -> None:
        """Take everything due now, whatever the delay (end of a scenario)."""
        for path in self._finals():
            self._take(path)
        self._due.clear()

    def _run(self) -> None:
        while not self._stop.wait(0.005):
            if self._paused.is_set():
                continue
            now = time.monotonic()
            with contextlib.suppress(FileNotFoundError):
                for path in self._finals():
                    self._due.setdefault(path, now + self.rng.uniform(0, self.max_delay))
            for path, due in list(self._due.items()):
                if due <= now:
                    del self._due[path]
                    self._take(path)


@dataclass
class SFTPTestServer:
    root: Path
    username: str = "slate"
    password: str = "correct horse battery staple"
    key_passphrase: str = "open sesame"
    posix_rename: bool = True
    plain_rename: bool = True  # False: SSH_FXP_RENAME answers "unsupported" (only posix-rename works)
    deny_rename: bool = False  # True: an account that may write but not rename (both renames refused)
    # SFTP requests served, by kind (open, write, close, stat, lstat, fstat, mkdir, rename, ...): lets
    # tests and the benchmark count what one publish costs.
    requests: Counter[str] = field(default_factory=Counter)
    deny_write: list[str] = field(default_factory=list)
    # Writes at or past this offset fail with "no space" (a full disk in mid-upload); None = never.
    fail_writes_from: int | None = None
    host: str = "127.0.0.1"
    port: int = 0
    connections_opened: int = 0
    known_hosts_line: str = ""
    host_key_line: str = ""
    client_key_path: Path = Path()
    encrypted_client_key_path: Path = Path()
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None
    _server: Any = None
    _connections: set[Any] = field(default_factory=set)
    importer: SlateImporter | None = None

    def start_importer(self, folder: str = "incoming", **options: Any) -> SlateImporter:
        """Slate's importer beside this server: final-named files under `folder` move to
        `folder`/processed/ at random moments (see SlateImporter)."""
        watch = self.root / folder
        watch.mkdir(parents=True, exist_ok=True)
        self.importer = SlateImporter(watch, watch / "processed", **options).start()
        return self.importer

    def url(self, path: str = "") -> str:
        return f"sftp://{self.username}@{self.host}:{self.port}/{path.lstrip('/')}"

    def env(self, name: str, path: str = "", **extra: str) -> dict[str, str]:
        """DESTINATIONS__<NAME>__* variables for a flow subprocess (password auth, pinned host key)."""
        prefix = f"DESTINATIONS__{name.upper()}__"
        values = {"URL": self.url(path), "PASSWORD": self.password, "HOST_KEY": self.host_key_line}
        values.update({key.upper(): value for key, value in extra.items()})
        return {prefix + key: value for key, value in values.items()}

    # ---- lifecycle ---------------------------------------------------------------------------
    def start(self, keydir: Path) -> None:
        host_key = asyncssh.generate_private_key("ssh-ed25519")
        public = host_key.export_public_key().decode().split()
        self.host_key_line = f"{public[0]} {public[1]}"
        self.client_key_path, self.encrypted_client_key_path, authorized_text = _client_keys(
            keydir, self.key_passphrase
        )
        authorized = asyncssh.import_authorized_keys(authorized_text)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="sftp-test-server", daemon=True)
        self._thread.start()
        self._server = self._call(self._create(host_key, authorized))
        self.port = self._server.sockets[0].getsockname()[1]
        self.known_hosts_line = f"[{self.host}]:{self.port} {self.host_key_line}"

    async def _create(self, host_key: asyncssh.SSHKey, authorized: Any) -> Any:
        owner = self

        class _Server(asyncssh.SSHServer):
            def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
                owner.connections_opened += 1
                owner._connections.add(conn)

            def connection_lost(self, exc: Exception | None) -> None:
                owner._connections.difference_update({c for c in owner._connections if c.is_closed()})

            def begin_auth(self, username: str) -> bool:
                return True

            def password_auth_supported(self) -> bool:
                return True

            def validate_password(self, username: str, password: str) -> bool:
                return username == owner.username and password == owner.password

        return await asyncssh.create_server(
            _Server,
            self.host,
            0,
            server_host_keys=[host_key],
            authorized_client_keys=authorized,
            sftp_factory=lambda chan: _SFTPServer(chan, owner),
            allow_scp=False,
        )

    def _call(self, coro: Any) -> Any:
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=30)

    def drop_connections(self) -> None:
        """Abort every live connection now (callable from any thread, including a client callback)."""

        async def abort_all() -> None:
            for conn in list(self._connections):
                conn.abort()

        self._call(abort_all())

    def stop(self) -> None:
        if self.importer is not None:
            self.importer.stop()
        if self._loop is None:
            return

        async def shutdown() -> None:
            self._server.close()
            for conn in list(self._connections):
                conn.abort()

        self._call(shutdown())
        self._loop.call_soon_threadsafe(self._loop.stop)
        assert self._thread is not None
        self._thread.join(timeout=10)
        self._loop.close()
        self._loop = None

    def write_known_hosts(self, path: Path, line: str | None = None) -> Path:
        path.write_text((line or self.known_hosts_line) + "\n")
        return path


class _SFTPServer(asyncssh.SFTPServer):
    def __init__(self, chan: asyncssh.SSHServerChannel, owner: SFTPTestServer) -> None:
        super().__init__(chan, chroot=str(owner.root).encode())
        self._owner = owner
        self.advertise_posix_rename = owner.posix_rename

    def _check_write(self, path: bytes) -> None:
        real = Path(self.map_path(path).decode()).resolve()
        for denied in self._owner.deny_write:
            folder = (self._owner.root / denied).resolve()
            if real == folder or folder in real.parents:
                raise asyncssh.SFTPPermissionDenied("Permission denied")

    def _count(self, kind: str) -> None:
        self._owner.requests[kind] += 1

    def stat(self, path: bytes) -> Any:
        self._count("stat")
        return super().stat(path)

    def lstat(self, path: bytes) -> Any:
        self._count("lstat")
        return super().lstat(path)

    def fstat(self, file_obj: object) -> Any:
        self._count("fstat")
        return super().fstat(file_obj)

    def write(self, file_obj: object, offset: int, data: bytes) -> Any:
        self._count("write")
        limit = self._owner.fail_writes_from
        if limit is not None and offset + len(data) > limit:
            raise asyncssh.SFTPFailure("No space left on device")
        return super().write(file_obj, offset, data)

    def close(self, file_obj: object) -> Any:
        self._count("close")
        return super().close(file_obj)

    def open(self, path: bytes, pflags: int, attrs: asyncssh.SFTPAttrs) -> Any:
        self._count("open")
        if pflags & _WRITE_FLAGS:
            self._check_write(path)
        return super().open(path, pflags, attrs)

    def mkdir(self, path: bytes, attrs: asyncssh.SFTPAttrs) -> Any:
        self._count("mkdir")
        self._check_write(path)
        return super().mkdir(path, attrs)

    def remove(self, path: bytes) -> Any:
        self._count("remove")
        self._check_write(path)
        return super().remove(path)

    def rename(self, oldpath: bytes, newpath: bytes) -> Any:
        self._count("rename")
        if self._owner.deny_rename:
            raise asyncssh.SFTPPermissionDenied("Permission denied")
        if not self._owner.plain_rename:
            raise asyncssh.SFTPOpUnsupported("rename not supported")
        self._check_write(oldpath)
        self._check_write(newpath)
        return super().rename(oldpath, newpath)

    def posix_rename(self, oldpath: bytes, newpath: bytes) -> Any:
        self._count("posix_rename")
        if not self.advertise_posix_rename:
            raise asyncssh.SFTPOpUnsupported("posix-rename not supported")
        if self._owner.deny_rename:
            raise asyncssh.SFTPPermissionDenied("Permission denied")
        self._check_write(oldpath)
        self._check_write(newpath)
        return super().posix_rename(oldpath, newpath)


@pytest.fixture
def make_sftp_server(tmp_path: Path) -> Iterator[Callable[..., SFTPTestServer]]:
    """Factory for servers with options, e.g. make_sftp_server(posix_rename=False, deny_write=["x"])."""
    servers: list[SFTPTestServer] = []

    def make(**options: Any) -> SFTPTestServer:
        base = tmp_path / f"sftp-{len(servers)}"
        (base / "root").mkdir(parents=True)
        (base / "keys").mkdir()
        server = SFTPTestServer(root=base / "root", **options)
        server.start(base / "keys")
        servers.append(server)
        return server

    try:
        yield make
    finally:
        for server in servers:
            server.stop()


@pytest.fixture
def sftp_server(make_sftp_server: Callable[..., SFTPTestServer]) -> SFTPTestServer:
    """A fresh SFTP server per test (startup costs milliseconds) with password and key logins."""
    return make_sftp_server()
