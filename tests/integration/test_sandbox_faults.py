"""Fault injection: deterministic, roughly at the configured rates, and never where it would lie about state."""

from __future__ import annotations

import time
from collections import Counter

import httpx
import pytest
from pydantic import ValidationError

from sandbox.encoura import SandboxConfig, SandboxServer
from tests.support.encoura_sandbox import sandbox_client

CALLS = 300


def statuses(sb: SandboxServer, calls: int = CALLS) -> list[httpx.Response]:
    sb.configure(fail_rate=0.0)
    with sandbox_client(sb) as client:  # log in before the faults start
        sb.configure(fail_rate=0.3, seed=11)
        return [client.get("/datacenter/exports", params={"status": "Delivered"}) for _ in range(calls)]


def test_fail_rate_is_roughly_honoured_with_gateway_shaped_answers(encoura_sandbox: SandboxServer) -> None:
    encoura_sandbox.configure(retry_after_seconds=3)
    responses = statuses(encoura_sandbox)

    failed = [r for r in responses if r.status_code != 200]
    assert 0.2 * CALLS < len(failed) < 0.4 * CALLS
    assert {r.status_code for r in failed} == {500, 502, 503, 429}
    for r in failed:
        assert "message" in r.json()
        assert r.headers.get("retry-after") == ("3" if r.status_code in (429, 503) else None)
    assert encoura_sandbox.state.faults_injected["list_exports"] == len(failed)


def test_the_same_seed_replays_the_same_faults() -> None:
    with SandboxServer() as first, SandboxServer() as second:
        a = [r.status_code for r in statuses(first, 60)]
        b = [r.status_code for r in statuses(second, 60)]
    assert a == b
    assert set(a) != {200}


def test_fail_statuses_limits_the_injected_codes(encoura_sandbox: SandboxServer) -> None:
    with sandbox_client(encoura_sandbox) as client:
        encoura_sandbox.configure(fail_rate=1.0, fail_statuses=[503])
        response = client.get("/refresh-token")
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"


def test_failed_listing_and_download_url_calls_change_nothing(encoura_sandbox: SandboxServer) -> None:
    uid = encoura_sandbox.add_export("inquiry", content=b"h\r\nrow\r\n")
    with sandbox_client(encoura_sandbox) as client:
        encoura_sandbox.configure(fail_rate=1.0)
        assert client.get("/datacenter/exports", params={"status": "NotDelivered"}).status_code >= 429
        assert client.get(f"/datacenter/exports/{uid}/download").status_code >= 429
        assert encoura_sandbox.state.exports[uid].status == "NotDelivered"
        assert encoura_sandbox.state.download_url_requests[uid] == 0
        assert encoura_sandbox.state.presigned == {}

        encoura_sandbox.configure(fail_rate=0.0)
        url = client.get(f"/datacenter/exports/{uid}/download").json()["downloadUrl"]
    encoura_sandbox.configure(fail_rate=1.0)
    assert httpx.get(url).status_code == 200  # fail_rate models the API, not S3


def test_truncate_rate_is_deterministic_and_partial(encoura_sandbox: SandboxServer) -> None:
    encoura_sandbox.configure(truncate_rate=0.5, seed=3)
    uid = encoura_sandbox.add_export("inquiry", size=10_000)
    outcomes: Counter[int | str] = Counter()
    with sandbox_client(encoura_sandbox) as client, httpx.Client() as s3:
        for _ in range(40):
            url = client.get(f"/datacenter/exports/{uid}/download").json()["downloadUrl"]
            try:
                outcomes[len(s3.get(url).content)] += 1
            except httpx.RemoteProtocolError:
                outcomes["truncated"] += 1
    assert set(outcomes) == {10_000, "truncated"}
    assert outcomes["truncated"] == encoura_sandbox.state.s3_truncated[uid]


def test_fail_endpoints_targets_one_endpoint(encoura_sandbox: SandboxServer) -> None:
    uid = encoura_sandbox.add_export("inquiry", content=b"h\r\nrow\r\n")
    encoura_sandbox.configure(fail_rate=1.0, fail_endpoints=["download_url"], fail_statuses=[502])
    with sandbox_client(encoura_sandbox) as client:  # login is not in fail_endpoints, so it works
        assert client.get("/datacenter/exports", params={"status": "NotDelivered"}).status_code == 200
        assert client.get(f"/datacenter/exports/{uid}/download").status_code == 502
    assert encoura_sandbox.state.faults_injected == {"download_url": 1}
    with pytest.raises(ValidationError, match="unknown endpoint"):
        encoura_sandbox.configure(fail_endpoints=["downloads"])


def test_a_client_that_walks_away_mid_download_is_noticed(encoura_sandbox: SandboxServer) -> None:
    # Kill tests rely on this window: a slow body that stops being sent once the client is gone.
    encoura_sandbox.configure(s3_chunk_delay_seconds=0.02)
    uid = encoura_sandbox.add_export("prospect", size=64 * 1024 * 200)
    with sandbox_client(encoura_sandbox) as client:
        url = client.get(f"/datacenter/exports/{uid}/download").json()["downloadUrl"]
    with httpx.stream("GET", url) as response:
        next(response.iter_raw())
    deadline = time.monotonic() + 10
    while not encoura_sandbox.state.s3_aborted[uid] and time.monotonic() < deadline:
        time.sleep(0.02)
    assert encoura_sandbox.state.s3_aborted[uid] == 1


def test_slow_responses_still_answer(encoura_sandbox: SandboxServer) -> None:
    encoura_sandbox.configure(slow_rate=1.0, slow_seconds=0.01)
    uid = encoura_sandbox.add_export("inquiry", content=b"h\r\nrow\r\n")
    with sandbox_client(encoura_sandbox) as client:
        url = client.get(f"/datacenter/exports/{uid}/download").json()["downloadUrl"]
    assert httpx.get(url).content == b"h\r\nrow\r\n"


def test_configure_refuses_unknown_fields_and_bad_values(encoura_sandbox: SandboxServer) -> None:
    with pytest.raises(ValueError, match="not a sandbox fault field: fail_rat"):
        encoura_sandbox.configure(fail_rat=0.5)
    with pytest.raises(ValueError, match="port"):
        encoura_sandbox.configure(port=1234)
    with pytest.raises(ValidationError):
        encoura_sandbox.configure(fail_rate=2)
    with pytest.raises(ValidationError):
        encoura_sandbox.configure(fail_statuses=[200])
    with pytest.raises(ValidationError):
        SandboxConfig(listing_mode="weird")
    assert encoura_sandbox.config.fail_rate == 0.0
