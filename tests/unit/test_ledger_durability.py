"""Issue 15: which ledger commits are fsynced. The writes a guarantee rests on (listing, intent before
the rename, delivered) commit with synchronous=FULL; claims, file names, staging notes and delivery
rows commit with NORMAL, made durable by the next FULL commit (WAL keeps commit order).

Observed through SQLAlchemy's public `commit` event on a real SQLite file: the synchronous level in
effect on the connection as each transaction commits (the ledger sets the pragma only when it changes)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from sqlalchemy import Connection, event

from ledger import ClaimOwner, Ledger

LEVELS = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}


def _sync_at_each_commit(ledger: Ledger) -> list[str]:
    seen: list[str] = []

    def record(conn: Connection) -> None:
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        seen.append(LEVELS[cursor.execute("PRAGMA synchronous").fetchone()[0]])
        cursor.close()

    event.listen(ledger.engine, "commit", record)
    return seen


def test_only_guarantee_carrying_writes_are_fsynced(tmp_path: Path) -> None:
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    me = ClaimOwner.current("run-1")
    seen = _sync_at_each_commit(ledger)
    steps: list[tuple[str, int]] = []

    def step(name: str, action: Callable[[], object]) -> None:
        before = len(seen)
        action()
        steps.append((name, len(seen) - before))
        assert len(seen) - before >= 1, f"{name}: no write transaction seen"

    step("listed", lambda: ledger.record_listed([("u1", "aos")]))
    step("claim", lambda: ledger.claim_export("u1", me))
    step("name", lambda: ledger.assign_file_name("u1", "a.csv", "a-u1.csv", me=me))
    step("staged", lambda: ledger.mark_staged("u1", source_name="a.csv", size=1, sha256="0" * 64, me=me))
    step("deliveries", lambda: ledger.ensure_deliveries("u1", ["slate"], me=me))
    intent: list[int] = []
    step(
        "intent",
        lambda: intent.append(
            ledger.record_intent("u1", "slate", temp_path="t.part", final_path="a.csv", size=1, sha256="0" * 64, me=me)
        ),
    )
    marks: dict[str, list[str]] = {}
    index = 0
    for name, count in steps:
        marks[name] = seen[index : index + count]
        index += count
    ledger.mark_delivered(
        "u1",
        "slate",
        relative_path="a.csv",
        final_path="sftp://x/a.csv",
        size=1,
        sha256="0" * 64,
        me=me,
        intent_id=intent[0],
        intent_status="delivered",
    )
    delivered = seen[index:]
    ledger.close()

    for name in ("listed", "intent"):
        assert marks[name] == ["FULL"], (name, marks[name])
    assert delivered == ["FULL"], delivered
    for name in ("claim", "name", "staged", "deliveries"):
        assert marks[name] == ["NORMAL"], (name, marks[name])
