"""Export scenarios: the real flow, the sequential baseline script and rclone, on the same bytes.

Each scenario gets a fresh ledger (STATE_DIR) and its own destination folder, and what arrived on
the SFTP server's disk is checked (count, sizes, sha256) so a fast-but-wrong run cannot pass.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import mmap
import os
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.infra import PrefectServer, ProcessResult, Proxy, SshServer, run_measured
from common.hashing import file_hexdigest
from sandbox.encoura import SandboxServer
from sandbox.encoura.samples import export_content, sized_csv

MB = 1_000_000  # decimal megabytes throughout, like link speeds (100 Mbit/s = 12.5 MB/s)
PRODUCT = "prospect"
REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass
class ExpectedFile:
    name: str
    size: int
    sha256: str


@dataclass
class Stack:
    """The running stand-ins one benchmark run shares."""

    workdir: Path
    sandbox: SandboxServer
    ssh: SshServer
    proxy: Proxy
    prefect: PrefectServer
    extra_env: dict[str, str] = field(default_factory=dict)
    # `--profile`: py-spy's path; every export-flow run is then sampled into `profiles/<label>.txt`
    # (collapsed stacks of whichever thread holds the GIL, i.e. Python CPU time, not waits: Prefect runs
    # tasks in worker threads, which cProfile misses).
    profiler: str | None = None
    profiles: Path | None = None

    def base_env(self) -> dict[str, str]:
        """The parent's environment minus anything that could steer the flow elsewhere."""
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.upper().startswith(("DESTINATIONS__", "ENCOURA_", "PREFECT_", "UPLOAD_", "CANVAS_"))
            and k.upper() not in ("STATE_DIR", "LEDGER_URL", "MAX_PARALLEL_FILES")
        }
        env.update(self.prefect.env)
        env.update(self.sandbox.env())
        env["ENCOURA_PRODUCT_KEYS"] = PRODUCT
        env["PYTHONUNBUFFERED"] = "1"
        # bench/ is not an installed package: let `python -m bench.x` children find it from any cwd.
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
        env.update(self.extra_env)
        return env

    def sftp_env(self, name: str, port: int, remote_dir: str) -> dict[str, str]:
        """A destination at `remote_dir`, created first: the export refuses a missing root folder."""
        root = self.ssh.local_dir(remote_dir)
        root.mkdir(parents=True, exist_ok=True)
        parent = root.parent.stat()
        os.chown(root, parent.st_uid, parent.st_gid)
        prefix = f"DESTINATIONS__{name.upper()}__"
        return {
            f"{prefix}URL": f"sftp://{self.ssh.user}@127.0.0.1:{port}{remote_dir}",
            f"{prefix}CLIENT_KEY": str(self.ssh.client_key),
            f"{prefix}HOST_KEY": self.ssh.host_key_line,
        }


def add_sized_exports(sandbox: SandboxServer, count: int, size: int, tag: str) -> list[ExpectedFile]:
    """`count` distinct CSV exports of `size` bytes (seeded, so re-adding gives identical bytes)."""
    expected = []
    for n in range(count):
        content = export_content(PRODUCT, None, size=size, seed=n)
        name = f"{tag}-{n:04d}.csv"
        sandbox.add_export(PRODUCT, name, content)
        expected.append(ExpectedFile(name, len(content), hashlib.sha256(content).hexdigest()))
    return expected


def write_local_copies(folder: Path, count: int, size: int, tag: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for n in range(count):
        (folder / f"{tag}-{n:04d}.csv").write_bytes(export_content(PRODUCT, None, size=size, seed=n))


def make_big_file(path: Path, size: int) -> str:
    """A `size`-byte CSV on disk written block by block (never whole in memory); returns its sha256."""
    block = sized_csv(PRODUCT, 8 * 1024 * 1024, seed=1)
    header_end = block.index(b"\r\n") + 2
    body = block[header_end : block.rindex(b"\r\n") + 2]
    digest = hashlib.sha256()
    written = 0
    with open(path, "wb") as fh:
        for piece in (block[:header_end],):
            fh.write(piece)
            digest.update(piece)
            written += len(piece)
        while written < size:
            piece = body[: size - written]
            fh.write(piece)
            digest.update(piece)
            written += len(piece)
    return digest.hexdigest()


class FileContent(mmap.mmap):
    """A read-only map of a file that also answers `count(b"\\n")` (the sandbox's listing asks)."""

    lines: int = 0

    def count(self, sub: bytes) -> int:
        if sub != b"\n":
            raise NotImplementedError("only newline counts are precomputed")
        return self.lines


def add_file_backed_export(sandbox: SandboxServer, path: Path, name: str) -> FileContent:
    """Serve a file from disk through the sandbox without holding it in memory.

    The sandbox keeps export bytes in memory; an mmap of the file behaves like those bytes (len,
    slicing, hashing) while the kernel pages it in and out. Swapped in after add_export because the
    sandbox's public API copies content into a bytes object.
    """
    uid = sandbox.add_export(PRODUCT, name, b"placeholder\r\n")
    lines = 0
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 24), b""):
            lines += block.count(b"\n")
        mapped = FileContent(fh.fileno(), 0, access=mmap.ACCESS_READ)
    mapped.lines = lines
    with sandbox.state.lock:
        sandbox.state.exports[uid].content = mapped  # type: ignore[assignment]
    return mapped


def verify_arrived(folder: Path, expected: list[ExpectedFile], *, check_sha: bool = True) -> dict[str, Any]:
    """Every expected file present with the right size (and sha256); no stray temp files left."""
    problems: list[str] = []
    present = {p.name: p for p in folder.rglob("*") if p.is_file()} if folder.is_dir() else {}
    for item in expected:
        path = present.pop(item.name, None)
        if path is None:
            problems.append(f"missing {item.name}")
            continue
        if path.stat().st_size != item.size:
            problems.append(f"{item.name}: {path.stat().st_size} bytes, expected {item.size}")
        elif check_sha and file_hexdigest(path) != item.sha256:
            problems.append(f"{item.name}: sha256 differs")
    problems.extend(f"unexpected file {name}" for name in sorted(present))
    return {"ok": not problems, "files": len(expected), "problems": problems[:10]}


def run_export_flow(
    stack: Stack,
    *,
    label: str,
    dest_env: dict[str, str],
    extra: dict[str, str] | None = None,
    module: str = "flows.encoura_export",
) -> dict[str, Any]:
    """`python -m flows.encoura_export` as a user runs it; fresh ledger; Prefect's own run timing too."""
    state_dir = stack.workdir / f"state-{label}"
    env = stack.base_env() | dest_env | {"STATE_DIR": str(state_dir)} | (extra or {})
    cwd = stack.workdir / f"cwd-{label}"
    cwd.mkdir(parents=True, exist_ok=True)  # an empty cwd: no stray .env file gets read
    argv = [sys.executable, "-m", module]
    if stack.profiler and stack.profiles is not None:
        stack.profiles.mkdir(parents=True, exist_ok=True)
        out_file = stack.profiles / f"{label}.txt"
        sampler = [stack.profiler, "record", "--gil", "--format", "raw", "--rate", "100", "--output", str(out_file)]
        argv = [*sampler, "--", *argv]
    return run_flow_process(stack, argv, env, cwd=cwd, flow_name="encoura-export")[0]


def run_flow_process(
    stack: Stack, argv: list[str], env: dict[str, str], *, cwd: Path, flow_name: str
) -> tuple[dict[str, Any], ProcessResult]:
    """One measured process that runs flow `flow_name`: wall, CPU and RSS of the process, Prefect's own
    timing of the flow run, and the Prefect server's CPU meanwhile (what the run cost the server).
    Also the process's result, for its output."""
    stack.prefect.wait_idle()  # an earlier run's backlog at the server is not this run's
    server_cpu = stack.prefect.cpu_seconds()
    wall_start = time.time()
    result = run_measured(argv, env, cwd=cwd)
    wall_end = time.time()
    settled = stack.prefect.wait_idle()  # the server's share of this run ends when it is idle again
    server_cpu_after = stack.prefect.cpu_seconds()
    out = process_summary(result)
    if server_cpu is not None and server_cpu_after is not None:
        out["server_cpu_seconds"] = round(server_cpu_after - server_cpu, 2)
        out["server_settle_seconds"] = round(settled, 2)
    run = stack.prefect.last_flow_run(flow_name)
    if run is not None:
        out["flow_run_seconds"] = round(float(run.get("total_run_time") or 0.0), 3)
        out["flow_run_state"] = (run.get("state") or {}).get("type")
        # Start-up as the user sees it: process start until Prefect says the flow run started
        # (imports, settings, flow-run creation), and from its end until the process exited.
        with contextlib.suppress(TypeError, ValueError):
            began = datetime.fromisoformat(run["start_time"]).timestamp()
            ended = datetime.fromisoformat(run["end_time"]).timestamp()
            out["startup_seconds"] = round(began - wall_start, 3)
            out["teardown_seconds"] = round(wall_end - ended, 3)
    return out, result


def run_baseline(stack: Stack, *, label: str, remote_dir: str, port: int) -> dict[str, Any]:
    env = stack.base_env() | {
        "BASELINE_SFTP_HOST": "127.0.0.1",
        "BASELINE_SFTP_PORT": str(port),
        "BASELINE_SFTP_USER": stack.ssh.user,
        "BASELINE_SFTP_KEY": str(stack.ssh.client_key),
        "BASELINE_KNOWN_HOSTS": str(stack.ssh.known_hosts_file(port)),
        "BASELINE_REMOTE_DIR": remote_dir,
        "BASELINE_DOWNLOAD_DIR": str(stack.workdir / f"download-{label}"),
    }
    result = run_measured([sys.executable, "-m", "bench.baseline_script"], env, cwd=stack.workdir)
    out = process_summary(result)
    last = result.output.strip().splitlines()[-1:] or [""]
    with contextlib.suppress(ValueError):
        out.update(json.loads(last[0]))
    return out


def run_rclone(stack: Stack, *, source: Path, remote_dir: str, port: int, transfers: int) -> dict[str, Any]:
    """The SFTP leg alone, from local disk, with rclone's own defaults apart from --transfers."""
    empty_config = stack.workdir / "rclone.conf"
    empty_config.write_text("")
    env = stack.base_env() | {
        "RCLONE_CONFIG_BENCH_TYPE": "sftp",
        "RCLONE_CONFIG_BENCH_HOST": "127.0.0.1",
        "RCLONE_CONFIG_BENCH_PORT": str(port),
        "RCLONE_CONFIG_BENCH_USER": stack.ssh.user,
        "RCLONE_CONFIG_BENCH_KEY_FILE": str(stack.ssh.client_key),
        "RCLONE_CONFIG_BENCH_KNOWN_HOSTS_FILE": str(stack.ssh.known_hosts_file(port)),
    }
    argv = [
        "rclone",
        "--config",
        str(empty_config),
        "copy",
        str(source),
        f"bench:{remote_dir}",
        "--transfers",
        str(transfers),
        "--stats",
        "0",
    ]
    return process_summary(run_measured(argv, env, cwd=stack.workdir))


def process_summary(result: ProcessResult) -> dict[str, Any]:
    out: dict[str, Any] = {
        "seconds": round(result.seconds, 3),
        "returncode": result.returncode,
        "peak_rss_mb": round(result.peak_rss_bytes / MB, 1),
        "cpu_seconds": round(result.cpu_seconds, 2),
    }
    if result.returncode != 0:
        out["output_tail"] = result.output[-3000:]
    return out
