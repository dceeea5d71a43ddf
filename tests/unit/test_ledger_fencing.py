"""Fenced claims, publish intents and the schema upgrade, on SQLite (PostgreSQL: tests/reliability/
test_reliability_lease_loss.py and tests/integration/test_ledger_fencing_pg.py)."""

from __future__ import annotations

import sqlite3
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import inspect

from ledger import ClaimLost, ClaimOwner, Ledger
from ledger.store import db_now


def _ledger(tmp_path: Path, **kw) -> Ledger:  # type: ignore[no-untyped-def]
    return Ledger(f"sqlite:///{tmp_path / 'ledger.sqlite3'}", **kw)


A = ClaimOwner("host-a", 1, "run-a")  # other hosts: only the lease can expire their claims
B = ClaimOwner("host-b", 2, "run-b")


def test_every_export_write_requires_holding_the_claim(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path, claim_ttl=timedelta(seconds=0.5))
    ledger.record_listed([("x", "prospect")])
    assert ledger.claim_export("x", A)
    ledger.mark_staged("x", source_name="s.csv", size=1, sha256="h", me=A)  # held: fine
    time.sleep(0.7)  # A stalls past its lease
    assert ledger.claim_export("x", B)
    writes = [
        lambda: ledger.mark_staged("x", source_name="s.csv", size=1, sha256="h", me=A),
        lambda: ledger.assign_file_name("x", "f.csv", "g.csv", me=A),
        lambda: ledger.ensure_deliveries("x", ["slate"], me=A),
        lambda: ledger.mark_delivered("x", "slate", relative_path="f", final_path="f", size=1, sha256="h", me=A),
        lambda: ledger.mark_delivery_failed("x", "slate", "boom", me=A),
        lambda: ledger.mark_export_error("x", "boom", me=A),
        lambda: ledger.mark_export_delivered("x", me=A),
        lambda: ledger.record_intent("x", "slate", temp_path=".t", final_path="f", size=1, sha256="h", me=A),
    ]
    for write in writes:
        with pytest.raises(ClaimLost, match="lost its claim"):
            write()
    assert ledger.get_export("x").status == "staged"  # type: ignore[union-attr]
    assert not ledger.holds_export("x", A)
    assert ledger.holds_export("x", B)
    ledger.ensure_deliveries("x", ["slate"], me=B)
    ledger.mark_export_delivered("x", me=B)
    assert ledger.get_export("x").status == "delivered"  # type: ignore[union-attr]


def test_renew_reports_how_many_claims_are_still_held(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path, claim_ttl=timedelta(seconds=0.5))
    ledger.record_listed([("x", "prospect"), ("y", "prospect")])
    assert ledger.claim_export("x", A) and ledger.claim_export("y", A)
    assert ledger.renew_claims(A) == 2
    time.sleep(0.7)
    assert ledger.claim_export("y", B)
    assert ledger.renew_claims(A) == 1  # y was taken over
    ledger.note_lost_claims(A)
    assert ledger.lost_claims == ["y"]


def test_leases_use_the_database_clock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker whose clock runs an hour fast must not see live leases as expired."""
    import ledger.store as store

    ledger = _ledger(tmp_path, claim_ttl=timedelta(seconds=60))
    ledger.record_listed([("x", "prospect")])
    assert ledger.claim_export("x", A)
    real_now = store.worker_now
    monkeypatch.setattr(store, "worker_now", lambda: real_now() + timedelta(hours=1))
    assert not ledger.claim_export("x", B)
    with ledger.engine.connect() as conn:
        database_now = db_now(conn)
    assert abs((database_now - real_now()).total_seconds()) < 5


def test_intents_are_recorded_under_the_claim_and_closed_with_the_delivery(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path)
    ledger.record_listed([("x", "prospect")])
    assert ledger.claim_export("x", A)
    ledger.ensure_deliveries("x", ["slate"], me=A)
    first = ledger.record_intent("x", "slate", temp_path="a/.t1", final_path="a/f", size=3, sha256="h", me=A)
    second = ledger.record_intent("x", "slate", temp_path="a/.t2", final_path="a/f", size=3, sha256="h", me=A)
    assert [i.id for i in ledger.open_intents()] == [second]  # the older attempt was superseded
    ledger.mark_delivered(
        "x", "slate", relative_path="a/f", final_path="x", size=3, sha256="h", me=A, intent_id=second,
        intent_status="taken", note="taken by the importer",
    )
    assert ledger.open_intents() == []
    statuses = {i.id: i.status for i in ledger.intents_for("x")}
    assert statuses == {first: "abandoned", second: "taken"}


def test_an_old_ledger_is_upgraded_in_place_idempotently(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite3"
    conn = sqlite3.connect(path)
    # The shape of an earlier ledger: no publish_intents table, exports without sha256.
    conn.execute(
        "CREATE TABLE exports (uid VARCHAR(128) PRIMARY KEY, product_key VARCHAR(64) NOT NULL, "
        "status VARCHAR(16) NOT NULL, file_name VARCHAR(255) UNIQUE, source_name TEXT, size BIGINT, "
        "listed_at DATETIME NOT NULL, staged_at DATETIME, delivered_at DATETIME, attempts INTEGER NOT NULL, "
        "last_error TEXT, claimed_by VARCHAR(255), claim_expires_at DATETIME)"
    )
    conn.execute(
        "INSERT INTO exports (uid, product_key, status, listed_at, attempts) VALUES ('old', 'aos', 'listed', "
        "'2026-01-01 00:00:00.000000', 0)"
    )
    conn.commit()
    conn.close()
    ledger = Ledger(f"sqlite:///{path}")
    names = inspect(ledger.engine).get_table_names()
    assert "publish_intents" in names
    assert "sha256" in {c["name"] for c in inspect(ledger.engine).get_columns("exports")}
    assert ledger.get_export("old").status == "listed"  # type: ignore[union-attr]
    ledger.close()
    Ledger(f"sqlite:///{path}").close()  # second start: nothing left to add, no error


def test_the_ledger_file_is_private(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path)
    ledger.record_listed([("x", "prospect")])
    assert (tmp_path / "ledger.sqlite3").stat().st_mode & 0o777 == 0o600
