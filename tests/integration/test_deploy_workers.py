"""Scaling out: the export deployment from prefect.yaml, a process work pool, two workers (each with
its own staging folder, as on two machines) and one PostgreSQL ledger. Two runs are requested at
once; each export is downloaded and delivered exactly once."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from prefect.deployments import run_deployment

from ledger import Ledger
from sandbox.encoura import SandboxServer
from tests.integration.deploy_helpers import (
    REPO_ROOT,
    export_env,
    wait_for_final_state,
)
from tests.integration.test_deploy_yaml import ensure_work_pool


def test_two_workers_with_a_postgres_ledger(encoura_sandbox: SandboxServer, tmp_path: Path, postgres_url: str) -> None:
    uids = [encoura_sandbox.add_export("prospect", f"worker-{i}.csv", seed=i) for i in range(4)]
    out = tmp_path / "out"
    ensure_work_pool("encoura-process")
    deploy = subprocess.run(
        [sys.executable, "-m", "prefect", "--no-prompt", "deploy", "-n", "encoura-export"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=180,
        env=export_env(encoura_sandbox, tmp_path / "deploy", {}, PREFECT_HOME=str(tmp_path / "home")),
    )  # fmt: skip
    assert deploy.returncode == 0, deploy.stdout[-3000:] + deploy.stderr[-3000:]

    workers = []
    for n in (1, 2):
        env = export_env(
            encoura_sandbox,
            tmp_path / f"machine-{n}",
            {"share": out.as_uri()},
            LEDGER_URL=postgres_url,
            ENCOURA_PRODUCT_KEYS="prospect",
            ENCOURA_SLATE_HOME=str(REPO_ROOT),  # the pull step's git checkout
            PREFECT_WORKER_QUERY_SECONDS="1",
        )
        command = [sys.executable, "-m", "prefect", "worker", "start", "--pool", "encoura-process", "--name", f"w{n}"]
        workers.append(
            subprocess.Popen(
                command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
            )
        )
    try:
        runs = [run_deployment("encoura-export/encoura-export", timeout=0) for _ in range(2)]
        finals = [wait_for_final_state(run.id, timeout=150) for run in runs]
    finally:
        logs = []
        for worker in workers:
            worker.terminate()
            try:
                logs.append(worker.communicate(timeout=20)[0])
            except subprocess.TimeoutExpired:
                worker.kill()
                logs.append(worker.communicate()[0])
    assert all(f.state is not None and f.state.is_completed() for f in finals), (
        [f.state for f in finals],
        "\n".join(log[-3000:] for log in logs),
    )
    assert sorted(p.name for p in out.iterdir()) == [f"worker-{i}.csv" for i in range(4)]
    ledger = Ledger(postgres_url)
    try:
        assert {(d.export_uid, d.status, d.attempts) for d in ledger.all_deliveries()} == {
            (u, "delivered", 1) for u in uids
        }
    finally:
        ledger.close()
    assert encoura_sandbox.snapshot()["download_url_requests"] == dict.fromkeys(uids, 1)
