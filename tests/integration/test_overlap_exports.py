"""Two export runs at once (a scheduled and a manual one, or two workers) deliver every export once.

Both runs are real subprocesses started together against one ledger: SQLite (same STATE_DIR, as on
one machine) and PostgreSQL (separate staging folders, as on two workers).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ledger import Ledger
from sandbox.encoura import SandboxConfig, SandboxServer
from tests.integration.deploy_helpers import REPO_ROOT, export_env

EXPORTS = 6

# Slow S3 bodies keep both runs inside the delivery phase at the same time.
SLOW_S3 = SandboxConfig(s3_chunk_delay_seconds=0.1)


def _start(env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "flows.encoura_export"],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _run_two_at_once(envs: list[dict[str, str]]) -> None:
    procs = [_start(env) for env in envs]
    outputs = [p.communicate(timeout=180)[0] for p in procs]
    for proc, out in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, out[-4000:]


def _assert_exactly_once(sb: SandboxServer, uids: list[str], out: Path, ledger_url: str) -> None:
    delivered = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert delivered == sorted(f"overlap-{i}.csv" for i in range(EXPORTS))
    ledger = Ledger(ledger_url)
    try:
        rows = {r.uid: r for r in ledger.all_exports()}
        assert {uid: rows[uid].status for uid in uids} == dict.fromkeys(uids, "delivered")
        deliveries = ledger.all_deliveries()
        assert len(deliveries) == EXPORTS
        # attempts counts publishes that reached the destination: a second one would show as 2.
        assert {(d.export_uid, d.status, d.attempts) for d in deliveries} == {(u, "delivered", 1) for u in uids}
    finally:
        ledger.close()
    snapshot = sb.snapshot()
    # One presigned URL per export: nobody fetched an export the other run already had.
    assert snapshot["download_url_requests"] == dict.fromkeys(uids, 1)


def _exports(sb: SandboxServer, ledger_url: str) -> list[str]:
    """Half the exports already in the ledger (listed by an earlier, interrupted run): both runs
    then start with the same pending work and must race for the claims; the other half they race
    to list."""
    uids = [sb.add_export("prospect", f"overlap-{i}.csv", size=1_000_000, seed=i) for i in range(EXPORTS)]
    ledger = Ledger(ledger_url)
    try:
        ledger.record_listed([(uid, "prospect") for uid in uids[: EXPORTS // 2]])
    finally:
        ledger.close()
    return uids


@pytest.mark.parametrize("encoura_sandbox_config", [SLOW_S3], indirect=True)
def test_two_runs_sqlite_deliver_each_export_once(encoura_sandbox: SandboxServer, tmp_path: Path) -> None:
    ledger_url = f"sqlite:///{tmp_path / 'state' / 'ledger.sqlite3'}"
    (tmp_path / "state").mkdir()
    uids = _exports(encoura_sandbox, ledger_url)
    out = tmp_path / "out"
    env = export_env(encoura_sandbox, tmp_path / "state", {"share": out.as_uri()}, ENCOURA_PRODUCT_KEYS="prospect")
    _run_two_at_once([env, env])
    _assert_exactly_once(encoura_sandbox, uids, out, ledger_url)


@pytest.mark.parametrize("encoura_sandbox_config", [SLOW_S3], indirect=True)
def test_two_workers_postgres_deliver_each_export_once(
    encoura_sandbox: SandboxServer, tmp_path: Path, postgres_url: str
) -> None:
    uids = _exports(encoura_sandbox, postgres_url)
    out = tmp_path / "out"
    envs = [
        export_env(
            encoura_sandbox,
            tmp_path / f"worker-{n}",
            {"share": out.as_uri()},
            LEDGER_URL=postgres_url,
            ENCOURA_PRODUCT_KEYS="prospect",
        )
        for n in (1, 2)
    ]
    _run_two_at_once(envs)
    _assert_exactly_once(encoura_sandbox, uids, out, postgres_url)
