"""The failed-run automation documented in docs/operations.md is accepted by a real Prefect server
through the documented command (`prefect automation create --from-file`)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

from prefect import get_client
from prefect.blocks.notifications import SlackWebhook

from tests.integration.deploy_helpers import REPO_ROOT


def _documented_automation() -> str:
    text = (REPO_ROOT / "docs" / "operations.md").read_text()
    match = re.search(r"`notify-failed-runs\.yaml`:\s*```yaml\n(.*?)```", text, re.S)
    assert match, "docs/operations.md shows notify-failed-runs.yaml"
    return match.group(1)


def test_documented_failure_automation_is_accepted(tmp_path: Path) -> None:
    block_name = f"ops-alerts-{uuid.uuid4().hex[:8]}"
    block_id = SlackWebhook(url="https://hooks.slack.com/services/T000/B000/XXXX").save(block_name)
    spec = _documented_automation().replace("00000000-0000-0000-0000-000000000000", str(block_id))
    path = tmp_path / "notify-failed-runs.yaml"
    path.write_text(spec)
    result = subprocess.run(
        [sys.executable, "-m", "prefect", "automation", "create", "--from-file", str(path)],
        cwd=REPO_ROOT, env=dict(os.environ), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    with get_client(sync_client=True) as client:
        (automation,) = client.read_automations_by_name("encoura-slate failed runs")
    assert automation.enabled
    assert set(automation.trigger.expect) == {"prefect.flow-run.Failed", "prefect.flow-run.Crashed"}
    assert automation.actions[0].block_document_id == block_id
