"""The loopback stand-ins the benchmark needs: OpenSSH sshd, our latency proxy, a Prefect server.

Everything binds to 127.0.0.1 on a free port and lives in a temporary folder removed at the end.
Processes are started by us and stopped by their own handle, never by name.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

SSHD = "/usr/sbin/sshd"
PACKAGES = {"sshd": "openssh-server", "rclone": "rclone"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ensure_tools() -> None:
    """Install Debian's openssh-server and rclone when missing (the issue asks the script to do it)."""
    missing = [
        pkg for tool, pkg in PACKAGES.items() if not (shutil.which(tool) or (Path(SSHD).exists() and tool == "sshd"))
    ]
    if not missing:
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise SystemExit(f"bench needs {', '.join(missing)}; install them (apt-get install -y {' '.join(missing)})")
    print(f"Installing {', '.join(missing)} with apt-get ...", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", *missing], check=True, env=env, stdout=subprocess.DEVNULL)


def wait_for_port(port: int, proc: subprocess.Popen[bytes] | None, what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited early (code {proc.returncode})")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on 127.0.0.1:{port} within {timeout:.0f} s")


def stop_process(proc: subprocess.Popen[bytes] | None, timeout: float = 10.0) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout)


# ----------------------------------------------------------------------------- OpenSSH
@dataclass
class SshServer:
    """OpenSSH with a throw-away host key, client key and config; SFTP only, chrooted when root."""

    workdir: Path
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    chroot: Path | None = None
    data_root: Path = field(default_factory=Path)  # local folder that is "/" for SFTP clients
    remote_base: str = ""  # SFTP path of the upload folder
    user: str = ""

    @property
    def host_key_file(self) -> Path:
        return self.workdir / "ssh_host_ed25519_key"

    @property
    def client_key(self) -> Path:
        return self.workdir / "client_ed25519"

    @property
    def host_key_line(self) -> str:
        key_type, key_data = self.host_key_file.with_suffix(".pub").read_text().split()[:2]
        return f"{key_type} {key_data}"

    def known_hosts_file(self, port: int) -> Path:
        """A known_hosts naming the proxy port clients connect to (same key, of course)."""
        path = self.workdir / f"known_hosts_{port}"
        path.write_text(f"[127.0.0.1]:{port} {self.host_key_line}\n")
        return path

    def start(self) -> SshServer:
        self.workdir.mkdir(parents=True, exist_ok=True)
        for key in (self.host_key_file, self.client_key):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
        (self.workdir / "authorized_keys").write_text(self.client_key.with_suffix(".pub").read_text())
        self.user = os.environ.get("USER") or "root"
        if os.geteuid() == 0:
            self.user = "root"
            # sshd refuses a chroot below a group/world-writable folder (like /tmp): use a root-owned one.
            self.chroot = Path(tempfile.mkdtemp(prefix="encoura-bench-sftp-", dir=_root_owned_parent()))
            self.chroot.chmod(0o755)
            self.data_root = self.chroot
            self.remote_base = "/incoming"
        else:
            self.data_root = self.workdir / "sftp-root"
            self.remote_base = str(self.data_root / "incoming")
        (self.data_root / "incoming").mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            Path("/run/sshd").mkdir(exist_ok=True)  # privilege separation folder sshd insists on
        self.port = free_port()
        lines = [
            f"Port {self.port}",
            "ListenAddress 127.0.0.1",
            f"HostKey {self.host_key_file}",
            f"PidFile {self.workdir / 'sshd.pid'}",
            f"AuthorizedKeysFile {self.workdir / 'authorized_keys'}",
            "PubkeyAuthentication yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "PermitRootLogin prohibit-password",
            "UsePAM no",
            "StrictModes no",
            "AllowTcpForwarding no",
            "X11Forwarding no",
            "MaxSessions 32",
            "MaxStartups 64",
            "LogLevel ERROR",
            "Subsystem sftp internal-sftp",
            "ForceCommand internal-sftp",  # SFTP only, like Slate: no shell commands
        ]
        if self.chroot is not None:
            lines.append(f"ChrootDirectory {self.chroot}")
        config = self.workdir / "sshd_config"
        config.write_text("\n".join(lines) + "\n")
        log = open(self.workdir / "sshd.log", "wb")  # noqa: SIM115 - closed with the process
        self.proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stdout=log, stderr=subprocess.STDOUT)
        wait_for_port(self.port, self.proc, "sshd")
        return self

    def stop(self) -> None:
        stop_process(self.proc)
        if self.chroot is not None:
            shutil.rmtree(self.chroot, ignore_errors=True)

    def local_dir(self, remote: str) -> Path:
        """Where an SFTP path of ours lands on local disk (to check what arrived)."""
        rel = remote[len(self.remote_base) :].lstrip("/") if remote.startswith(self.remote_base) else remote
        return self.data_root / "incoming" / rel


def _root_owned_parent() -> str:
    for candidate in ("/srv", "/opt", "/var/lib"):
        st = os.stat(candidate)
        if st.st_uid == 0 and not st.st_mode & 0o022:
            return candidate
    raise RuntimeError("no root-owned, non-world-writable folder for the sshd chroot")


# ----------------------------------------------------------------------------- proxy
@dataclass
class Proxy:
    target_port: int
    latency_ms: float
    bandwidth_mbit: float | None
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    stats_file: Path | None = None  # per-connection JSON lines (bench.proxy --stats-file)

    def start(self) -> Proxy:
        self.port = free_port()
        cmd = [
            sys.executable,
            "-m",
            "bench.proxy",
            "--target",
            f"127.0.0.1:{self.target_port}",
            "--port",
            str(self.port),
            "--latency-ms",
            str(self.latency_ms),
            "--bandwidth-mbit",
            str(self.bandwidth_mbit or 0),
        ]
        if self.stats_file is not None:
            self.stats_file.touch()
            cmd += ["--stats-file", str(self.stats_file)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port(self.port, self.proc, "latency proxy")
        return self

    def stop(self) -> None:
        stop_process(self.proc)

    def mark(self) -> int:
        """Where the stats file ends now: connections after this mark belong to the next run."""
        return self.stats_file.stat().st_size if self.stats_file is not None else 0

    def connections_since(self, mark: int, timeout: float = 10.0) -> list[dict]:
        """Closing records of every connection opened after `mark`, once they have all closed.

        The measured process has exited when this is called, but the proxy notices the closed
        sockets a moment later; wait (bounded) until every "open" after the mark has its "close".
        """
        if self.stats_file is None:
            return []
        deadline = time.monotonic() + timeout
        while True:
            with open(self.stats_file) as fh:
                fh.seek(mark)
                records = [json.loads(line) for line in fh if line.strip()]
            opened = {r["conn"] for r in records if r["event"] == "open"}
            closed = {r["conn"]: r for r in records if r["event"] == "close"}
            if opened <= closed.keys() or time.monotonic() > deadline:
                return [closed[c] for c in sorted(opened) if c in closed]
            time.sleep(0.05)

    @property
    def bytes_per_second(self) -> float | None:
        return self.bandwidth_mbit * 1_000_000 / 8 if self.bandwidth_mbit else None


# ----------------------------------------------------------------------------- Prefect
@dataclass
class PrefectServer:
    home: Path
    port: int = 0
    startup_seconds: float = 0.0
    proc: subprocess.Popen[bytes] | None = None

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    @property
    def env(self) -> dict[str, str]:
        return {
            "PREFECT_HOME": str(self.home),
            "PREFECT_API_URL": self.api_url,
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_SERVER_UI_ENABLED": "false",
            "PREFECT_API_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{self.home}/prefect.db",
            "PREFECT_SERVER_LOGGING_LEVEL": "WARNING",
        }

    def start(self, timeout: float = 120.0) -> PrefectServer:
        self.home.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        log = open(self.home / "server.log", "wb")  # noqa: SIM115 - closed with the process
        started = time.monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(self.port)],
            env={**os.environ, **self.env},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = started + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"Prefect server exited early; see {self.home / 'server.log'}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.api_url}/health", timeout=1).status_code == 200:
                    self.startup_seconds = time.monotonic() - started
                    return self
            time.sleep(0.1)
        raise RuntimeError("Prefect server did not become healthy in time")

    def stop(self) -> None:
        stop_process(self.proc, timeout=15)

    def cpu_seconds(self) -> float | None:
        """The server process's CPU time so far (user + system, all its threads); None when not ours."""
        if self.proc is None:
            return None
        return process_cpu_seconds(self.proc.pid)

    def wait_idle(self, *, window: float = 0.5, busy_share: float = 0.1, timeout: float = 60.0) -> float:
        """Wait until the server uses under `busy_share` of a core over `window`; returns the seconds waited.

        The server takes in task-run states and logs in the background, after the client sent them and
        even after it exited: a run that starts before that backlog is gone competes with it for the
        cores, and its server CPU would count the previous run's. Not ours (None): returns at once.
        """
        started = time.monotonic()
        before = self.cpu_seconds()
        while before is not None and time.monotonic() - started < timeout:
            time.sleep(window)
            after = self.cpu_seconds()
            if after is None or after - before < busy_share * window:
                break
            before = after
        return time.monotonic() - started

    def last_flow_run(self, name: str) -> dict | None:
        """The newest run of flow `name` (Prefect's own start/end times, without process start-up)."""
        with httpx.Client(base_url=self.api_url, timeout=10) as client:
            response = client.post(
                "/flow_runs/filter",
                json={"flows": {"name": {"any_": [name]}}, "sort": "START_TIME_DESC", "limit": 1},
            )
            response.raise_for_status()
            runs = response.json()
            return runs[0] if runs else None


def process_cpu_seconds(pid: int) -> float | None:
    """User + system CPU of a running process (all threads, and children it has waited for)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            # Fields after the command name, which is in parentheses and may hold spaces.
            fields = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    utime, stime, cutime, cstime = (int(f) for f in fields[11:15])
    return (utime + stime + cutime + cstime) / os.sysconf("SC_CLK_TCK")


# ----------------------------------------------------------------------------- measured subprocess
@dataclass
class ProcessResult:
    argv: list[str]
    returncode: int
    seconds: float
    peak_rss_bytes: int
    cpu_seconds: float  # user + system: what the run cost the machine, less sensitive to load than wall time
    output: str


def _vm_hwm(pid: int) -> int | None:
    """The process's own peak RSS so far (VmHWM, bytes); None once it has exited."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def run_measured(
    argv: Sequence[str], env: Mapping[str, str], *, cwd: Path | None = None, timeout: float = 900.0
) -> ProcessResult:
    """Run a child; CPU time from wait4, peak RSS from polling its VmHWM.

    Not ru_maxrss: Linux carries the RSS high-water mark across fork+exec, so a child of this
    (big: it serves the sandbox's files) process would report the parent's peak. Popen returns
    only after the exec, so every VmHWM read belongs to the measured program's own memory; it is
    monotonic, so polling every 20 ms misses at most the last instants before exit.
    """
    with tempfile.TemporaryFile() as out:
        started = time.monotonic()
        proc = subprocess.Popen(list(argv), env=dict(env), cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
        deadline = started + timeout
        peak = 0
        while True:
            hwm = _vm_hwm(proc.pid)
            if hwm is not None:
                peak = max(peak, hwm)
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.02)
        seconds = time.monotonic() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read().decode("utf-8", "replace")
    cpu = usage.ru_utime + usage.ru_stime
    return ProcessResult(list(argv), proc.returncode, seconds, peak, cpu, text)


@contextlib.contextmanager
def temp_dir(prefix: str) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def self_peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
