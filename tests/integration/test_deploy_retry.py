"""Retrying a failed export flow run (same flow run id, as the UI and `prefect flow-run retry` do)
finishes only what is left: nothing delivered twice, nothing skipped; with and without persisted
task results.

The first run fails for a realistic reason: one of two destinations is down (its folder path is
taken by a file). Then the destination comes back and the same flow run is retried.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ledger import Ledger
from sandbox.encoura import SandboxServer
from tests.integration.deploy_helpers import (
    REPO_ROOT,
    RUN_EXPORT_PRINT_ID,
    export_env,
    parse_marker,
    read_flow_run,
    run_python,
)


@pytest.mark.parametrize("persist_results", [False, True], ids=["no-result-persistence", "persisted-results"])
def test_retry_of_failed_run_delivers_only_the_rest(
    encoura_sandbox: SandboxServer, tmp_path: Path, persist_results: bool
) -> None:
    uids = [encoura_sandbox.add_export("prospect", f"retry-{i}.csv", seed=i) for i in range(3)]
    share, nas = tmp_path / "share", tmp_path / "nas"
    # Destination down: every file's folder on the NAS is blocked (its root exists, or the run would
    # stop at once as misconfigured, exit 2).
    nas.mkdir()
    (nas / "prospect").write_text("not a folder: the NAS share is broken")
    env = export_env(
        encoura_sandbox,
        tmp_path / "state",
        {"share": share.as_uri(), "nas": nas.as_uri()},
        ENCOURA_PRODUCT_KEYS="prospect",
        DESTINATIONS__NAS__PATH_TEMPLATE="{product_key}/{filename}",
        TASK_RETRIES="0",
        PREFECT_RESULTS_PERSIST_BY_DEFAULT=str(persist_results).lower(),
        PREFECT_LOCAL_STORAGE_PATH=str(tmp_path / "results"),
    )

    first = run_python(RUN_EXPORT_PRINT_ID, env)
    assert parse_marker(first.stdout, "FLOW_RUN_STATE") == "FAILED", first.stdout[-3000:] + first.stderr[-3000:]
    flow_run_id = parse_marker(first.stdout, "FLOW_RUN_ID")
    assert sorted(p.name for p in share.iterdir()) == [f"retry-{i}.csv" for i in range(3)]

    (nas / "prospect").unlink()  # the NAS is back
    retry = subprocess.run(
        [sys.executable, "-m", "prefect", "flow-run", "retry", flow_run_id, "--entrypoint",
         "flows/encoura_export.py:encoura_export"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert retry.returncode == 0, retry.stdout[-3000:] + retry.stderr[-3000:]

    run = read_flow_run(flow_run_id)
    assert run.state is not None and run.state.is_completed(), run.state
    assert run.run_count == 2, "the same flow run ran again, not a new one"
    for folder in (share, nas):
        assert sorted(p.name for p in folder.rglob("*") if p.is_file()) == [f"retry-{i}.csv" for i in range(3)]
    ledger = Ledger(f"sqlite:///{tmp_path / 'state' / 'ledger.sqlite3'}")
    try:
        assert {r.uid: r.status for r in ledger.all_exports()} == dict.fromkeys(uids, "delivered")
        attempts = {(d.export_uid, d.destination): (d.status, d.attempts) for d in ledger.all_deliveries()}
    finally:
        ledger.close()
    # share: published once (first run); nas: failed once, then published once (the retry).
    assert attempts == {
        **{(u, "share"): ("delivered", 1) for u in uids},
        **{(u, "nas"): ("delivered", 2) for u in uids},
    }
    # The retry used the staged copies: no export was fetched from Encoura twice.
    assert encoura_sandbox.snapshot()["download_url_requests"] == dict.fromkeys(uids, 1)
