"""The /_sandbox control API and the standalone server, as used from other processes."""

from __future__ import annotations

import base64
import hashlib
import signal
import socket
import subprocess
import sys

import httpx

from common import exit_codes
from sandbox.encoura import SANDBOX_CREDENTIALS, SandboxServer
from tests.support.encoura_sandbox import sandbox_client


def test_admin_adds_exports_from_bytes_or_size(encoura_sandbox: SandboxServer) -> None:
    admin = f"{encoura_sandbox.root_url}/_sandbox"
    content = b'"ID"\r\n"007"\r\n'
    exact = httpx.post(
        f"{admin}/exports",
        json={"product_key": "declared", "filename": "d 1.csv", "content_b64": base64.b64encode(content).decode()},
    )
    sized = httpx.post(f"{admin}/exports", json={"product_key": "prospect", "size": 5000, "seed": 4})
    no_uid = httpx.post(f"{admin}/exports", json={"product_key": "inquiry", "listing_overrides": {"uid": None}})

    assert exact.status_code == sized.status_code == no_uid.status_code == 200
    exports = encoura_sandbox.state.exports
    assert exports[exact.json()["uid"]].content == content
    assert exports[exact.json()["uid"]].filename == "d 1.csv"
    assert len(exports[sized.json()["uid"]].content) == 5000
    assert exports[sized.json()["uid"]].content.startswith(b'"Encoura ID"')
    assert exports[no_uid.json()["uid"]].listing_overrides == {"uid": None}

    state = httpx.get(f"{admin}/state").json()
    summary = {e["uid"]: e for e in state["exports"]}
    assert summary[exact.json()["uid"]]["sha256"] == hashlib.sha256(content).hexdigest()
    assert summary[sized.json()["uid"]]["size"] == 5000


def test_admin_refuses_bad_requests_with_a_message(encoura_sandbox: SandboxServer) -> None:
    admin = f"{encoura_sandbox.root_url}/_sandbox"
    bad_product = httpx.post(f"{admin}/exports", json={"product_key": "nope"})
    bad_b64 = httpx.post(f"{admin}/exports", json={"content_b64": "***"})
    bad_config = httpx.post(f"{admin}/config", json={"fail_rate": 3})
    unknown_config = httpx.post(f"{admin}/config", json={"flail_rate": 0.1})

    assert bad_product.status_code == bad_b64.status_code == bad_config.status_code == unknown_config.status_code
    assert bad_product.status_code == 400
    assert "unknown product key" in bad_product.json()["message"]
    assert "flail_rate" in unknown_config.json()["message"]


def test_admin_config_state_reset_and_token_expiry(seeded_sandbox: SandboxServer) -> None:
    admin = f"{seeded_sandbox.root_url}/_sandbox"
    with sandbox_client(seeded_sandbox) as client:
        assert client.get("/datacenter/exports", params={"status": "NotDelivered"}).status_code == 200
        applied = httpx.post(f"{admin}/config", json={"fail_rate": 1.0, "fail_statuses": [502]}).json()
        assert applied["fail_statuses"] == [502]
        assert client.get("/datacenter/exports", params={"status": "Delivered"}).status_code == 502

        state = httpx.get(f"{admin}/state").json()
        assert state["counters"]["list_exports"] == 2
        assert state["faults_injected"] == {"list_exports": 1}
        assert state["login_attempts"] == 1
        assert {e["status"] for e in state["exports"]} == {"Delivered"}

        assert httpx.post(f"{admin}/reset").status_code == 200
        after = httpx.get(f"{admin}/state").json()
        assert after["config"]["fail_rate"] == 0.0
        assert after["counters"] == {}
        assert {e["status"] for e in after["exports"]} == {"NotDelivered"}  # samples come back fresh
        assert client.get("/datacenter/exports", params={"status": "Delivered"}).status_code == 401  # tokens gone

    with sandbox_client(seeded_sandbox) as client:
        httpx.post(f"{admin}/expire-tokens")
        assert client.get("/datacenter/exports", params={"status": "Delivered"}).status_code == 401


def test_stop_and_start_keep_port_and_state(encoura_sandbox: SandboxServer) -> None:
    uid = encoura_sandbox.add_export("inquiry")
    base_url = encoura_sandbox.base_url
    encoura_sandbox.stop()
    try:
        httpx.get(f"{encoura_sandbox.root_url}/_sandbox/state")
        raise AssertionError("the sandbox still answers after stop()")
    except httpx.ConnectError:
        pass
    encoura_sandbox.start()
    assert encoura_sandbox.base_url == base_url
    assert uid in encoura_sandbox.state.exports
    assert httpx.get(f"{encoura_sandbox.root_url}/_sandbox/state").status_code == 200


def test_env_points_flows_at_the_sandbox(encoura_sandbox: SandboxServer) -> None:
    env = encoura_sandbox.env()
    assert env["ENCOURA_BASE_URL"] == encoura_sandbox.base_url
    assert env["ENCOURA_API_KEY"] == SANDBOX_CREDENTIALS["api_key"]
    assert env["ENCOURA_ORGANIZATION_UID"] == SANDBOX_CREDENTIALS["organization_uid"]
    assert set(env) == {
        "ENCOURA_BASE_URL",
        "ENCOURA_API_KEY",
        "ENCOURA_USERNAME",
        "ENCOURA_PASSWORD",
        "ENCOURA_ORGANIZATION_UID",
    }


def test_standalone_server_prints_how_to_use_it_and_stops_on_ctrl_c() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "sandbox.encoura", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("Ctrl-C"):
                break
        banner = "".join(lines)
        base_url = next(ln.split("=", 1)[1].strip() for ln in lines if "ENCOURA_BASE_URL=" in ln)
        assert base_url.startswith("http://127.0.0.1:")
        assert SANDBOX_CREDENTIALS["password"] in banner  # fake, printed on purpose
        assert "curl" in banner
        state = httpx.get(base_url.removesuffix("/v1") + "/_sandbox/state").json()
        assert len(state["exports"]) == 6
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=10)
    assert proc.returncode == exit_codes.OK
    assert "Sandbox stopped." in out
    assert "Traceback" not in err


def test_standalone_server_on_a_busy_port_is_a_config_error() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "sandbox.encoura", "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert result.returncode == exit_codes.CONFIG_ERROR
    assert f"--port {port}" in result.stderr
    assert "Traceback" not in result.stderr
