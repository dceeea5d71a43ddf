"""`python -m flows.serve` registers the flows of prefect.yaml and runs them when asked."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import time
from pathlib import Path

from prefect import get_client
from prefect.deployments import run_deployment
from prefect.exceptions import ObjectNotFound

from sandbox.encoura import SandboxServer
from tests.integration.deploy_helpers import (
    REPO_ROOT,
    export_env,
    wait_for_final_state,
)


def _wait_for_deployment(name: str, proc: subprocess.Popen[str], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while True:
            try:
                client.read_deployment_by_name(name)
                return
            except ObjectNotFound:
                pass
            if proc.poll() is not None:
                out, _ = proc.communicate()
                raise AssertionError(f"flows.serve exited early ({proc.returncode}):\n{out[-3000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{name} was not registered within {timeout} s")
            time.sleep(0.3)


def test_serve_registers_and_runs_the_export(encoura_sandbox: SandboxServer, tmp_path: Path) -> None:
    uids = [encoura_sandbox.add_export("prospect", f"serve-{i}.csv") for i in range(2)]
    out = tmp_path / "out"
    env = export_env(
        encoura_sandbox, tmp_path / "state", {"share": out.as_uri()}, PREFECT_RUNNER_POLL_FREQUENCY="1"
    )
    # A deployment of the same name made by `prefect deploy` (another test) would keep its work
    # pool and pull steps: serve or workers own a name, never both (README, "Operations").
    with get_client(sync_client=True) as client, contextlib.suppress(ObjectNotFound):
        client.delete_deployment(client.read_deployment_by_name("encoura-export/encoura-export").id)
    proc = subprocess.Popen(
        [sys.executable, "-m", "flows.serve", "--only", "encoura-export"],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        _wait_for_deployment("encoura-export/encoura-export", proc)
        with get_client(sync_client=True) as client:
            deployment = client.read_deployment_by_name("encoura-export/encoura-export")
        (schedule,) = deployment.schedules
        assert schedule.slug == "encoura-export-daily" and schedule.schedule.timezone == "America/Chicago"
        run = run_deployment("encoura-export/encoura-export", timeout=0)
        final = wait_for_final_state(run.id, timeout=120)
        assert final.state is not None and final.state.is_completed(), final.state
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
        # serve pauses its deployment on shutdown; leave the name free for the `prefect deploy` tests.
        with get_client(sync_client=True) as client, contextlib.suppress(ObjectNotFound):
            client.delete_deployment(client.read_deployment_by_name("encoura-export/encoura-export").id)
    assert sorted(p.name for p in out.rglob("*.csv")) == ["serve-0.csv", "serve-1.csv"]
    assert len(uids) == 2
