"""The export flow end to end over real HTTP (sandbox) into a local folder and a real SFTP server."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from ledger import Ledger
from sandbox.encoura import SandboxServer
from tests.support.export_helpers import (
    files_under,
    local_destination_env,
    run_export_cli,
    run_export_in_process,
    sftp_destination_env,
    sha256,
)


def _exports(sb: SandboxServer) -> dict[str, bytes]:
    return {uid: rec.content for uid, rec in sb.state.exports.items()}


def _assert_exactly_once(root: Path, expected: dict[str, bytes]) -> None:
    """Every export's bytes appear exactly once under root, and nothing else (no temp files) does."""
    found = files_under(root)
    assert sorted(sha256(b) for b in found.values()) == sorted(sha256(b) for b in expected.values()), found.keys()
    assert not [name for name in found if Path(name).name.startswith(".")]


@pytest.fixture
def base_env(tmp_path: Path, encoura_sandbox: SandboxServer) -> dict[str, str]:
    return {**encoura_sandbox.env(), "STATE_DIR": str(tmp_path / "state")}


def test_delivers_every_export_exactly_once_to_folder_and_sftp(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, seeded_sandbox: SandboxServer, sftp_server
) -> None:
    env = {
        **seeded_sandbox.env(),
        "STATE_DIR": str(tmp_path / "state"),
        **local_destination_env("share", tmp_path / "share", "{product_key}/{filename}"),
        **sftp_destination_env("slate", sftp_server),
    }
    state = run_export_in_process(monkeypatch, env)
    assert state.is_completed(), state.message
    expected = _exports(seeded_sandbox)
    _assert_exactly_once(tmp_path / "share", expected)
    _assert_exactly_once(sftp_server.root / "incoming", expected)
    # staging is emptied once every destination has a file
    assert files_under(tmp_path / "state" / "staging") == {}

    # A second run finds nothing new and delivers nothing twice.
    state = run_export_in_process(monkeypatch, env)
    assert state.is_completed()
    _assert_exactly_once(tmp_path / "share", expected)
    _assert_exactly_once(sftp_server.root / "incoming", expected)
    assert sftp_server.connections_opened <= 2 + 1  # one connection per run (plus none per file)


def test_same_named_exports_stay_distinct(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, encoura_sandbox: SandboxServer, base_env: dict[str, str]
) -> None:
    a = encoura_sandbox.add_export("prospect", "Prospects.csv", b"id,zip\n1,\"01234\"\n")
    b = encoura_sandbox.add_export("prospect", "Prospects.csv", b"id,zip\n2,\"09876\"\n")
    c = encoura_sandbox.add_export("inquiry", "Prospects.csv", b"id,zip\n3,\"00001\"\n")
    env = {**base_env, **local_destination_env("share", tmp_path / "share")}
    assert run_export_in_process(monkeypatch, env).is_completed()
    found = files_under(tmp_path / "share")
    assert len(found) == 3 and "Prospects.csv" in found
    assert sorted(found.values()) == sorted(encoura_sandbox.state.exports[u].content for u in (a, b, c))
    names = {r.file_name for r in Ledger(f"sqlite:///{tmp_path / 'state' / 'ledger.sqlite3'}").all_exports()}
    assert len(names) == 3


def test_first_run_task_runs_are_named_after_their_files(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, encoura_sandbox: SandboxServer, base_env: dict[str, str]
) -> None:
    """The file name comes with the download URL, after the task run was named: read back through the
    Prefect API, each delivery's task run is renamed `<product> <file name> (<uid>)` on its first run."""
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    uids = {
        encoura_sandbox.add_export("prospect", "Prospects_2026.csv", b"id\n1\n"): "prospect",
        encoura_sandbox.add_export("inquiry", "Inquiries_2026.csv", b"id\n2\n"): "inquiry",
    }
    env = {**base_env, **local_destination_env("share", tmp_path / "share")}
    state = run_export_in_process(monkeypatch, env)
    assert state.is_completed()
    rows = {r.uid: r for r in Ledger(f"sqlite:///{tmp_path / 'state' / 'ledger.sqlite3'}").all_exports()}
    suffixes = tuple(f"({uid})" for uid in uids)

    def deliveries() -> list[Any]:
        """The delivery task runs as the server has recorded them (it records state events as they arrive)."""
        with get_client(sync_client=True) as client:
            runs = client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[state.state_details.flow_run_id]))
            )
        return [run for run in runs if run.name.endswith(suffixes)]

    runs = deliveries()
    deadline = time.monotonic() + 60  # not a timing assertion: wait until the final states are recorded
    while time.monotonic() < deadline and not (len(runs) == 2 and all(r.state_type == "COMPLETED" for r in runs)):
        time.sleep(0.2)
        runs = deliveries()
    names = {run.name for run in runs}
    assert names == {f"{product} {rows[uid].file_name} ({uid})" for uid, product in uids.items()}
    assert {rows[uid].file_name for uid in uids} == {"Prospects_2026.csv", "Inquiries_2026.csv"}


def test_rerun_after_failed_downloads_finishes_without_duplicates(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, encoura_sandbox: SandboxServer, base_env: dict[str, str]
) -> None:
    for i in range(4):
        encoura_sandbox.add_export("score-reporter", f"ACT-Org-0101202{i}-1200.csv", f"id\n{i}\n".encode() * 500)
    env = {**base_env, **local_destination_env("share", tmp_path / "share"), "TASK_RETRIES": "0"}
    encoura_sandbox.configure(truncate_rate=1.0)  # every download is cut short
    state = run_export_in_process(monkeypatch, env)
    assert state.is_failed()
    assert files_under(tmp_path / "share") == {}
    # Listing consumed them: nothing is NotDelivered any more, yet the ledger still owes all four.
    assert all(rec.status == "Delivered" for rec in encoura_sandbox.state.exports.values())
    encoura_sandbox.configure(truncate_rate=0.0)
    state = run_export_in_process(monkeypatch, env)
    assert state.is_completed(), state.message
    _assert_exactly_once(tmp_path / "share", _exports(encoura_sandbox))


def test_survives_faults_expiring_tokens_and_one_time_urls(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, encoura_sandbox: SandboxServer, base_env: dict[str, str]
) -> None:
    for i in range(6):
        encoura_sandbox.add_export("inquiry", f"inquiries-{i}.csv", f"id,name\n{i},Student {i}\n".encode() * 200)
    encoura_sandbox.configure(
        fail_rate=0.3, fail_statuses=(500, 502, 503, 429), retry_after_seconds=0, token_ttl_seconds=1.0,
        url_ttl_seconds=5.0, truncate_rate=0.2, seed=7,
    )
    env = {
        **base_env,
        **local_destination_env("share", tmp_path / "share"),
        "ENCOURA_PRODUCT_KEYS": "inquiry",
        "ENCOURA_TOKEN_LIFETIME_SECONDS": "2",
        "TASK_RETRIES": "6",
    }
    stop = threading.Event()

    def expire_tokens_while_running() -> None:
        while not stop.wait(0.3):
            encoura_sandbox.state.expire_tokens()

    expirer = threading.Thread(target=expire_tokens_while_running, daemon=True)
    expirer.start()
    try:
        state = run_export_in_process(monkeypatch, env)
    finally:
        stop.set()
        expirer.join()
    assert state.is_completed(), state.message
    _assert_exactly_once(tmp_path / "share", _exports(encoura_sandbox))
    snap = encoura_sandbox.state.snapshot()
    assert sum(snap["faults_injected"].values()) > 0  # faults really happened
    assert sum(snap["s3_truncated"].values()) > 0
    assert snap["login_attempts"] + snap["refresh_count"] >= 2  # tokens really expired mid-run


def test_wrong_credentials_one_clear_error_one_login_attempt(
    tmp_path: Path, encoura_sandbox: SandboxServer, base_env: dict[str, str]
) -> None:
    encoura_sandbox.add_export("prospect", "p.csv", b"a\n1\n")
    env = {**base_env, **local_destination_env("share", tmp_path / "share"), "ENCOURA_PASSWORD": "wrong-password"}
    result = run_export_cli(env)
    assert result.returncode == 2, result.stderr
    assert "Encoura refused the login" in result.stderr
    assert "Traceback" not in result.stderr
    assert "wrong-password" not in result.stdout + result.stderr
    assert encoura_sandbox.state.login_attempts == 1
    assert encoura_sandbox.state.exports and all(
        r.status == "NotDelivered" for r in encoura_sandbox.state.exports.values()
    )


def test_missing_settings_exit_2_before_any_network_call(encoura_sandbox: SandboxServer, tmp_path: Path) -> None:
    env = {"ENCOURA_BASE_URL": encoura_sandbox.base_url, "STATE_DIR": str(tmp_path)}
    result = run_export_cli(env)
    assert result.returncode == 2
    for name in ("ENCOURA_API_KEY", "ENCOURA_USERNAME", "ENCOURA_PASSWORD", "DESTINATIONS__<NAME>__URL"):
        assert name in result.stderr
    assert "Traceback" not in result.stderr
    assert encoura_sandbox.state.login_attempts == 0


def test_dry_run_records_but_moves_nothing_then_real_run_delivers(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, encoura_sandbox: SandboxServer, base_env: dict[str, str]
) -> None:
    encoura_sandbox.add_export("prospect", "p.csv", b"a\n1\n")
    env = {**base_env, **local_destination_env("share", tmp_path / "share")}
    state = run_export_in_process(monkeypatch, env, dry_run=True)
    assert state.is_completed()
    assert files_under(tmp_path / "share") == {}
    assert not encoura_sandbox.state.snapshot()["download_url_requests"]
    assert run_export_in_process(monkeypatch, env).is_completed()
    _assert_exactly_once(tmp_path / "share", _exports(encoura_sandbox))


def test_redeliver_fetches_a_delivered_export_again(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, encoura_sandbox: SandboxServer, base_env: dict[str, str]
) -> None:
    uid = encoura_sandbox.add_export("prospect", "p.csv", b"a\n1\n")
    env = {**base_env, **local_destination_env("share", tmp_path / "share")}
    assert run_export_in_process(monkeypatch, env).is_completed()
    (tmp_path / "share" / "p.csv").unlink()  # Slate lost it
    assert run_export_in_process(monkeypatch, env, redeliver=[uid]).is_completed()
    assert files_under(tmp_path / "share") == {"p.csv": b"a\n1\n"}


def test_sandbox_demo_cli_delivers_into_a_local_folder(tmp_path: Path) -> None:
    result = run_export_cli({"CWD": str(tmp_path)}, "--sandbox")
    assert result.returncode == 0, result.stdout + result.stderr
    delivered = files_under(tmp_path / "demo-output" / "slate-incoming")
    assert len(delivered) >= 4
    assert "delivered" in result.stdout
