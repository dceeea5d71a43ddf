"""Secrets from Prefect Secret blocks: `prefect-secret:<block-name>` in a secret setting is resolved at
run time, and the value never shows up in flow run parameters, logs (as stored by the server) or
artifacts."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from prefect.blocks.system import Secret

from flows.serve import EXTRA_LOGGERS
from sandbox.encoura import SandboxServer
from tests.integration.deploy_helpers import (
    RUN_EXPORT_PRINT_ID,
    export_env,
    flow_run_artifacts,
    parse_marker,
    read_flow_run,
    run_python,
    wait_for_logs_flushed,
)
from tests.support.sftp_server import SFTPTestServer


def test_passwords_from_secret_blocks_never_leak(
    encoura_sandbox: SandboxServer, sftp_server: SFTPTestServer, tmp_path: Path
) -> None:
    sftp_server.password = f"sftp-{uuid.uuid4().hex}"  # unique, so any occurrence anywhere is a leak
    encoura_password = encoura_sandbox.credentials["password"]
    suffix = uuid.uuid4().hex[:8]
    Secret(value=sftp_server.password).save(f"slate-sftp-password-{suffix}", overwrite=True)
    Secret(value=encoura_password).save(f"encoura-password-{suffix}", overwrite=True)
    (sftp_server.root / "incoming").mkdir()
    encoura_sandbox.add_export("prospect", "secret-test.csv")
    env = export_env(
        encoura_sandbox,
        tmp_path / "state",
        {"slate": sftp_server.url("/incoming")},
        ENCOURA_PRODUCT_KEYS="prospect",
        ENCOURA_PASSWORD=f"prefect-secret:encoura-password-{suffix}",
        DESTINATIONS__SLATE__PASSWORD=f"prefect-secret:slate-sftp-password-{suffix}",
        DESTINATIONS__SLATE__HOST_KEY=sftp_server.host_key_line,
        # What prefect.yaml and flows.serve set: our modules' logs reach the server too, so they are checked.
        PREFECT_LOGGING_EXTRA_LOGGERS=EXTRA_LOGGERS,
    )

    result = run_python(RUN_EXPORT_PRINT_ID, env)

    output = result.stdout + result.stderr
    assert parse_marker(result.stdout, "FLOW_RUN_STATE") == "COMPLETED", output[-4000:]
    assert (sftp_server.root / "incoming" / "secret-test.csv").is_file()
    flow_run_id = parse_marker(result.stdout, "FLOW_RUN_ID")
    secrets = [sftp_server.password, encoura_password]

    run = read_flow_run(flow_run_id)
    stored_run = json.dumps(run.model_dump(mode="json"))
    logs = wait_for_logs_flushed(flow_run_id, "1 delivered, 0 failed")
    assert any("delivered to slate" in line for line in logs), "\n".join(logs)  # our modules' lines too
    artifacts = [json.dumps(a.model_dump(mode="json")) for a in flow_run_artifacts(flow_run_id)]
    assert artifacts, "the run made its report artifacts"
    for secret in secrets:
        assert secret not in stored_run, "secret in the flow run (parameters, state message)"
        assert not [line for line in logs if secret in line], "secret in the run's logs"
        assert not [a for a in artifacts if secret in a], "secret in an artifact"
        assert secret not in output, "secret printed by the process"
