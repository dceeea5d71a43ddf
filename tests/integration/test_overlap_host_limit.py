"""Per-host politeness across runs: publishes to an SFTP host take a slot of the Prefect global
concurrency limit `sftp:<host>` when an operator has created one, and ignore it silently otherwise."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from prefect import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate

from common import host_limits
from flows.encoura_export import encoura_export
from sandbox.encoura import SandboxServer
from tests.support.sftp_server import SFTPTestServer


def _active_slots(name: str) -> int:
    with get_client(sync_client=True) as client:
        return client.read_global_concurrency_limit_by_name(name).active_slots


@pytest.fixture
def host_limit() -> Iterator[str]:
    name = "sftp:127.0.0.1"
    host_limits.reset_cache()
    with get_client(sync_client=True) as client:
        with contextlib.suppress(Exception):
            client.delete_global_concurrency_limit_by_name(name)
        client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=1))
    try:
        yield name
    finally:
        host_limits.reset_cache()
        with get_client(sync_client=True) as client:
            client.delete_global_concurrency_limit_by_name(name)


def test_limit_names() -> None:
    assert host_limits.limit_name("sftp://user@FT.Technolutions.net:22/incoming") == "sftp:ft.technolutions.net"
    assert host_limits.limit_name("file:///mnt/share") is None
    assert host_limits.limit_name("s3://bucket/prefix") is None


def test_no_limit_means_no_wait() -> None:
    host_limits.reset_cache()
    with host_limits.host_slot("sftp://u@no-limit.example.org/x"):
        pass
    assert host_limits.limit_exists("sftp:no-limit.example.org") is False


def test_slot_is_held_during_a_transfer_and_released(host_limit: str) -> None:
    with host_limits.host_slot("sftp://slate@127.0.0.1:2222/incoming"):
        assert _active_slots(host_limit) == 1
    assert _active_slots(host_limit) == 0


def test_export_flow_delivers_under_the_host_limit(
    host_limit: str,
    encoura_sandbox: SandboxServer,
    sftp_server: SFTPTestServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for key, value in encoura_sandbox.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("ENCOURA_PRODUCT_KEYS", "prospect")
    monkeypatch.setenv("STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("DESTINATIONS__SLATE__URL", sftp_server.url("/"))
    monkeypatch.setenv("DESTINATIONS__SLATE__PASSWORD", sftp_server.password)
    monkeypatch.setenv("DESTINATIONS__SLATE__HOST_KEY", sftp_server.host_key_line)
    for i in range(3):
        encoura_sandbox.add_export("prospect", f"polite-{i}.csv", seed=i)
    state = encoura_export(return_state=True)
    assert state.is_completed(), state
    assert sorted(p.name for p in sftp_server.root.iterdir()) == [f"polite-{i}.csv" for i in range(3)]
    assert _active_slots(host_limit) == 0, "every slot was given back"
