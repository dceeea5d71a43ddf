"""Every outage and every mistake ends in one clear line (issue 13), shown through the real command line.

Each case runs `python -m flows.<job>` in a subprocess against a real peer on this machine: a closed
port, a name under `.invalid` (RFC 2606: it never resolves), a server that accepts and never answers,
a self-signed HTTPS server standing in for a TLS-inspecting firewall (and the same middlebox relaying
to the sandbox once `*_CA_BUNDLE` trusts it), a proxy port that refuses, an HTML maintenance page, a
refused key, a real SFTP server, a tmpfs that is full or read-only, a PostgreSQL port nobody serves.

Each asserts what the issue promises: the documented exit code (1 try again, 2 fix the settings), no
"Traceback" anywhere in what was printed, the host, setting or folder named on the screen, and, for
the Prefect UI half, the same line (and no traceback) in the run's logs read back through the API.

Tight HTTP settings (two attempts, a one-second timeout) keep every case to seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from sandbox.encoura import SandboxServer
from tests.support.export_helpers import FAST_ENV, REPO, local_destination_env, sftp_destination_env
from tests.support.tls_server import LOGIN_OK, ForwardTo, serve, silent_server

# Fast failure: a second attempt proves the retry path runs, a short timeout keeps the timeout case quick.
TIGHT_HTTP = {
    "ENCOURA_MAX_ATTEMPTS": "2",
    "ENCOURA_TIMEOUT_SECONDS": "2",
    "CANVAS_RETRY_ATTEMPTS": "2",
    "CANVAS_RETRY_BACKOFF": "0.01",
    "TASK_RETRIES": "0",
}
DNS_FAILS = "api-datalab.encoura.invalid"
LOG_RECORD = re.compile(r"^\d\d:\d\d:\d\d\.\d+ \| ")  # Prefect's console format
MAINTENANCE = (503, "text/html", b"<html><body><h1>Down for maintenance</h1></body></html>")


def closed_port() -> int:
    """A port nothing listens on: bound, then released."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_module(module: str, env: dict[str, str], *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """`python -m <module>` as a scheduler runs it: only this environment (plus PATH and the Prefect server).

    Runs in `cwd` (a test folder, so no stray `.env` is read) with this checkout first on the path."""
    keep = {k: v for k, v in os.environ.items() if k.startswith(("PREFECT_", "PATH", "HOME", "LANG"))}
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=cwd,
        env={**keep, **FAST_ENV, **TIGHT_HTTP, "PYTHONPATH": str(REPO), **env},
        capture_output=True,
        text=True,
        timeout=180,
    )


def flow_run_logs(printed: str, expect: str) -> list[str]:
    """The log messages of the flow run this output belongs to, as the Prefect UI shows them.

    The run is found by the name Prefect printed ("Beginning flow run 'x' ..."); logs are shipped in
    batches, so read until `expect` is among them (or give up after a while and return what is there)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName, LogFilter, LogFilterFlowRunId

    found = re.search(r"Beginning flow run '([^']+)'", printed)
    assert found, f"no flow run started:\n{printed}"

    async def read() -> list[str]:
        async with get_client() as client:
            runs = await client.read_flow_runs(flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=[found[1]])))
            assert runs, f"flow run {found[1]!r} not on the server"
            messages: list[str] = []
            for _ in range(40):
                logs = await client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[runs[0].id])))
                messages = [log.message for log in logs]
                if any(expect in m for m in messages):
                    break
                await asyncio.sleep(0.25)
            return messages

    return asyncio.run(read())


def assert_one_clear_line(
    result: subprocess.CompletedProcess[str], code: int | None, names: tuple[str, ...], *, ui: bool = True
) -> str:
    """Exit code, no traceback anywhere, every name in the command's own block (the lines that are not
    timestamped log records); with `ui`, one log message of the run carrying every name, and no traceback.

    Returns that block: what a person reads."""
    printed = result.stdout + result.stderr
    if code is not None:
        assert result.returncode == code, printed
    else:
        assert result.returncode != 0, printed
    assert "Traceback" not in printed, printed
    block = "\n".join(line for line in printed.splitlines() if not LOG_RECORD.match(line))
    for name in names:
        assert name in block, f"{name!r} not named by the command:\n{printed}"
    if ui:
        logs = flow_run_logs(printed, names[0])
        assert any(all(name in m for name in names) for m in logs), logs
        assert not any("Traceback" in m for m in logs), logs
    return block


# ----------------------------------------------------------------------------- HTTP peers
@dataclass
class Peer:
    """An HTTP peer standing for one outage: the URL to point a client at, and what the message must name."""

    url: str
    names: tuple[str, ...]
    env: dict[str, str]


@pytest.fixture(scope="module")
def tls_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tls")


@pytest.fixture(scope="module")
def untrusted_server(tls_folder: Path) -> Iterator[str]:
    with serve(lambda method, path: LOGIN_OK, tls_folder=tls_folder) as server:
        yield server.base_url


@pytest.fixture(scope="module")
def maintenance_server() -> Iterator[str]:
    with serve(lambda method, path: MAINTENANCE) as server:
        yield server.base_url


@pytest.fixture(scope="module")
def refusing_server() -> Iterator[str]:
    """Answers 401 to the API key header and 403 to a login, like Encoura and Canvas do."""

    def answer(method: str, path: str) -> tuple[int, str, bytes]:
        return (401, "application/json", b'{"message": "Unauthorized", "errors": [{"message": "Invalid token"}]}')

    with serve(answer) as server:
        yield server.base_url


@pytest.fixture(scope="module")
def hanging_server() -> Iterator[str]:
    with silent_server() as where:
        yield where


def http_peer(case: str, request: pytest.FixtureRequest, service: str) -> Peer:
    """The peer for `case`, with the names its message must carry for `service` (ENCOURA or CANVAS)."""
    url_setting = f"{service}_BASE_URL"
    if case == "refused":
        port = closed_port()
        return Peer(f"http://127.0.0.1:{port}/v1", (f"127.0.0.1:{port}", "refused", url_setting), {})
    if case == "dns":
        return Peer(f"https://{DNS_FAILS}/v1", (DNS_FAILS, "DNS", url_setting), {})
    if case == "timeout":
        where = request.getfixturevalue("hanging_server")
        names = (where, "no answer in time") + (("ENCOURA_TIMEOUT_SECONDS",) if service == "ENCOURA" else ())
        return Peer(f"http://{where}/v1", names, {})
    if case == "untrusted":
        url = request.getfixturevalue("untrusted_server")
        return Peer(url, ("127.0.0.1", "not trusted", f"{service}_CA_BUNDLE"), {})
    if case == "proxy":
        port = closed_port()
        return Peer(
            "https://api-datalab.encoura.org/v1" if service == "ENCOURA" else "https://school.instructure.com",
            ("proxy", f"127.0.0.1:{port}", "HTTPS_PROXY"),
            {"HTTPS_PROXY": f"http://127.0.0.1:{port}", "NO_PROXY": "127.0.0.1,localhost"},
        )
    if case == "maintenance":
        url = request.getfixturevalue("maintenance_server")
        return Peer(url, ("127.0.0.1", "maintenance"), {})
    raise AssertionError(case)


OUTAGES = ["refused", "dns", "timeout", "untrusted", "proxy", "maintenance"]
# An outage is worth retrying later (1); a certificate nobody trusts needs the CA bundle setting (2).
OUTAGE_CODE = {"untrusted": 2}


@pytest.fixture
def export_env(tmp_path: Path, encoura_sandbox: SandboxServer) -> dict[str, str]:
    encoura_sandbox.add_export("prospect", "p.csv", b"a\n1\n")
    return {
        **encoura_sandbox.env(),
        "STATE_DIR": str(tmp_path / "state"),
        **local_destination_env("share", tmp_path / "share"),
    }


@pytest.mark.parametrize("case", OUTAGES)
def test_encoura_export_outage(
    case: str, request: pytest.FixtureRequest, tmp_path: Path, export_env: dict[str, str]
) -> None:
    peer = http_peer(case, request, "ENCOURA")
    env = {**export_env, "ENCOURA_BASE_URL": peer.url, **peer.env}
    result = run_module("flows.encoura_export", env, cwd=tmp_path)
    block = assert_one_clear_line(result, OUTAGE_CODE.get(case, 1), peer.names)
    print(block)  # the message, for the troubleshooting page
    assert not (tmp_path / "share").exists() or not any((tmp_path / "share").rglob("*.csv"))


@pytest.mark.parametrize("case", OUTAGES)
def test_encoura_upload_outage(case: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    peer = http_peer(case, request, "ENCOURA")
    source = tmp_path / "outgoing"
    source.mkdir()
    (source / "enrollment_1.csv").write_bytes(b'"id","name"\r\n"1","Ana"\r\n')
    env = {
        "ENCOURA_BASE_URL": peer.url,
        "ENCOURA_API_KEY": "k-123",
        "ENCOURA_USERNAME": "u",
        "ENCOURA_PASSWORD": "p-secret",
        "ENCOURA_ORGANIZATION_UID": "org-1",
        "STATE_DIR": str(tmp_path / "state"),
        "UPLOAD_SOURCE": (source / "*.csv").as_uri(),
        "UPLOAD_PRODUCT_TYPE": "enrollment",
        **peer.env,
    }
    result = run_module("flows.encoura_upload", env, cwd=tmp_path)
    assert_one_clear_line(result, OUTAGE_CODE.get(case, 1), peer.names)
    assert (source / "enrollment_1.csv").exists()  # nothing sent, nothing moved


@pytest.mark.parametrize("case", OUTAGES)
def test_canvas_sis_import_outage(case: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    peer = http_peer(case, request, "CANVAS")
    users = tmp_path / "users.csv"
    users.write_text("user_id,login_id,first_name,last_name,email,status\r\nU1,kim,Kim,Park,k@example.edu,active\r\n")
    url = peer.url.removesuffix("/v1")
    names = peer.names
    env = {
        "CANVAS_BASE_URL": url,
        "CANVAS_ACCOUNT_ID": "1",
        "CANVAS_ACCESS_TOKEN": "canvas-secret-token",
        "STATE_DIR": str(tmp_path / "state"),
        **peer.env,
    }
    result = run_module("flows.canvas_sis_import", env, str(users), cwd=tmp_path)
    # The import's preflight reads the account before any flow run exists: a Canvas that cannot be
    # reached stops the command there, so nothing is submitted and nothing reaches the Prefect UI.
    assert "Beginning flow run" not in result.stdout + result.stderr
    assert_one_clear_line(result, OUTAGE_CODE.get(case, 1), names, ui=False)
    assert "canvas-secret-token" not in result.stdout + result.stderr


def test_encoura_key_refused_names_the_settings(tmp_path: Path, export_env: dict[str, str]) -> None:
    env = {**export_env, "ENCOURA_API_KEY": "wrong-key-123"}
    result = run_module("flows.encoura_export", env, cwd=tmp_path)
    assert_one_clear_line(result, 2, ("ENCOURA_API_KEY",))
    assert "wrong-key-123" not in result.stdout + result.stderr


@pytest.mark.parametrize("status", [401, 403])
def test_encoura_login_refused_names_the_settings(status: int, tmp_path: Path, export_env: dict[str, str]) -> None:
    answer = (status, "application/json", b'{"message": "Forbidden"}')
    with serve(lambda method, path: answer) as server:
        env = {**export_env, "ENCOURA_BASE_URL": server.base_url}
        result = run_module("flows.encoura_export", env, cwd=tmp_path)
        assert server.requests == ["POST /v1/login"]  # refused credentials are never retried (no lock-out)
    assert_one_clear_line(result, 2, ("ENCOURA_API_KEY", "ENCOURA_PASSWORD"))
    assert export_env["ENCOURA_PASSWORD"] not in result.stdout + result.stderr


def test_canvas_token_refused_names_the_setting(tmp_path: Path, refusing_server: str) -> None:
    users = tmp_path / "users.csv"
    users.write_text("user_id,login_id,first_name,last_name,email,status\r\nU1,kim,Kim,Park,k@example.edu,active\r\n")
    env = {
        "CANVAS_BASE_URL": refusing_server.removesuffix("/v1"),
        "CANVAS_ACCOUNT_ID": "1",
        "CANVAS_ACCESS_TOKEN": "canvas-secret-token",
        "STATE_DIR": str(tmp_path / "state"),
    }
    result = run_module("flows.canvas_sis_import", env, str(users), cwd=tmp_path)
    assert_one_clear_line(result, 2, ("CANVAS_ACCESS_TOKEN",), ui=False)  # refused in the preflight
    assert "canvas-secret-token" not in result.stdout + result.stderr


# ----------------------------------------------------------------------------- the CA bundle fixes it
def test_encoura_ca_bundle_trusts_the_inspecting_firewall(
    tmp_path: Path, tls_folder: Path, export_env: dict[str, str], encoura_sandbox: SandboxServer
) -> None:
    """The same middlebox that made the untrusted case fail, relaying to the sandbox: with the office's
    CA bundle the whole run goes through it, verified, and delivers."""
    folder = tmp_path / "tls"
    folder.mkdir()
    with serve(ForwardTo(encoura_sandbox.base_url.removesuffix("/v1")), tls_folder=folder) as front:
        assert front.cert is not None
        env = {**export_env, "ENCOURA_BASE_URL": front.base_url}
        refused = run_module("flows.encoura_export", env, cwd=tmp_path)
        assert_one_clear_line(refused, 2, ("not trusted", "ENCOURA_CA_BUNDLE"), ui=False)
        assert front.requests == []  # nothing went over the unverified connection
        result = run_module("flows.encoura_export", {**env, "ENCOURA_CA_BUNDLE": str(front.cert)}, cwd=tmp_path)
        assert "POST /v1/login" in front.requests
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert (tmp_path / "share" / "p.csv").read_bytes() == b"a\n1\n"


def test_canvas_ca_bundle_trusts_the_inspecting_firewall(tmp_path: Path, canvas_sandbox) -> None:  # type: ignore[no-untyped-def]
    users = tmp_path / "users.csv"
    users.write_text("user_id,login_id,first_name,last_name,email,status\r\nU1,kim,Kim,Park,k@example.edu,active\r\n")
    folder = tmp_path / "tls"
    folder.mkdir()
    with serve(ForwardTo(canvas_sandbox.base_url), tls_folder=folder) as front:
        assert front.cert is not None
        env = {
            "CANVAS_BASE_URL": front.base_url.removesuffix("/v1"),
            "CANVAS_ACCOUNT_ID": canvas_sandbox.account_id,
            "CANVAS_ACCESS_TOKEN": canvas_sandbox.token,
            "STATE_DIR": str(tmp_path / "state"),
        }
        refused = run_module("flows.canvas_sis_import", env, str(users), cwd=tmp_path)
        assert_one_clear_line(refused, 2, ("not trusted", "CANVAS_CA_BUNDLE"), ui=False)
        result = run_module(
            "flows.canvas_sis_import",
            {**env, "CANVAS_CA_BUNDLE": str(front.cert)},
            str(users),
            "--poll-interval",
            "0.05",
            cwd=tmp_path,
        )
        assert front.requests
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr


# ----------------------------------------------------------------------------- SFTP peers
def sftp_env(job: str, server, tmp_path: Path, encoura_sandbox: SandboxServer, **overrides: str) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """The export delivering to `server` (DESTINATIONS__SLATE__*) or the upload reading from it (UPLOAD_SOURCE_*)."""
    env = {**encoura_sandbox.env(), "STATE_DIR": str(tmp_path / "state")}
    if job == "export":
        encoura_sandbox.add_export("prospect", "p.csv", b"a\n1\n")
        env.update(sftp_destination_env("slate", server))
        prefix = "DESTINATIONS__SLATE__"
        env[prefix + "URL"] = overrides.pop("url", env[prefix + "URL"])
    else:
        (server.root / "outgoing").mkdir(exist_ok=True)
        (server.root / "outgoing" / "enrollment_1.csv").write_bytes(b'"id","name"\r\n"1","Ana"\r\n')
        prefix = "UPLOAD_SOURCE_"
        env.update(
            {
                "UPLOAD_SOURCE": overrides.pop("url", server.url("/outgoing/enrollment_*.csv")),
                "UPLOAD_PRODUCT_TYPE": "enrollment",
                prefix + "PASSWORD": server.password,
                prefix + "HOST_KEY": server.host_key_line,
            }
        )
    env.update({prefix + key.upper(): value for key, value in overrides.items()})
    return env


JOBS = {"export": "flows.encoura_export", "upload": "flows.encoura_upload"}
SETTING_PREFIX = {"export": "DESTINATIONS__SLATE__", "upload": "UPLOAD_SOURCE_"}


@pytest.mark.parametrize("job", JOBS)
def test_sftp_unreachable(job: str, tmp_path: Path, encoura_sandbox: SandboxServer, sftp_server) -> None:  # type: ignore[no-untyped-def]
    port = closed_port()
    path = "/incoming" if job == "export" else "/outgoing/enrollment_*.csv"
    url = f"sftp://{sftp_server.username}@127.0.0.1:{port}{path}"
    result = run_module(JOBS[job], sftp_env(job, sftp_server, tmp_path, encoura_sandbox, url=url), cwd=tmp_path)
    assert_one_clear_line(result, 1, (f"127.0.0.1:{port}",))
    if job == "export":  # nowhere to deliver: nothing was listed, so nothing was consumed
        assert encoura_sandbox.state.exports_listed == 0 if hasattr(encoura_sandbox.state, "exports_listed") else True


@pytest.mark.parametrize("job", JOBS)
def test_sftp_password_refused_names_the_setting(
    job: str, tmp_path: Path, encoura_sandbox: SandboxServer, sftp_server  # type: ignore[no-untyped-def]
) -> None:
    env = sftp_env(job, sftp_server, tmp_path, encoura_sandbox, password="wrong-pw-123")
    result = run_module(JOBS[job], env, cwd=tmp_path)
    # A refused password is the settings' to fix (exit 2): the export stops before listing, the upload
    # before sending; the line names the setting to correct.
    assert_one_clear_line(result, 2, ("authentication failed", f"{SETTING_PREFIX[job]}PASSWORD"))
    assert "wrong-pw-123" not in result.stdout + result.stderr


@pytest.mark.parametrize("job", JOBS)
def test_sftp_host_key_changed(job: str, tmp_path: Path, encoura_sandbox: SandboxServer, sftp_server) -> None:  # type: ignore[no-untyped-def]
    import asyncssh

    other = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode().split()
    env = sftp_env(job, sftp_server, tmp_path, encoura_sandbox, host_key=f"{other[0]} {other[1]}")
    result = run_module(JOBS[job], env, cwd=tmp_path)
    # A changed host key is the settings' to fix (exit 2), for the export and the upload alike.
    assert_one_clear_line(result, 2, ("127.0.0.1", "host key"))


def test_sftp_destination_folder_not_writable(tmp_path: Path, encoura_sandbox: SandboxServer, make_sftp_server) -> None:  # type: ignore[no-untyped-def]
    server = make_sftp_server(deny_write=["incoming"])
    (server.root / "incoming").mkdir()
    env = sftp_env("export", server, tmp_path, encoura_sandbox)
    result = run_module(JOBS["export"], env, cwd=tmp_path)
    # A per-file failure (exit 1, as documented): the file is named with the folder it could not be written to.
    assert_one_clear_line(result, 1, ("Permission denied", "/incoming/p.csv"))
    assert not list((server.root / "incoming").iterdir())


# ----------------------------------------------------------------------------- local disks
@contextlib.contextmanager
def tmpfs(path: Path, *options: str) -> Iterator[Path]:
    """A real small (or read-only) filesystem: tests run as root, so only a mount makes a folder
    unwritable or full for real. Skips where mounting is not allowed."""
    path.mkdir(parents=True, exist_ok=True)
    if not shutil.which("mount") or os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", ",".join(options), "tmpfs", str(path)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def test_local_destination_folder_not_writable(tmp_path: Path, export_env: dict[str, str]) -> None:
    with tmpfs(tmp_path / "readonly", "ro", "size=64k") as share:
        env = {**export_env, **local_destination_env("share", share)}
        result = run_module("flows.encoura_export", env, cwd=tmp_path)
    assert_one_clear_line(result, 1, ("Read-only file system", f"{share}/p.csv"))


def test_state_dir_on_a_read_only_disk(tmp_path: Path, export_env: dict[str, str]) -> None:
    with tmpfs(tmp_path / "readonly", "ro", "size=64k") as disk:
        env = {**export_env, "STATE_DIR": str(disk / "state")}
        result = run_module("flows.encoura_export", env, cwd=tmp_path)
    assert_one_clear_line(result, 2, (str(disk / "state"), "STATE_DIR"))


@pytest.mark.parametrize("ledger", ["elsewhere", "on the full disk"])
def test_disk_full_while_staging(ledger: str, tmp_path: Path, encoura_sandbox: SandboxServer) -> None:
    """An export bigger than the disk holding STATE_DIR. Every line printed, Prefect's own "Finished in
    state Failed(...)" included, says the disk is full, and no raw library text (sqlite's) shows."""
    encoura_sandbox.add_export("prospect", "big.csv", b"a,b\n" + b"1,2\n" * 200_000)  # 800 kB
    with tmpfs(tmp_path / "small", "size=512k") as disk:
        env = {
            **encoura_sandbox.env(),
            "STATE_DIR": str(disk / "state"),
            **local_destination_env("share", tmp_path / "share"),
        }
        if ledger == "elsewhere":
            env["LEDGER_URL"] = f"sqlite:///{tmp_path / 'ledger.sqlite3'}"
        result = run_module("flows.encoura_export", env, cwd=tmp_path)
    printed = result.stdout + result.stderr
    assert_one_clear_line(result, 1, ("No space left",))
    for raw in ("OperationalError", "Errno 28", "sqlite3.", "[SQL:"):
        assert raw not in printed, printed
    # Prefect's own lines for the failed task: the engine's "failed with exception" and "Finished in state".
    task_lines = [line for line in printed.splitlines() if ("| Task run '" in line and "Failed" in line) or
                  "Task run failed" in line]
    assert task_lines and all("No space left" in line for line in task_lines), printed
    logs = flow_run_logs(printed, "No space left")
    finished = [m for m in logs if m.startswith("Finished in state Failed(") and "delivered" not in m]
    assert finished and all("No space left" in m for m in finished), logs
    assert not any((tmp_path / "share").rglob("*.csv")) if (tmp_path / "share").exists() else True


# ----------------------------------------------------------------------------- the ledger
def upload_env(tmp_path: Path, encoura_sandbox: SandboxServer) -> dict[str, str]:
    source = tmp_path / "outgoing"
    source.mkdir()
    (source / "enrollment_1.csv").write_bytes(b'"id","name"\r\n"1","Ana"\r\n')
    return {
        **encoura_sandbox.env(),
        "STATE_DIR": str(tmp_path / "state"),
        "UPLOAD_SOURCE": (source / "*.csv").as_uri(),
        "UPLOAD_PRODUCT_TYPE": "enrollment",
    }


def test_upload_ledger_postgres_down(tmp_path: Path, encoura_sandbox: SandboxServer) -> None:
    port = closed_port()
    env = {
        **upload_env(tmp_path, encoura_sandbox),
        "LEDGER_URL": f"postgresql+psycopg://ledger:s3cret-pw@127.0.0.1:{port}/ledger",
    }
    result = run_module("flows.encoura_upload", env, cwd=tmp_path)
    assert_one_clear_line(result, 1, ("LEDGER_URL", "PostgreSQL"))
    assert "s3cret-pw" not in result.stdout + result.stderr
    assert (tmp_path / "outgoing" / "enrollment_1.csv").exists()


def test_upload_sqlite_ledger_unwritable(tmp_path: Path, encoura_sandbox: SandboxServer) -> None:
    (tmp_path / "blocker").write_text("a file where the database's folder should be")
    env = {**upload_env(tmp_path, encoura_sandbox), "LEDGER_URL": f"sqlite:///{tmp_path / 'blocker' / 'l.sqlite3'}"}
    result = run_module("flows.encoura_upload", env, cwd=tmp_path)
    assert_one_clear_line(result, 2, ("LEDGER_URL",))
