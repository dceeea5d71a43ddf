"""SIGKILL during listing, download and the ledger writes around them; each kill followed by a normal re-run.

The export API hands each file out once (listing consumes it), so the worst moment to die is
between Encoura's answer and our insert: `listing.answered` arms exactly that window, and the
slowed listing kills land while the answer is still on the wire (the sandbox consumes anyway).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.reliability.crashkit import PHASES, KillPoint, counters, run_kill_loop, timed_cli_kills
from tests.reliability.harness import Rig, Zygote

FETCH_PHASES = ("listing", "download", "ledger")


def _points(rig: Rig) -> list[KillPoint]:
    sb = rig.sandbox
    slow_listing = KillPoint(
        "listing",
        "listing in flight (answer delayed, consumed server-side)",
        trigger=lambda base: counters(rig)["list_exports"] > base["list_exports"],
        setup=lambda: sb.configure(slow_rate=1.0, slow_seconds=0.4),
        teardown=lambda: sb.configure(slow_rate=0.0, slow_seconds=0.0),
    )
    mid_download = KillPoint(
        "download",
        "mid-download (S3 body streaming)",
        trigger=lambda base: counters(rig)["s3_gets"] > base["s3_gets"],
        setup=lambda: sb.configure(s3_chunk_delay_seconds=0.03),
        teardown=lambda: sb.configure(s3_chunk_delay_seconds=0.0),
        sizes=(640_000, 640_000, 2_000),
    )
    points: list[KillPoint] = []
    for n in (1, 2, 1, 2, 1, 2):
        points.append(KillPoint("listing", f"listing.answered@{n}", crashpoint=f"listing.answered@{n}"))
    points += [slow_listing] * 5
    for n in (1, 2, 1, 2, 1):
        points.append(KillPoint("ledger", f"ledger.record_listed@{n}", crashpoint=f"ledger.record_listed@{n}"))
    points += [mid_download] * 6
    for n in (1, 2, 3, 1, 3, 2):
        points.append(KillPoint("ledger", f"ledger.mark_staged@{n}", crashpoint=f"ledger.mark_staged@{n}"))
    # Interleave so that a run is killed in varying states of the ledger, not one phase after another.
    return points[::2] + points[1::2]


@pytest.mark.timeout(600)
def test_kills_while_listing_and_downloading_lose_nothing(rig: Rig, zygote: Zygote, tmp_path: Path) -> None:
    points = _points(rig)
    log = run_kill_loop(rig, zygote, points, tmp_path / "runs")
    print(log.summary())
    assert set(FETCH_PHASES) <= set(log.by_phase()), log.summary()
    assert set(FETCH_PHASES) <= set(PHASES)
    # 28 points; an observed kill may (rarely) find its phase already over, an armed one cannot miss.
    assert len(log.hits) >= 25, log.summary()
    assert not [m for m in log.misses if "@" in m[1]], log.summary()


@pytest.mark.timeout(300)
def test_timed_kills_of_the_real_cli_lose_nothing(rig: Rig, tmp_path: Path) -> None:
    """Plain `python -m flows.encoura_export`, killed after spread delays (startup, listing, transfer)."""
    hits = timed_cli_kills(rig, [0.2, 0.4, 0.6], tmp_path / "runs")
    assert hits >= 2
