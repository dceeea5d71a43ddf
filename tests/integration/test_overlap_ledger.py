"""The ledger under concurrent starts: several workers opening a fresh database, and recording the
same listing at once, on SQLite and PostgreSQL (threads with their own engines, like processes)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ledger import ClaimOwner, Ledger

WORKERS = 4


def _all_at_once(fn: Callable[[int], Any]) -> list[Any]:
    barrier = threading.Barrier(WORKERS)
    results: list[Any] = [None] * WORKERS

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = fn(i)
        except Exception as exc:
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(WORKERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ledger.sqlite3'}"
    return request.getfixturevalue("postgres_url")


def test_workers_opening_a_fresh_ledger_and_recording_one_listing(ledger_url: str) -> None:
    ledgers = _all_at_once(lambda i: Ledger(ledger_url))
    errors = [r for r in ledgers if isinstance(r, Exception)]
    assert not errors, errors
    try:
        uids = [f"uid-{n}" for n in range(20)]
        new = _all_at_once(lambda i: ledgers[i].record_listed([(u, "prospect") for u in uids]))
        assert not [r for r in new if isinstance(r, Exception)], new
        recorded = [uid for batch in new for uid in batch]
        assert sorted(recorded) == sorted(uids), "every uid is new to exactly one worker"

        owners = [ClaimOwner(f"host-{i}", 1000 + i, f"run-{i}") for i in range(WORKERS)]
        # One host per owner, so no claim looks stale: only the compare-and-swap decides.
        won = _all_at_once(lambda i: [u for u in uids if ledgers[i].claim_export(u, owners[i])])
        assert sorted(u for batch in won for u in batch) == sorted(uids), "each export claimed exactly once"
    finally:
        for ledger in ledgers:
            ledger.close()
