"""Silence alarms on a real Prefect server: the events exist, `flows.alerts install` is idempotent, and
with a short window both proactive automations fire and their webhook action really calls out.

The session server evaluates proactive triggers every second (PREFECT_SERVER_EVENTS_PROACTIVE_GRANULARITY
in tests/support/prefect_server.py); Prefect's minimum window is 10 s, so the firing test takes ~15 s.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from prefect import get_client
from prefect.blocks.system import Secret
from prefect.blocks.webhook import Webhook

from sandbox.encoura import SandboxServer
from tests.support.export_helpers import REPO, local_destination_env, run_export_in_process

WINDOW_SECONDS = 10  # Prefect's minimum for a proactive trigger


class Listener:
    """A local HTTP endpoint that records every POST body it receives (the webhook's far end)."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        listener = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    listener.calls.append(json.loads(body or b"{}"))
                except ValueError:
                    listener.calls.append({"raw": body.decode(errors="replace")})
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def alerts(self) -> set[str]:
        return {str(c.get("alert")) for c in self.calls}


@pytest.fixture
def listener() -> Iterator[Listener]:
    lst = Listener()
    lst.thread.start()
    yield lst
    lst.server.shutdown()


def _alerts_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flows.alerts", *args],
        cwd=REPO, env={**os.environ, **env}, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def _read_events(prefix: str, since: datetime) -> list[dict[str, Any]]:
    body = {
        "filter": {"event": {"prefix": [prefix]}, "occurred": {"since": since.isoformat()}},
        "limit": 50,
    }
    response = httpx.post(f"{os.environ['PREFECT_API_URL']}/events/filter", json=body, timeout=10)
    response.raise_for_status()
    return list(response.json()["events"])


def _wait_for_events(
    prefix: str, since: datetime, count: int, timeout: float = 20, *, flow_run_id: object = None
) -> list[dict[str, Any]]:
    """Events with this prefix since `since`; with `flow_run_id`, only those emitted inside that flow
    run. Other runs in the same window (the sandbox demo delivers the same seeded export uids, to its
    own `demo` destination) must not be mistaken for this run's events."""

    def read() -> list[dict[str, Any]]:
        events = _read_events(prefix, since)
        if flow_run_id is None:
            return events
        mine = f"prefect.flow-run.{flow_run_id}"
        return [e for e in events if any(r["prefect.resource.id"] == mine for r in e.get("related", []))]

    deadline = time.monotonic() + timeout
    events = read()
    while len(events) < count and time.monotonic() < deadline:
        time.sleep(0.5)
        events = read()
    return events


def test_every_delivered_export_emits_an_event(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, seeded_sandbox: SandboxServer
) -> None:
    since = datetime.now(UTC) - timedelta(seconds=5)
    env = {
        **seeded_sandbox.env(),
        "STATE_DIR": str(tmp_path / "state"),
        **local_destination_env("share", tmp_path / "share"),
    }
    state = run_export_in_process(monkeypatch, env)
    assert state.is_completed(), state.message
    uids = set(seeded_sandbox.state.exports)
    run_id = state.state_details.flow_run_id
    events = [e for e in _wait_for_events("encoura.export.delivered", since, len(uids), flow_run_id=run_id)
              if e["resource"]["prefect.resource.id"].removeprefix("encoura.export.") in uids]  # fmt: skip
    assert len(events) == len(uids), events  # one event per export, none twice
    assert {e["resource"]["prefect.resource.id"] for e in events} == {f"encoura.export.{u}" for u in uids}
    for event in events:
        uid = event["resource"]["prefect.resource.id"].removeprefix("encoura.export.")
        record = seeded_sandbox.state.exports[uid]
        assert event["payload"]["size"] == len(record.content)
        assert event["payload"]["destination"] == "share"
        assert event["payload"]["product"] and event["payload"]["file"]
        roles = {r["prefect.resource.role"] for r in event["related"]}
        assert {"destination", "flow-run"} <= roles  # emitted inside the run: the deployment/flow run is linked


def test_every_upload_reaching_a_final_state_emits_an_event(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, encoura_sandbox: SandboxServer
) -> None:
    from tests.integration.test_upload_flow import CSV, run, upload_env

    encoura_sandbox.configure(upload_status_steps=1)
    folder = tmp_path / "outgoing"
    folder.mkdir()
    (folder / "enrollment_ok.csv").write_bytes(CSV)
    (folder / "enrollment_fail.csv").write_bytes(CSV.replace(b"Ana", b"Bo"))
    (folder / "enrollment_mapping.csv").write_bytes(CSV.replace(b"Ana", b"Cy"))  # needs a person: not final
    since = datetime.now(UTC) - timedelta(seconds=5)
    env = {**upload_env(encoura_sandbox, tmp_path / "state"), "UPLOAD_SOURCE": f"{folder.as_uri()}/enrollment_*"}
    run(monkeypatch, env)
    events = _wait_for_events("encoura.upload.", since, 2)
    by_file = {e["payload"]["file"]: e for e in events if e["payload"].get("file", "").startswith("enrollment_")}
    assert {f: e["event"] for f, e in by_file.items()} == {
        "enrollment_ok.csv": "encoura.upload.done",
        "enrollment_fail.csv": "encoura.upload.failure",
    }
    assert by_file["enrollment_ok.csv"]["payload"]["product_type"] == "enrollment"
    assert by_file["enrollment_ok.csv"]["payload"]["size"] == len(CSV)
    assert by_file["enrollment_fail.csv"]["payload"]["error"].startswith("Encoura: ")


def _alerts_in_process(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], env: dict[str, str]
) -> tuple[int, str]:
    from common.cli import run_cli
    from flows.alerts import main

    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(SystemExit) as info:
        run_cli(lambda: main(["install"]))
    return int(info.value.code or 0), capsys.readouterr().err


def test_install_is_idempotent_and_names_the_block_setting(
    listener: Listener, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)  # no stray .env
    block = f"alerts-{uuid.uuid4().hex[:8]}"
    Webhook(method="POST", url=listener.url, allow_private_urls=True).save(block)
    env = {"ALERT_NOTIFICATION_BLOCK": f"webhook/{block}", "ALERT_EXPORT_DEPLOYMENT": _deployment()}
    try:
        first = _alerts_cli(env, "install")
        assert first.returncode == 0, first.stdout + first.stderr
        assert first.stdout.count("created: ") == 2
        second = _alerts_cli(env, "install")
        assert second.returncode == 0, second.stdout + second.stderr
        assert second.stdout.count("updated: ") == 2
        with get_client(sync_client=True) as client:
            ours = [a for a in client.read_automations() if a.name.startswith("encoura-slate: ")]
        assert sorted(a.name for a in ours) == [
            "encoura-slate: export deployment not completing",
            "encoura-slate: no export delivered",
        ]
        silence = next(a for a in ours if "delivered" in a.name)
        assert silence.trigger.within == timedelta(days=7)  # the default window
        assert silence.trigger.expect == {"encoura.export.delivered"}
        runs = next(a for a in ours if "completing" in a.name)
        assert runs.trigger.within == timedelta(hours=26)

        # Wrong settings, in-process (a subprocess costs seconds of imports): exit 2, naming the variable.
        Secret(value="not a notifier").save(block, overwrite=True)
        for override, needle in [
            ({"ALERT_NOTIFICATION_BLOCK": "webhook/no-such-block"}, "no 'webhook' block named 'no-such-block'"),
            ({"ALERT_NOTIFICATION_BLOCK": f"secret/{block}"}, "could never be delivered"),
            ({"ALERT_EXPORT_DEPLOYMENT": "encoura-export/not-deployed"}, "ALERT_EXPORT_DEPLOYMENT: no deployment"),
        ]:
            code, err = _alerts_in_process(monkeypatch, capsys, {**env, **override})
            assert code == 2 and needle in err, err
    finally:
        _alerts_cli(env, "uninstall")


def _deployment() -> str:
    """A deployment of a flow named like the export's, registered on the session server."""
    name = f"alerts-test-{uuid.uuid4().hex[:8]}"
    with get_client(sync_client=True) as client:
        flow_id = client.create_flow_from_name("encoura-export")
        client.create_deployment(flow_id=flow_id, name=name)
    return f"encoura-export/{name}"


def test_both_automations_fire_and_call_the_webhook(listener: Listener) -> None:
    block = f"alerts-{uuid.uuid4().hex[:8]}"
    Webhook(method="POST", url=listener.url, allow_private_urls=True).save(block)
    env = {
        "ALERT_NOTIFICATION_BLOCK": f"webhook/{block}",
        "ALERT_EXPORT_DEPLOYMENT": _deployment(),
        "ALERT_SILENCE_DAYS": str(WINDOW_SECONDS / 86400),
        "ALERT_RUN_HOURS": str(WINDOW_SECONDS / 3600),
    }
    try:
        installed = _alerts_cli(env, "install")
        assert installed.returncode == 0, installed.stdout + installed.stderr
        deadline = time.monotonic() + 3 * WINDOW_SECONDS + 15
        wanted = {"encoura-slate: no export delivered", "encoura-slate: export deployment not completing"}
        while not wanted <= listener.alerts() and time.monotonic() < deadline:
            time.sleep(0.5)
        assert wanted <= listener.alerts(), listener.calls
        call = next(c for c in listener.calls if c.get("alert") == "encoura-slate: no export delivered")
        assert "No Encoura export was delivered" in call["message"]
        assert call["fired_at"].startswith(str(datetime.now(UTC).year))  # the template was rendered by Prefect
    finally:
        _alerts_cli(env, "uninstall")
