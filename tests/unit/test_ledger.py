"""Ledger claims decide who delivers what when runs overlap or crash: test them hard, on SQLite."""

from __future__ import annotations

import subprocess
import sys
import threading
from datetime import timedelta
from pathlib import Path

from ledger import ClaimOwner, Ledger


def _ledger(tmp_path: Path, **kw) -> Ledger:
    return Ledger(f"sqlite:///{tmp_path / 'ledger.sqlite3'}", **kw)


def test_record_listed_is_idempotent(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path)
    assert ledger.record_listed([("a", "prospect"), ("b", "inquiry")]) == ["a", "b"]
    assert ledger.record_listed([("a", "prospect"), ("c", "inquiry")]) == ["c"]
    assert [r.uid for r in ledger.pending_exports()] == ["a", "b", "c"]
    assert [r.uid for r in ledger.pending_exports(["inquiry"])] == ["b", "c"]


def test_only_one_of_many_concurrent_claimers_wins(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path)
    ledger.record_listed([("x", "prospect")])
    wins: list[int] = []
    barrier = threading.Barrier(8)

    def claim(i: int) -> None:
        me = ClaimOwner.current(f"run-{i}")  # all alive (this process), all different runs
        barrier.wait()
        if Ledger(ledger.url).claim_export("x", me):
            wins.append(i)

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(wins) == 1


def test_claim_of_a_dead_local_process_is_stale(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path)
    ledger.record_listed([("x", "prospect")])
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    dead = ClaimOwner(ClaimOwner.current().host, proc.pid, "run-dead")
    assert ledger.claim_export("x", dead)
    assert ledger.claim_export("x", ClaimOwner.current("run-new"))


def test_live_claim_blocks_others_until_released_or_expired(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path, claim_ttl=timedelta(seconds=60))
    ledger.record_listed([("x", "prospect")])
    live = ClaimOwner("other-host", 1, "run-a")  # another machine: only the lease can expire it
    assert ledger.claim_export("x", live)
    assert not ledger.claim_export("x", ClaimOwner.current("run-b"))
    ledger.release_export("x", live)
    assert ledger.claim_export("x", ClaimOwner.current("run-b"))


def test_expired_lease_and_same_flow_run_retry_take_over(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path, claim_ttl=timedelta(seconds=-1))  # every lease already expired
    ledger.record_listed([("x", "prospect"), ("y", "prospect")])
    assert ledger.claim_export("x", ClaimOwner("other-host", 1, "run-a"))
    assert ledger.claim_export("x", ClaimOwner.current("run-b"))
    long = _ledger(tmp_path, claim_ttl=timedelta(hours=1))
    assert long.claim_export("y", ClaimOwner("other-host", 1, "flow-run-1"))
    # The UI's retry runs the same flow run id in a new process: it may take over.
    assert long.claim_export("y", ClaimOwner.current("flow-run-1"))


def test_file_names_are_unique_forever(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path)
    ledger.record_listed([("a", "p"), ("b", "p")])
    assert ledger.assign_file_name("a", "P.csv", "P_a.csv") == "P.csv"
    assert ledger.assign_file_name("b", "P.csv", "P_b.csv") == "P_b.csv"
    assert ledger.assign_file_name("a", "other.csv", "x.csv") == "P.csv"  # stable once assigned


def test_deliveries_and_redelivery(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path)
    ledger.record_listed([("a", "p")])
    ledger.ensure_deliveries("a", ["slate", "share"])
    ledger.mark_delivered("a", "slate", relative_path="f.csv", final_path="sftp://h/f.csv", size=1, sha256="s")
    ledger.mark_delivery_failed("a", "share", "permission denied")
    assert {d.destination: d.status for d in ledger.deliveries_for("a")} == {"share": "failed", "slate": "delivered"}
    ledger.mark_export_delivered("a")
    assert ledger.pending_exports() == []
    ledger.reset_for_redelivery("a")
    assert [r.uid for r in ledger.pending_exports()] == ["a"]
    assert {d.status for d in ledger.deliveries_for("a")} == {"pending"}


def test_interrupted_listing_is_detected_until_a_later_listing_finishes(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path)
    first = ledger.listing_started("prospect")
    assert ledger.interrupted_listing("prospect")
    assert not ledger.interrupted_listing("inquiry")
    second = ledger.listing_started("prospect")
    ledger.listing_finished(second)
    assert not ledger.interrupted_listing("prospect")
    assert first < second


def test_all_products_listing_journal_covers_every_product(tmp_path: Path) -> None:
    from ledger.store import ALL_PRODUCTS

    ledger = _ledger(tmp_path)
    ledger.listing_started(ALL_PRODUCTS)  # killed before recording its answer
    assert ledger.interrupted_listing("prospect") and ledger.interrupted_listing(ALL_PRODUCTS)
    ledger.listing_started("inquiry")  # killed too
    finished = ledger.listing_started(ALL_PRODUCTS)
    ledger.listing_finished(finished)  # its recovery covered every product
    assert not ledger.interrupted_listing("inquiry") and not ledger.interrupted_listing(ALL_PRODUCTS)


def test_a_failed_listing_does_not_close_an_older_interrupted_one(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path)
    ledger.listing_started("prospect")  # killed: its answer was never recorded
    failed = ledger.listing_started("prospect")
    ledger.listing_finished(failed, recovered_older=False)  # e.g. HTTP 400: consumed nothing, recovered nothing
    assert ledger.interrupted_listing("prospect")
