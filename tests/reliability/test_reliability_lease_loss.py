"""A run frozen (SIGSTOP) past CLAIM_TTL_SECONDS while a second run takes its exports over, then
resumed (SIGCONT): the first run's claims are fenced, so it stops before its next rename or ledger
write and says so; nothing is delivered twice, counted at Slate's importer. SQLite and PostgreSQL.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from tests.reliability.harness import Rig, Zygote, assert_invariants, kill, run_in_process, wait_until

TTL = "3"
FROZEN_FOR = 4.5  # > TTL: the lease expires while the first run is frozen

# Where the first run freezes: before its first intent (the staged write), after recording the
# intent but before the rename, and after the rename before the delivery is recorded.
FREEZE_POINTS = ("ledger.mark_staged@1", "publish.before_rename@1", "publish.after_rename@1")


def _stopped(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] == "T"


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, rig: Rig) -> str:
    if request.param == "postgresql":
        rig.ledger = request.getfixturevalue("postgres_url")
    return str(request.param)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("point", FREEZE_POINTS)
def test_a_run_frozen_past_its_lease_delivers_nothing_twice(
    rig: Rig, database: str, slate_importer, zygote: Zygote, point: str, tmp_path: Path  # type: ignore[no-untyped-def]
) -> None:
    for product in ("prospect", "aos"):
        rig.add_export(product, size=2_000)
    out = tmp_path / "frozen"
    out.mkdir()
    frozen = zygote.spawn(
        rig.full_env(ENCOURA_SLATE_CRASHPOINT=f"{point}:stop", CLAIM_TTL_SECONDS=TTL, MAX_PARALLEL_FILES="1"),
        [],
        out,
    )
    try:
        assert wait_until(lambda: _stopped(frozen) or zygote.poll(frozen) is not None, timeout=120)
        assert _stopped(frozen), f"the first run never reached {point}"
        time.sleep(FROZEN_FOR)
        second = run_in_process(rig.full_env(CLAIM_TTL_SECONDS=TTL))
        assert second.is_completed(), second.message
        os.kill(frozen, signal.SIGCONT)
        code = zygote.wait(frozen)
    finally:
        kill(frozen)
    logs = (out / "stdout.txt").read_text(errors="replace") + (out / "stderr.txt").read_text(errors="replace")
    assert code == 1, f"the resumed run must count its lost export as failed (exit 1), got {code}:\n{logs[-3000:]}"
    assert "lost its claim" in logs, logs[-3000:]
    slate_importer.drain()
    assert_invariants(rig)  # every export exactly once everywhere, one arrival each at the importer
