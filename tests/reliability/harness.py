"""Shared machinery for the reliability suite: a rig (sandbox + real destinations + state dir),
ways to run the real export flow (in-process, as `python -m`, or forked from a pre-imported
process for cheap kills), a watcher that checks final names while faults happen, and
`assert_invariants`, the one set of promises every scenario ends by checking.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ledger import Ledger
from sandbox.encoura import SandboxServer

REPO = Path(__file__).resolve().parents[2]
TEMP_PREFIX = ".encoura-slate."
# Env prefixes the flow reads; cleared before each run so nothing leaks in from the developer's shell.
_FLOW_PREFIXES = ("DESTINATIONS__", "ENCOURA_", "UPLOAD_", "CANVAS_")
_FLOW_NAMES = (
    "STATE_DIR",
    "LEDGER_URL",
    "MAX_PARALLEL_FILES",
    "TASK_RETRIES",
    "TASK_RETRY_DELAY_SECONDS",
    "CLAIM_TTL_SECONDS",
)

# Fast but realistic knobs: no sleeping between Prefect retries, short timeouts, few products listed.
FAST_ENV = {
    "TASK_RETRIES": "3",
    "TASK_RETRY_DELAY_SECONDS": "0",
    "ENCOURA_TIMEOUT_SECONDS": "10",
    "ENCOURA_MAX_ATTEMPTS": "6",
    "ENCOURA_PRODUCT_KEYS": "prospect,aos",
}


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def is_temp(relative: str) -> bool:
    return any(part.startswith(".") for part in relative.split("/"))


# --------------------------------------------------------------------------------- destinations
@dataclass
class DirView:
    """A destination whose files we can read where the server keeps them (local share, SFTP root)."""

    name: str
    root: Path

    def files(self) -> dict[str, bytes]:
        if not self.root.exists():
            return {}
        out: dict[str, bytes] = {}
        for p in sorted(self.root.rglob("*")):
            with contextlib.suppress(FileNotFoundError, IsADirectoryError):
                if p.is_file():
                    out[p.relative_to(self.root).as_posix()] = p.read_bytes()
        return out


@dataclass
class ImportedView:
    """An SFTP folder with Slate's importer beside it: what was delivered is what is still in the
    folder plus what the importer took (by the path it was delivered under). `copies` counts every
    arrival, so a second delivery of the same content shows although processed/ overwrote it."""

    name: str
    root: Path
    importer: Any  # tests.support.sftp_server.SlateImporter

    def files(self) -> dict[str, bytes]:
        with self.importer.lock:
            out = dict(self.importer.taken)
            processed = self.importer.processed
            for p in sorted(self.root.rglob("*")):
                if processed == p or processed in p.parents:
                    continue
                with contextlib.suppress(FileNotFoundError, IsADirectoryError):
                    if p.is_file():
                        out[p.relative_to(self.root).as_posix()] = p.read_bytes()
            return out

    def copies(self, digest: str) -> int:
        with self.importer.lock:
            taken = self.importer.arrivals[digest]
            here = 0
            for p in self.root.rglob("*"):
                if p.is_file() and self.importer.processed not in p.parents and not is_temp(p.name):
                    with contextlib.suppress(FileNotFoundError):
                        here += sha256(p.read_bytes()) == digest
            return taken + here


@dataclass
class S3View:
    name: str
    server: Any  # tests.support.s3_server.S3TestServer
    prefix: str

    @property
    def root(self) -> None:
        return None

    def files(self) -> dict[str, bytes]:
        base = self.prefix.strip("/") + "/"
        return {k[len(base) :]: self.server.read(k) for k in self.server.keys(base)}


def sftp_env(name: str, server: Any, *, port: int | None = None, path: str = "incoming") -> dict[str, str]:
    """Env for an SFTP destination; `port` points it through a FaultProxy instead of straight at the server."""
    prefix = f"DESTINATIONS__{name.upper()}__"
    return {
        prefix + "URL": f"sftp://{server.username}@127.0.0.1:{port or server.port}/{path}",
        prefix + "PASSWORD": server.password,
        prefix + "HOST_KEY": server.host_key_line,
        prefix + "SWEEP_GRACE_SECONDS": "0",
        prefix + "CONNECT_TIMEOUT": "5",
    }


def local_env(name: str, folder: Path, template: str | None = None) -> dict[str, str]:
    prefix = f"DESTINATIONS__{name.upper()}__"
    env = {prefix + "URL": folder.as_uri(), prefix + "SWEEP_GRACE_SECONDS": "0"}
    if template:
        env[prefix + "PATH_TEMPLATE"] = template
    return env


def s3_env(name: str, server: Any, prefix_path: str) -> dict[str, str]:
    prefix = f"DESTINATIONS__{name.upper()}__"
    return {
        prefix + "URL": server.url(prefix_path),
        prefix + "STORAGE_OPTIONS": json.dumps(server.storage_options),
        prefix + "SWEEP_GRACE_SECONDS": "0",
    }


# --------------------------------------------------------------------------------- the rig
@dataclass
class Rig:
    sandbox: SandboxServer
    state_dir: Path
    views: list[DirView | S3View | ImportedView]
    env: dict[str, str]
    _seq: int = 0
    ledger: str | None = None  # LEDGER_URL (e.g. PostgreSQL); default: SQLite in the state dir

    @property
    def ledger_url(self) -> str:
        return self.ledger or f"sqlite:///{(self.state_dir / 'ledger.sqlite3').resolve()}"

    def full_env(self, **extra: str) -> dict[str, str]:
        ledger = {"LEDGER_URL": self.ledger} if self.ledger else {}
        return {**self.sandbox.env(), "STATE_DIR": str(self.state_dir), **FAST_ENV, **ledger, **self.env, **extra}

    def add_export(self, product_key: str = "prospect", size: int | None = None, filename: str | None = None) -> str:
        """An export with content unique in the whole run, so 'exactly once' can be checked by hash."""
        self._seq += 1
        body = f"id,seq\n{self._seq:08d},{time.time_ns()}\n".encode()
        if size:
            line = f'{self._seq:08d},"0{self._seq % 9}123",padding-{"x" * 40}\r\n'.encode()
            body += line * max(size // len(line), 1)
        return self.sandbox.add_export(product_key, filename, body)


@contextlib.contextmanager
def patched_environ(env: dict[str, str]) -> Iterator[None]:
    """Exactly `env` for the flow's settings (everything else the flow reads is removed), restored after."""
    saved = dict(os.environ)
    for key in list(os.environ):
        if key.upper().startswith(_FLOW_PREFIXES) or key.upper() in _FLOW_NAMES:
            del os.environ[key]
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def run_in_process(env: dict[str, str], **params: Any) -> Any:
    """The real flow in this process, against the session Prefect server; returns the final State."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows.encoura_export import encoura_export

    # Prefect snapshots its settings at import (during collection, before the session server set
    # PREFECT_API_URL); without this every in-process run would start a temporary server.
    with patched_environ(env), temporary_settings(updates={PREFECT_API_URL: os.environ["PREFECT_API_URL"]}):
        return encoura_export(return_state=True, **params)


def subprocess_env(env: dict[str, str]) -> dict[str, str]:
    keep = {
        k: v
        for k, v in os.environ.items()
        if k.startswith(("PREFECT_", "PATH", "HOME", "LANG", "LC_", "PYTHON", "VIRTUAL_ENV", "TMP"))
    }
    # This checkout's code, whatever the editable install points at (matters for worktrees).
    return {**keep, "PYTHONPATH": str(REPO), **env}


def run_cli(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """`python -m flows.encoura_export` exactly as a scheduler runs it."""
    return subprocess.run(
        [sys.executable, "-m", "flows.encoura_export", *args],
        cwd=str(env.get("CWD", REPO)),
        env=subprocess_env({k: v for k, v in env.items() if k != "CWD"}),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


# --------------------------------------------------------------------------------- kill support
class Zygote:
    """A process that imported the flow once and forks a fresh flow process per run.

    Importing Prefect costs seconds; the crash suites start ~50 flow processes, so each is forked
    from this pre-imported, single-threaded parent instead. The child is a real, separate process
    running the CLI's `main()` with its own environment, stdout and stderr: SIGKILL hits exactly
    what it would hit in production. (A few kills also use a plain `python -m` start.)
    """

    SCRIPT = REPO / "tests" / "reliability" / "zygote_main.py"

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(self.SCRIPT)],
            cwd=str(REPO),
            env=subprocess_env({}),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        ready = self._read()
        assert ready.get("ready"), ready

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the flow zygote died")
        return json.loads(line)

    def _send(self, message: dict[str, Any]) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(message) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def spawn(self, env: dict[str, str], argv: list[str], out_dir: Path) -> int:
        reply = self._send(
            {
                "op": "spawn",
                "env": subprocess_env(env),
                "argv": argv,
                "stdout": str(out_dir / "stdout.txt"),
                "stderr": str(out_dir / "stderr.txt"),
            }
        )
        return int(reply["pid"])

    def wait(self, pid: int) -> int:
        """Reap the child (so its pid is really gone, as the ledger's dead-holder check expects)."""
        return int(self._send({"op": "wait", "pid": pid})["code"])

    def poll(self, pid: int) -> int | None:
        reply = self._send({"op": "poll", "pid": pid})
        return None if reply["code"] is None else int(reply["code"])

    def close(self) -> None:
        with contextlib.suppress(Exception):
            assert self.proc.stdin is not None
            self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


def kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


# --------------------------------------------------------------------------------- watcher
class FinalNameWatcher:
    """Polls destination folders while a run is under faults; every file under a final (non-dot)
    name must hash to a complete export the sandbox holds. Catches a half file becoming visible,
    which an end-of-run check cannot see once a later rename or retry has fixed it."""

    def __init__(self, sandbox: SandboxServer, roots: list[Path], interval: float = 0.005) -> None:
        self.sandbox = sandbox
        self.roots = roots
        self.interval = interval
        self.violations: list[str] = []
        self.seen: set[str] = set()
        self.temps_seen: set[str] = set()  # proves the watcher looked while transfers were in flight
        self.checks = 0
        self._known: set[str] = set()
        self._verified: dict[tuple[str, int, int], bool] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="final-name-watcher", daemon=True)

    def _refresh_known(self) -> None:
        with self.sandbox.state.lock:
            self._known = {sha256(r.content) for r in self.sandbox.state.exports.values()}

    def _check_file(self, root: Path, path: Path) -> None:
        rel = path.relative_to(root).as_posix()
        if is_temp(rel):
            self.temps_seen.add(rel)
            return
        try:
            st = path.stat()
            key = (str(path), st.st_mtime_ns, st.st_size)
            if key in self._verified:
                return
            data = path.read_bytes()
        except (FileNotFoundError, IsADirectoryError, PermissionError):
            return
        self.checks += 1
        digest = sha256(data)
        if digest not in self._known:
            self._refresh_known()
        if digest in self._known:
            self._verified[key] = True
            self.seen.add(digest)
        else:
            self.violations.append(f"{root}/{rel}: {len(data)} bytes, not a complete export (sha256 {digest[:12]})")

    def _run(self) -> None:
        self._refresh_known()
        while not self._stop.is_set():
            for root in self.roots:
                if not root.exists():
                    continue
                with contextlib.suppress(FileNotFoundError):
                    for path in root.rglob("*"):
                        with contextlib.suppress(FileNotFoundError):
                            if path.is_file():
                                self._check_file(root, path)
            self._stop.wait(self.interval)

    def __enter__(self) -> FinalNameWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def assert_clean(self) -> None:
        assert not self.violations, "incomplete files were visible under final names:\n" + "\n".join(
            self.violations[:20]
        )


# --------------------------------------------------------------------------------- invariants
@dataclass
class InvariantReport:
    delivered: set[str] = field(default_factory=set)
    files: dict[str, dict[str, bytes]] = field(default_factory=dict)


def assert_invariants(
    rig: Rig,
    *,
    rejected: set[str] | frozenset[str] = frozenset(),
    product_keys: tuple[str, ...] | None = None,
) -> InvariantReport:
    """The promises of README "Guarantees", checked after the final re-run of a scenario.

    1. Every export the API listed (the sandbox marks listed exports Delivered) is delivered to
       every destination exactly once, byte-identical (sha256) to the source.
    2. Nothing else is there: no temp files, no second copy, nothing from a rejected export.
    3. The ledger agrees with the destinations, and staging holds nothing for delivered exports.
    `rejected` are uids the scenario expects to be refused with a clear error (e.g. a 0-byte file).
    """
    keys = product_keys or tuple(FAST_ENV["ENCOURA_PRODUCT_KEYS"].split(","))
    with rig.sandbox.state.lock:
        source = {
            uid: (r.content, r.status)
            for uid, r in rig.sandbox.state.exports.items()
            if r.product_key in keys and r.organization_uid == rig.sandbox.credentials["organization_uid"]
        }
    not_listed = sorted(uid for uid, (_, status) in source.items() if status != "Delivered")
    assert not not_listed, f"exports never listed by the final run: {not_listed}"
    wanted = {uid: content for uid, (content, _) in source.items() if uid not in rejected}

    ledger = Ledger(rig.ledger_url)
    try:
        rows = {r.uid: r for r in ledger.all_exports()}
        deliveries = ledger.all_deliveries()
    finally:
        ledger.close()
    missing = sorted(set(wanted) - set(rows))
    assert not missing, f"listed exports the ledger never recorded (lost): {missing}"
    not_done = {uid: (rows[uid].status, rows[uid].last_error) for uid in wanted if rows[uid].status != "delivered"}
    assert not not_done, f"exports not delivered after the final run: {not_done}"
    for uid in rejected:
        if uid in rows:
            assert rows[uid].status == "rejected", (uid, rows[uid].status)
            assert rows[uid].last_error, f"rejected export {uid} has no error message"

    report = InvariantReport(delivered=set(wanted))
    by_dest: dict[str, dict[str, Any]] = {}
    for d in deliveries:
        by_dest.setdefault(d.destination, {})[d.export_uid] = d
    for view in rig.views:
        files = view.files()
        report.files[view.name] = files
        temps = sorted(k for k in files if is_temp(k))
        assert not temps, f"{view.name}: temp files remain after the sweep: {temps}"
        hashes: dict[str, list[str]] = {}
        for rel, data in files.items():
            hashes.setdefault(sha256(data), []).append(rel)
        for uid, content in wanted.items():
            copies = hashes.get(sha256(content), [])
            assert len(copies) == 1, f"{view.name}: export {uid} present {len(copies)} times: {copies}"
            if isinstance(view, ImportedView):
                arrived = view.copies(sha256(content))
                assert arrived == 1, f"{view.name}: export {uid} reached the importer {arrived} times"
        expected_hashes = {sha256(c) for c in wanted.values()}
        stray = sorted(rel for digest, rels in hashes.items() if digest not in expected_hashes for rel in rels)
        assert not stray, f"{view.name}: files that are no complete listed export: {stray}"
        rows_here = by_dest.get(view.name, {})
        for uid, content in wanted.items():
            row = rows_here.get(uid)
            assert row is not None and row.status == "delivered", f"{view.name}: ledger has no delivery for {uid}"
            assert row.relative_path in files, f"{view.name}: ledger says {row.relative_path} but it is not there"
            assert sha256(files[row.relative_path]) == sha256(content), f"{view.name}: {row.relative_path} differs"
            assert row.sha256 == sha256(content), f"{view.name}: ledger sha256 for {uid} disagrees with the file"
        assert len(files) == len(wanted), f"{view.name}: {len(files)} files for {len(wanted)} exports"
    staging = rig.state_dir / "staging"
    if staging.exists():
        leftovers = sorted(p.name for p in staging.iterdir() if p.name in wanted)
        assert not leftovers, f"staging still holds delivered exports: {leftovers}"
    return report


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.005) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()
