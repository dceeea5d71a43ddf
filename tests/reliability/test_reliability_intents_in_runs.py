"""Open publish intents as whole runs meet them (issue 12): a dry run leaves them alone, and an
export whose renamed file Slate's importer took before the ledger knew is reported as "taken by the
importer" (console and deliveries artifact), never as a second delivery.

Each scenario first kills a real run at a crash point inside the publish (the intent is recorded,
the ledger does not know the outcome), then runs the CLI again the way a scheduler would.
"""

from __future__ import annotations

import json
import re
import signal
from typing import Any

from ledger import Ledger
from tests.reliability.harness import DirView, ImportedView, Rig, assert_invariants, run_cli, sftp_env


def _tree(view: DirView | ImportedView) -> dict[str, bytes]:
    """Every file under the destination's root, temp names included."""
    return {p.relative_to(view.root).as_posix(): p.read_bytes() for p in sorted(view.root.rglob("*")) if p.is_file()}


def _open_intents(rig: Rig) -> list[Any]:
    ledger = Ledger(rig.ledger_url)
    try:
        return ledger.open_intents()
    finally:
        ledger.close()


def _killed_at(rig: Rig, point: str) -> None:
    result = run_cli(rig.full_env(ENCOURA_SLATE_CRASHPOINT=point))
    assert result.returncode == -signal.SIGKILL, (result.stdout + result.stderr)[-3000:]


def _deliveries_artifact(output: str) -> list[dict[str, str]]:
    """The deliveries table artifact of the flow run whose output this is (read through the API)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterKey

    match = re.search(r"/flow-run/([0-9a-f-]{36})", output)
    assert match, output[-3000:]
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[match[1]]),
                key=ArtifactFilterKey(any_=["encoura-export-deliveries"]),
            )
        )
    assert found, "no deliveries artifact for the run"
    data = found[0].data
    return json.loads(data) if isinstance(data, str) else data  # type: ignore[return-value]


def test_dry_run_changes_nothing_at_destinations(rig: Rig) -> None:
    """A run killed right before its rename leaves a verified temp and an open intent. A dry run
    lists and reports only: the temp stays (neither renamed nor swept), the intent stays open, and
    the run says the intent would be settled. The next real run then delivers exactly once."""
    rig.add_export("prospect", size=2_000)
    _killed_at(rig, "publish.before_rename@1")
    assert len(_open_intents(rig)) == 1
    before = {view.name: _tree(view) for view in rig.views if isinstance(view, DirView)}
    assert any(name.rpartition("/")[2].startswith(".") for tree in before.values() for name in tree), before

    result = run_cli(rig.full_env(), "--dry-run")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert "1 open publish intent(s) would be settled" in output, output[-3000:]
    assert {view.name: _tree(view) for view in rig.views if isinstance(view, DirView)} == before
    assert len(_open_intents(rig)) == 1

    assert run_cli(rig.full_env()).returncode == 0
    assert not _open_intents(rig)
    assert_invariants(rig)


def test_a_file_the_importer_took_is_reported_taken_not_sent_again(
    rig: Rig, sftp_server, sftp_proxy, slate_importer
) -> None:  # type: ignore[no-untyped-def]
    """Killed right after the rename (the ledger does not know), then Slate imports the file: the next
    run finds neither the temp nor the final name, records the export delivered, and its console
    report and deliveries artifact say "taken by the importer" for it. It reached Slate once."""
    rig.env = sftp_env("slate", sftp_server, port=sftp_proxy.port)  # one destination: the kill hits its rename
    rig.views = [v for v in rig.views if v.name == "slate"]
    uid = rig.add_export("prospect", size=2_000)
    _killed_at(rig, "publish.after_rename@1")
    slate_importer.drain()  # Slate's scheduled import runs before the next run
    assert sum(slate_importer.arrivals.values()) == 1

    result = run_cli(rig.full_env())
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    status_lines = [line for line in result.stdout.splitlines() if uid in line and line.startswith("[")]
    assert status_lines and "taken by the importer" in status_lines[0], result.stdout[-3000:]
    assert "sent again" not in result.stdout, result.stdout[-3000:]
    rows = [r for r in _deliveries_artifact(output) if r["export_uid"] == uid]
    assert [r["status"] for r in rows] == ["taken by the importer"], rows
    assert "taken by the importer" in rows[0]["delivered_to"] and "sent again" not in rows[0]["delivered_to"]
    assert "1 delivered" in result.stdout  # counted as delivered

    slate_importer.drain()
    assert max(slate_importer.arrivals.values()) == 1, "the export reached Slate's importer twice"
    assert_invariants(rig)
