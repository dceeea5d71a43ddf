"""Helpers shared by the deploy/overlap/check tests: subprocess environments and Prefect API reads."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit
from uuid import UUID

from prefect import get_client
from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
from prefect.client.schemas.objects import FlowRun

from sandbox.encoura import SandboxServer

REPO_ROOT = Path(__file__).resolve().parents[2]


def export_env(sb: SandboxServer, state_dir: Path, destinations: dict[str, str], **extra: str) -> dict[str, str]:
    """A clean environment for a flow subprocess: this repo, the session's Prefect server, the sandbox."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.upper().startswith(("DESTINATIONS__", "ENCOURA_", "CANVAS_", "UPLOAD_", "LEDGER_", "STATE_DIR"))
    }
    env.update(sb.env())
    env["STATE_DIR"] = str(state_dir)
    env["PYTHONPATH"] = str(REPO_ROOT)
    env["TASK_RETRY_DELAY_SECONDS"] = "0"
    for name, url in destinations.items():
        env[f"DESTINATIONS__{name.upper()}__URL"] = url
        folder = Path(unquote(urlsplit(url).path)) if url.startswith("file://") else None
        if folder is not None and not folder.exists():
            folder.mkdir(parents=True)  # a destination's root must exist (a missing one is refused, exit 2)
    env.update(extra)
    return env


def run_python(code: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


RUN_EXPORT_PRINT_ID = (
    "from flows.encoura_export import encoura_export\n"
    "state = encoura_export(return_state=True)\n"
    "print('FLOW_RUN_ID', state.state_details.flow_run_id)\n"
    "print('FLOW_RUN_STATE', state.type.value)\n"
)


def parse_marker(stdout: str, marker: str) -> str:
    for line in stdout.splitlines():
        if line.startswith(marker + " "):
            return line.split(" ", 1)[1].strip()
    raise AssertionError(f"{marker} not in output:\n{stdout}")


def read_flow_run(flow_run_id: UUID | str) -> FlowRun:
    with get_client(sync_client=True) as client:
        return client.read_flow_run(UUID(str(flow_run_id)))


def wait_for_final_state(flow_run_id: UUID | str, timeout: float = 120) -> FlowRun:
    deadline = time.monotonic() + timeout
    while True:
        run = read_flow_run(flow_run_id)
        if run.state is not None and run.state.is_final():
            return run
        if time.monotonic() > deadline:
            raise AssertionError(f"flow run {flow_run_id} still {run.state and run.state.type} after {timeout} s")
        time.sleep(0.5)


def flow_run_logs(flow_run_id: UUID | str) -> list[str]:
    """Every log line of a flow run and its task runs, as stored by the Prefect server."""
    with get_client(sync_client=True) as client:
        logs = client.read_logs(
            log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[UUID(str(flow_run_id))])), limit=200
        )
    return [log.message for log in logs]


def flow_run_artifacts(flow_run_id: UUID | str) -> list[Any]:
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with get_client(sync_client=True) as client:
        return client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[UUID(str(flow_run_id))]))
        )


def wait_for_logs_flushed(flow_run_id: UUID | str, needle: str, timeout: float = 15) -> list[str]:
    """Logs reach the server in batches: wait until a line we know the run wrote is there."""
    deadline = time.monotonic() + timeout
    while True:
        lines = flow_run_logs(flow_run_id)
        if any(needle in line for line in lines) or time.monotonic() > deadline:
            return lines
        time.sleep(0.3)
