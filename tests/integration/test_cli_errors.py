"""Every failure a user can meet ends in one line and the documented exit code: the real CLI in a
subprocess against real peers (the session Prefect server, the Encoura sandbox, a real SFTP server,
closed ports), checked on the screen and in the run's logs read back through the Prefect API."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest

from sandbox.encoura import SandboxServer
from tests.support.export_helpers import local_destination_env, run_export_cli, sftp_destination_env


def closed_port() -> int:
    """A port nothing listens on: bound, then released."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def latest_flow_run_logs() -> list[str]:
    """The newest flow run's log messages (tests here run one at a time), as the Prefect UI shows them."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.client.schemas.sorting import FlowRunSort

    async def read() -> list[str]:
        async with get_client() as client:
            runs = await client.read_flow_runs(sort=FlowRunSort.START_TIME_DESC, limit=1)
            assert runs, "no flow run recorded"
            await asyncio.sleep(1.5)  # logs are shipped in batches
            logs = await client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[runs[0].id])))
            return [log.message for log in logs]

    return asyncio.run(read())


def assert_one_clear_line(result, code: int, *names: str) -> str:  # type: ignore[no-untyped-def]
    printed = result.stdout + result.stderr
    assert result.returncode == code, printed
    assert "Traceback" not in printed, printed
    for name in names:
        assert name in result.stderr, result.stderr
    return printed


@pytest.fixture
def base_env(tmp_path: Path, encoura_sandbox: SandboxServer) -> dict[str, str]:
    encoura_sandbox.add_export("prospect", "p.csv", b"a\n1\n")
    return {**encoura_sandbox.env(), "STATE_DIR": str(tmp_path / "state")}


def test_state_dir_is_a_file(tmp_path: Path, base_env: dict[str, str]) -> None:
    (tmp_path / "state").write_text("not a folder")
    env = {**base_env, **local_destination_env("share", tmp_path / "share")}
    assert_one_clear_line(run_export_cli(env), 2, str(tmp_path / "state"), "STATE_DIR")
    logs = latest_flow_run_logs()
    assert any("STATE_DIR" in m for m in logs), logs
    assert not any("Traceback" in m for m in logs), logs


def test_local_destination_path_is_a_file(tmp_path: Path, base_env: dict[str, str]) -> None:
    (tmp_path / "share").write_text("a file where the folder should be")
    env = {**base_env, **local_destination_env("share", tmp_path / "share")}
    result = run_export_cli(env)
    printed = result.stdout + result.stderr
    assert result.returncode in (1, 2), printed
    assert "Traceback" not in printed, printed
    assert str(tmp_path / "share") in printed or "share" in result.stderr
    logs = latest_flow_run_logs()
    assert not any("Traceback" in m for m in logs), logs


def test_sftp_port_closed(tmp_path: Path, base_env: dict[str, str], sftp_server) -> None:  # type: ignore[no-untyped-def]
    env = {**base_env, **sftp_destination_env("slate", sftp_server)}
    port = closed_port()
    env["DESTINATIONS__SLATE__URL"] = f"sftp://{sftp_server.username}@127.0.0.1:{port}/incoming"
    result = run_export_cli(env)
    printed = result.stdout + result.stderr
    assert result.returncode == 1, printed
    assert "Traceback" not in printed, printed
    assert f"127.0.0.1:{port}" in result.stderr, printed
    assert "ImportError" not in result.stderr, printed
    print(result.stderr)  # the message, for the troubleshooting notes
    logs = latest_flow_run_logs()
    assert not any("Traceback" in m for m in logs), logs


def test_sftp_password_refused_names_the_setting(tmp_path: Path, base_env: dict[str, str], sftp_server) -> None:  # type: ignore[no-untyped-def]
    env = {**base_env, **sftp_destination_env("slate", sftp_server), "DESTINATIONS__SLATE__PASSWORD": "wrong-pw"}
    result = run_export_cli(env)
    printed = result.stdout + result.stderr
    assert result.returncode in (1, 2), printed
    assert "Traceback" not in printed, printed
    assert "wrong-pw" not in printed
    assert "DESTINATIONS__SLATE__" in printed, printed
    print(result.stderr)  # the message, for the troubleshooting notes
    logs = latest_flow_run_logs()
    assert not any("Traceback" in m for m in logs), logs


def test_ledger_postgres_down(tmp_path: Path, base_env: dict[str, str]) -> None:
    port = closed_port()
    env = {
        **base_env,
        **local_destination_env("share", tmp_path / "share"),
        "LEDGER_URL": f"postgresql+psycopg://ledger:s3cret-pw@127.0.0.1:{port}/ledger",
    }
    printed = assert_one_clear_line(run_export_cli(env), 1, "LEDGER_URL", "PostgreSQL")
    assert "s3cret-pw" not in printed
    logs = latest_flow_run_logs()
    assert any("LEDGER_URL" in m for m in logs), logs
    assert not any("Traceback" in m or "s3cret-pw" in m for m in logs), logs


def test_sqlite_ledger_unwritable(tmp_path: Path, base_env: dict[str, str]) -> None:
    # Tests run as root here, so permissions cannot make a file unwritable; a file where the
    # database's folder should be makes SQLite fail to open it the same way.
    (tmp_path / "blocker").write_text("x")
    env = {
        **base_env,
        **local_destination_env("share", tmp_path / "share"),
        "LEDGER_URL": f"sqlite:///{tmp_path / 'blocker' / 'ledger.sqlite3'}",
    }
    assert_one_clear_line(run_export_cli(env), 2, "LEDGER_URL")


def test_debug_shows_the_traceback(tmp_path: Path, base_env: dict[str, str]) -> None:
    (tmp_path / "state").write_text("not a folder")
    env = {**base_env, **local_destination_env("share", tmp_path / "share")}
    result = run_export_cli(env, "--debug")
    assert result.returncode == 2
    assert "Traceback" in result.stdout + result.stderr


def test_per_file_lines_reach_the_prefect_ui_and_log_file(tmp_path: Path, base_env: dict[str, str]) -> None:
    log_file = tmp_path / "logs" / "encoura.log"
    env = {**base_env, **local_destination_env("share", tmp_path / "share"), "LOG_FILE": str(log_file)}
    result = run_export_cli(env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    logs = latest_flow_run_logs()
    assert any("delivered to share" in m and "p.csv" in m for m in logs), logs
    assert any("staged as p.csv" in m for m in logs), logs
    assert log_file.stat().st_mode & 0o777 == 0o600
    assert "delivered to share" in log_file.read_text()


def test_sandbox_demo_prints_no_traceback(tmp_path: Path) -> None:
    """`make demo` in a fresh clone: no .state and no demo-output yet, both made by the run itself."""
    assert not (tmp_path / ".state").exists() and not (tmp_path / "demo-output").exists()
    result = run_export_cli({"CWD": str(tmp_path)}, "--sandbox")
    printed = result.stdout + result.stderr
    assert result.returncode == 0, printed
    assert "Traceback" not in printed
    for noise in ("Warning", "database is locked", "ERROR"):
        assert noise not in printed, printed
    assert any((tmp_path / "demo-output" / "slate-incoming").rglob("*.csv"))
    assert (tmp_path / ".state" / "sandbox").is_dir()


def test_sftp_host_key_changed(tmp_path: Path, base_env: dict[str, str], sftp_server) -> None:  # type: ignore[no-untyped-def]
    import asyncssh

    other = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode().split()
    env = {**base_env, **sftp_destination_env("slate", sftp_server)}
    env["DESTINATIONS__SLATE__HOST_KEY"] = f"{other[0]} {other[1]}"
    result = run_export_cli(env)
    printed = result.stdout + result.stderr
    assert result.returncode in (1, 2), printed
    assert "Traceback" not in printed, printed
    assert "HOST_KEY" in result.stderr or "host key" in result.stderr.lower(), printed
    print(result.stderr)  # the message, for the troubleshooting notes
    logs = latest_flow_run_logs()
    assert not any("Traceback" in m for m in logs), logs
