"""A POST that Encoura acted on but answered 5xx is not sent again blindly (one retry policy, method-aware).

The sandbox's `fail_after_acting` creates the upload record and then answers 502, as a backend that
finished behind a gateway that timed out does. The shared retry policy must hand that answer back
instead of re-posting (which would create a second record per retry); GETs on the same faulty sandbox
are still retried. The next run, with Encoura healthy, sends the file once.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from common import exit_codes
from sandbox.encoura import SandboxServer
from tests.integration.test_upload_flow import CSV, run, upload_env


def test_create_answered_5xx_after_acting_is_not_reposted(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, encoura_sandbox: SandboxServer
) -> None:
    sandbox = encoura_sandbox
    sandbox.configure(
        upload_status_steps=1,
        fail_rate=1.0,
        fail_statuses=[502],
        fail_endpoints=["upload_create"],
        fail_after_acting=True,
    )
    folder = tmp_path / "outgoing"
    folder.mkdir()
    (folder / "enrollment_ok.csv").write_bytes(CSV)
    env = {
        **upload_env(sandbox, tmp_path / "state", ENCOURA_MAX_ATTEMPTS="5"),
        "UPLOAD_SOURCE": f"{folder.as_uri()}/enrollment_*",
    }

    assert run(monkeypatch, env) == exit_codes.WORK_FAILED
    counters = sandbox.state.counters
    assert counters["upload_create"] == 1, "the POST was re-sent after Encoura had acted on it"
    assert len(sandbox.state.uploads) == 1  # the one record the lost answer created
    assert sandbox.state.uploads_received == []  # no bytes went anywhere
    assert (folder / "enrollment_ok.csv").exists()  # still waiting in the source, not archived or failed

    sandbox.configure(fail_rate=0.0, fail_after_acting=False)
    assert run(monkeypatch, env) == exit_codes.OK
    assert counters["upload_create"] == 2
    assert [r.file_name for r in sandbox.state.uploads_received] == ["enrollment_ok.csv"]
    assert (folder / "processed" / "enrollment_ok.csv").read_bytes() == CSV


def test_idempotent_calls_are_still_retried_on_5xx(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, encoura_sandbox: SandboxServer
) -> None:
    """The same policy still retries GETs (status polls) and the login through 5xx answers."""
    sandbox = encoura_sandbox
    sandbox.configure(
        upload_status_steps=1, fail_rate=0.5, fail_statuses=[502, 503], fail_endpoints=["file_status", "login"]
    )
    folder = tmp_path / "outgoing"
    folder.mkdir()
    (folder / "enrollment_ok.csv").write_bytes(CSV)
    env = {
        **upload_env(sandbox, tmp_path / "state", ENCOURA_MAX_ATTEMPTS="10"),
        "UPLOAD_SOURCE": f"{folder.as_uri()}/enrollment_*",
    }
    assert run(monkeypatch, env) == exit_codes.OK
    assert sum(sandbox.state.faults_injected.values()) >= 1
    assert sandbox.state.counters["upload_create"] == 1
