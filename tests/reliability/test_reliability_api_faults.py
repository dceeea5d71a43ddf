"""The Encoura API misbehaving the way real gateways do: 5xx/429 with Retry-After on a large share of
calls, tokens that expire every couple of seconds, one-time download URLs that expire quickly,
truncated bodies, and answers slower than the client timeout. Delivered exactly once regardless."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from sandbox.encoura.config import API_ENDPOINTS
from tests.reliability.harness import (
    FinalNameWatcher,
    Rig,
    S3View,
    assert_invariants,
    run_in_process,
    s3_env,
    wait_until,
)

FAULTS = {
    "fail_rate": 0.4,
    "fail_statuses": (500, 502, 503, 429),
    "retry_after_seconds": 0,
    "token_ttl_seconds": 2.0,
    "url_ttl_seconds": 2.0,
    "truncate_rate": 0.3,
    "slow_rate": 0.05,
    "slow_seconds": 1.2,
    "seed": 158,  # its first draws fail >= 45% of calls (checked offline), so the >= 20% assertion is stable
}
FAULT_ENV = {
    "ENCOURA_TIMEOUT_SECONDS": "1",  # slow answers (1.2 s) exceed it
    "ENCOURA_MAX_ATTEMPTS": "8",
    "ENCOURA_TOKEN_LIFETIME_SECONDS": "2",
    "TASK_RETRIES": "6",
}


@pytest.mark.timeout(300)
def test_api_faults_deliver_everything_exactly_once(rig: Rig, s3_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    rig.env.update(s3_env("bucket", s3_server, "incoming"))
    rig.views.append(S3View("bucket", s3_server, "incoming"))
    for i in range(10):
        rig.add_export(("prospect", "aos")[i % 2], size=(150_000 if i % 3 == 0 else 5_000))
    rig.sandbox.configure(**FAULTS)
    states = []
    with FinalNameWatcher(rig.sandbox, [v.root for v in rig.views if v.root is not None]) as watcher:
        for _ in range(3):  # a scheduler's next runs, still under faults
            states.append(run_in_process(rig.full_env(**FAULT_ENV)))
            if states[-1].is_completed():
                break
        faulted = rig.sandbox.snapshot()
        rig.sandbox.configure(fail_rate=0.0, truncate_rate=0.0, slow_rate=0.0)
        final = run_in_process(rig.full_env())
    assert final.is_completed(), final.message
    watcher.assert_clean()
    assert_invariants(rig)

    # The faults really happened, at the rates the issue asks for.
    api_calls = sum(faulted["counters"].get(k, 0) for k in API_ENDPOINTS)
    injected = sum(faulted["faults_injected"].values())
    assert api_calls and injected / api_calls >= 0.2, (injected, api_calls, faulted["faults_injected"])
    assert sum(faulted["s3_truncated"].values()) >= 1
    assert faulted["login_attempts"] + faulted["refresh_count"] >= 2, "tokens never expired mid-run"
    # One-time URLs: every S3 GET used a URL asked for just before it (never a reused one).
    for uid, gets in faulted["s3_gets"].items():
        assert faulted["download_url_requests"].get(uid, 0) >= gets, uid
    assert faulted["s3_rejected"].get("InvalidArgument", 0) == 0, "API headers were sent to S3"


@pytest.mark.timeout(300)
def test_listing_slower_than_the_timeout_loses_nothing(rig: Rig) -> None:
    """The listing answer is lost to a client timeout, but the server consumed the exports anyway
    (it finished the request after we gave up). Retried listings then come back empty: the exports
    must still be recovered, in this run or the next."""
    uids = [rig.add_export("prospect", size=3_000) for _ in range(3)]
    consumed = threading.Event()

    def speed_up_once_consumed() -> None:
        # Slow from just after the login (which must succeed) until the listing has consumed them.
        wait_until(lambda: rig.sandbox.snapshot()["counters"].get("login", 0) >= 1, timeout=60, interval=0.002)
        rig.sandbox.configure(slow_rate=1.0, slow_seconds=1.5)

        def all_consumed() -> bool:
            return all(rig.sandbox.state.exports[u].status == "Delivered" for u in uids)

        if wait_until(all_consumed, timeout=60, interval=0.01):
            rig.sandbox.configure(slow_rate=0.0)  # later attempts answer at once (with nothing new)
            consumed.set()

    helper = threading.Thread(target=speed_up_once_consumed, daemon=True)
    helper.start()
    env = rig.full_env(ENCOURA_TIMEOUT_SECONDS="0.5", ENCOURA_MAX_ATTEMPTS="10", ENCOURA_PRODUCT_KEYS="prospect")
    run_in_process(env)
    helper.join(timeout=70)
    assert consumed.is_set()
    rig.sandbox.configure(slow_rate=0.0)
    final = run_in_process(rig.full_env(ENCOURA_PRODUCT_KEYS="prospect"))
    assert final.is_completed(), final.message
    assert_invariants(rig, product_keys=("prospect",))


@pytest.mark.timeout(300)
def test_api_connections_reset_mid_answer(rig: Rig) -> None:
    """A FaultProxy between the flow and the API cuts answers off mid-body (after Encoura acted on
    the request: a cut listing has already consumed its exports). The run may fail, but nothing is
    lost: the next run recovers the consumed exports and delivers everything exactly once.
    (Known gap, reported: RetryTransport does not retry a body cut off after the headers, because
    httpx reads the body after the transport returns; so this costs a run instead of a retry.)"""
    from tests.support.fault_proxy import FaultProxy

    for i in range(6):
        rig.add_export(("prospect", "aos")[i % 2], size=5_000)
    with FaultProxy("127.0.0.1", rig.sandbox.port) as api_proxy:
        api_proxy.reset_after(700, connections=6, direction="down")
        base_url = f"http://127.0.0.1:{api_proxy.port}/v1"
        with FinalNameWatcher(rig.sandbox, [v.root for v in rig.views if v.root is not None]) as watcher:
            first = run_in_process(rig.full_env(ENCOURA_BASE_URL=base_url, ENCOURA_MAX_ATTEMPTS="8"))
            resets = api_proxy.stats.resets
            api_proxy.clear()  # the network recovers for the next scheduled run
            final = run_in_process(rig.full_env(ENCOURA_BASE_URL=base_url))
    assert resets >= 3, resets
    assert not first.is_crashed(), first.message  # reported as failed work, not a crash
    assert final.is_completed(), (first.message, final.message)
    watcher.assert_clean()
    assert_invariants(rig)
