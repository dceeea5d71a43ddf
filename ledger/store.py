"""Ledger operations. Every method is one short transaction, safe from many threads and processes.

Claims make overlapping runs safe (a scheduled run and a manual one, or two workers): a run
claims an export with a compare-and-swap UPDATE before touching it, and renews the claim while it
works. A claim is stale when its lease has expired, when it belongs to a dead process on this
host (a killed run), or when it belongs to the same flow run id (a retry from the Prefect UI).

Claims are fenced: lease times come from the database's clock (never a worker's), and every
state-changing write for an export or an upload passes `me` and runs `WHERE claimed_by = me` in the same
transaction as the write. A run that stalled past its lease (a frozen VM, a long GC pause) and lost
the export to another run gets `ClaimLost` at its next write or rename, instead of writing anyway.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    Table,
    and_,
    bindparam,
    create_engine,
    event,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from common.crashpoints import crashpoint, quiet_section
from ledger.liveness import pid_exists
from ledger.migrations import upgrade
from ledger.models import deliveries, exports, listings, metadata, publish_intents, uploads

logger = logging.getLogger(__name__)


def worker_now() -> datetime:
    return datetime.now(UTC)


def _aware(value: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes even for timezone=True columns.
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


READ_ONLY = "ledger_read_only"  # execution option marking query-only connections
# Execution option for write transactions that carry no guarantee of their own (see Ledger._begin).
NOT_DURABLE = "ledger_not_durable"
ALL_PRODUCTS = ""  # listing-journal key of a listing without productKey (every product at once)


@dataclass(frozen=True)
class ClaimOwner:
    """Who holds a claim: host and pid find dead local holders, run_id lets a UI retry take over."""

    host: str
    pid: int
    run_id: str

    @classmethod
    def current(cls, run_id: str | None = None) -> ClaimOwner:
        return cls(socket.gethostname(), os.getpid(), run_id or f"local-{os.getpid()}")

    def token(self) -> str:
        return f"{self.host}|{self.pid}|{self.run_id}"

    @classmethod
    def parse(cls, token: str) -> ClaimOwner | None:
        try:
            host, pid, run_id = token.split("|", 2)
            return cls(host, int(pid), run_id)
        except ValueError:
            return None


class ClaimLost(Exception):
    """This run no longer holds the claim it is writing under: another run took the export (or upload)
    after this run's lease expired. The run must stop work on it, neither rename nor record."""

    def __init__(self, what: str, key: object, me: ClaimOwner) -> None:
        self.what, self.key = what, key
        super().__init__(
            f"{what} {key}: this run lost its claim (lease expired, another run took over); "
            f"stopped before writing. Run {me.run_id} on {me.host} pid {me.pid}"
        )

    def __reduce__(self):  # picklable across Prefect task boundaries
        return (_claim_lost_from_message, (self.args[0], self.what, self.key))


def _claim_lost_from_message(message: str, what: str, key: object) -> ClaimLost:
    exc = ClaimLost.__new__(ClaimLost)
    Exception.__init__(exc, message)
    exc.what, exc.key = what, key
    return exc


# The statements one delivery runs a dozen times, built once. Building a statement and its cache key
# in Python was most of the ledger's cost (a quarter of an export's CPU in py-spy); a prebuilt one
# reuses both, and SQLAlchemy's compiled cache then skips the compile too. Values go in as bind
# parameters (named b_*: SET/VALUES reserve the column names).
_SQLITE_NOW = select(func.strftime("%Y-%m-%d %H:%M:%f", "now"))
_NOW = select(func.now())
_GET_EXPORT = select(exports).where(exports.c.uid == bindparam("b_uid"))
_DELIVERIES_FOR = (
    select(deliveries).where(deliveries.c.export_uid == bindparam("b_uid")).order_by(deliveries.c.destination)
)
_INTENTS_FOR = (
    select(publish_intents).where(publish_intents.c.export_uid == bindparam("b_uid")).order_by(publish_intents.c.id)
)
_UPDATE_EXPORT = update(exports).where(exports.c.uid == bindparam("b_uid"))
_UPDATE_DELIVERY = update(deliveries).where(
    and_(deliveries.c.export_uid == bindparam("b_uid"), deliveries.c.destination == bindparam("b_destination"))
)
_MARK_DELIVERED = _UPDATE_DELIVERY.values(attempts=deliveries.c.attempts + 1, last_error=None)
_UPDATE_INTENT = update(publish_intents).where(publish_intents.c.id == bindparam("b_id"))
_SUPERSEDE_INTENTS = update(publish_intents).where(
    and_(
        publish_intents.c.export_uid == bindparam("b_uid"),
        publish_intents.c.destination == bindparam("b_destination"),
        publish_intents.c.status == "open",
    )
)
_RELEASE_EXPORT = (
    update(exports)
    .where(and_(exports.c.uid == bindparam("b_uid"), exports.c.claimed_by == bindparam("b_me")))
    .values(claimed_by=None, claim_expires_at=None)
)
_FENCES = {
    (table.name, key_col): update(table)
    .where(and_(table.c[key_col] == bindparam("b_key"), table.c.claimed_by == bindparam("b_me")))
    .values(claim_expires_at=bindparam("b_expires"))
    for table, key_col in ((exports, "uid"), (uploads, "id"))
}
_TAKE_CLAIM = {
    (table.name, key_col, free): update(table)
    .where(
        and_(
            table.c[key_col] == bindparam("b_key"),
            table.c.claimed_by.is_(None) if free else table.c.claimed_by == bindparam("b_prev"),
        )
    )
    .values(claimed_by=bindparam("b_me"), claim_expires_at=bindparam("b_expires"))
    for table, key_col in ((exports, "uid"), (uploads, "id"))
    for free in (True, False)
}
_INSERT_INTENT = insert(publish_intents)
_INSERT_DELIVERY = insert(deliveries)
_CLAIM_READS = {
    (table.name, key_col): select(table.c.claimed_by, table.c.claim_expires_at).where(
        table.c[key_col] == bindparam("b_key")
    )
    for table, key_col in ((exports, "uid"), (uploads, "id"))
}


def db_now(conn: Connection) -> datetime:
    """The database's clock: every worker's leases are measured against one clock, not each its own."""
    if conn.dialect.name == "sqlite":
        # CURRENT_TIMESTAMP has whole seconds only; %f gives milliseconds. SQLite runs on the host
        # that holds the file, so this is that host's clock (the same for every worker using it).
        value = conn.execute(_SQLITE_NOW).scalar_one()
        return datetime.strptime(value, "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=UTC)
    return _aware(conn.execute(_NOW).scalar_one())  # type: ignore[return-value]


def _ensure_wal(cursor: Any, attempts: int = 50) -> None:
    """Switch a SQLite file to WAL (persistent, so usually a no-op). The switch needs a moment of
    exclusive access and SQLite may answer "database is locked" at once, without waiting for its busy
    timeout, when workers open a fresh ledger together: retry briefly instead of failing the run."""
    for attempt in range(attempts):
        try:
            if str(cursor.execute("PRAGMA journal_mode").fetchone()[0]).lower() == "wal":
                return
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError:
            if attempt == attempts - 1:
                raise
            time.sleep(0.05 + random.random() * 0.1)


@dataclass(frozen=True)
class ExportRow:
    uid: str
    product_key: str
    status: str
    file_name: str | None
    source_name: str | None
    size: int | None
    sha256: str | None
    attempts: int
    last_error: str | None
    listed_at: datetime
    delivered_at: datetime | None


@dataclass(frozen=True)
class DeliveryRow:
    export_uid: str
    destination: str
    status: str
    relative_path: str | None
    final_path: str | None
    size: int | None
    sha256: str | None
    attempts: int
    last_error: str | None


@dataclass(frozen=True)
class IntentRow:
    """A rename (or create-only put) that was about to happen; `open` until a run settled it."""

    id: int
    export_uid: str
    destination: str
    temp_path: str | None
    final_path: str
    size: int
    sha256: str
    status: str
    note: str | None


@dataclass(frozen=True)
class UploadRow:
    id: int
    source: str
    name: str
    sha256: str
    size: int
    product_type: str
    status: str
    encoura_file_id: str | None
    error: str | None
    archived_to: str | None


def _row(cls: type, row: Any) -> Any:
    data = {f: getattr(row, f) for f in cls.__dataclass_fields__}
    for key, value in data.items():
        if isinstance(value, datetime):
            data[key] = _aware(value)
    return cls(**data)


class Ledger:
    """Durable record of work; SQLite by default, any SQLAlchemy URL (PostgreSQL for shared deployments)."""

    def __init__(self, url: str, *, claim_ttl: timedelta = timedelta(minutes=10)) -> None:
        self.url = url
        self.claim_ttl = claim_ttl
        self.engine = self._make_engine(url)
        with self._begin() as conn:
            added = upgrade(conn)  # idempotent; serialised between workers
        if added and sum(a.startswith("table") for a in added) < len(metadata.tables):  # not a fresh ledger
            logger.info("Ledger schema upgraded: added %s", ", ".join(added))
        self._secure_sqlite_file()
        self._heartbeat_stop: threading.Event | None = None
        self.lost_claims: list[str] = []  # filled by the heartbeat: claims another run took from us
        self._held: set[str] = set()  # export uids this process claimed and has not released
        self._held_lock = threading.Lock()

    def _secure_sqlite_file(self) -> None:
        """The ledger names students' files: readable by its owner only (0600), like the staged copies."""
        if not self.url.startswith("sqlite:///"):
            return
        path = self.url[len("sqlite:///") :]
        for candidate in (path, path + "-wal", path + "-shm"):
            try:
                os.chmod(candidate, 0o600)
            except OSError:
                continue

    @staticmethod
    def _make_engine(url: str) -> Engine:
        if url.startswith("sqlite"):
            engine = create_engine(url, connect_args={"timeout": 60, "check_same_thread": False})

            @event.listens_for(engine, "connect")
            def _sqlite_pragmas(dbapi_conn: Any, record: Any) -> None:
                # WAL lets readers and one writer proceed together across processes; FULL sync = durable.
                dbapi_conn.isolation_level = None
                cur = dbapi_conn.cursor()
                _ensure_wal(cur)
                cur.execute("PRAGMA synchronous=FULL")
                cur.close()
                record.info["synchronous"] = "FULL"

            @event.listens_for(engine, "begin")
            def _sqlite_begin(conn: Any) -> None:
                # Writers take the write lock up front so compare-and-swap claims cannot interleave;
                # readers do not queue behind other processes' writes (WAL gives them a snapshot).
                options = conn.get_execution_options()
                if options.get(READ_ONLY, False):
                    conn.exec_driver_sql("BEGIN")
                    return
                # Per transaction (the pragma cannot change inside one): FULL fsyncs the WAL at commit,
                # NORMAL leaves it to the next FULL commit or checkpoint (see Ledger._begin).
                sync = "NORMAL" if options.get(NOT_DURABLE) else "FULL"
                if conn.info.get("synchronous") != sync:  # the DBAPI connection's own info: kept per connection
                    conn.exec_driver_sql(f"PRAGMA synchronous={sync}")
                    conn.info["synchronous"] = sync
                conn.exec_driver_sql("BEGIN IMMEDIATE")

            return engine
        # A worker frozen inside a transaction (a suspended VM) would hold its row locks forever and
        # block the run taking over; the server ends such a session after a minute instead.
        options = {"options": "-c idle_in_transaction_session_timeout=60000"} if url.startswith("postgresql") else {}
        return create_engine(url, pool_pre_ping=True, connect_args=options)

    @contextlib.contextmanager
    def _begin(self, *, durable: bool = True) -> Iterator[Connection]:
        """One write transaction (see common.crashpoints.quiet_section for the test-only guard).

        `durable=False` (SQLite only) commits without an fsync: for writes that carry no guarantee
        of their own (claims, leases, staging notes, file names, delivery rows). Each fsync costs
        about 5 ms under the one write lock, and an export made eight of them; the writes a
        guarantee rests on (listing, intent before the rename, delivered, errors, uploads) stay
        durable. Safe because WAL keeps commit order: a durable commit also makes every earlier
        commit durable, so a power cut can only lose not-durable writes made after the last durable
        one, and those only ever prepare work nothing outside the ledger has seen yet (an expired
        lease, a staged copy to fetch again). A killed process loses nothing either way.
        """
        with quiet_section(), self.engine.connect() as conn:
            if not durable:
                conn = conn.execution_options(**{NOT_DURABLE: True})
            with conn.begin():
                yield conn

    @contextlib.contextmanager
    def _read(self) -> Iterator[Connection]:
        """A connection for queries only (no write lock on SQLite).

        Inside a quiet section too: a read is a transaction as well, and a test run frozen (":stop")
        while its heartbeat thread was between BEGIN and ROLLBACK kept a PostgreSQL session idle in
        transaction; past `idle_in_transaction_session_timeout` the server ended it, and the resumed
        run failed with that instead of finding it had lost its claim."""
        with quiet_section(), self.engine.connect().execution_options(**{READ_ONLY: True}) as conn:
            yield conn

    def close(self) -> None:
        self.stop_heartbeat()
        self.engine.dispose()

    # ------------------------------------------------------------------ claims
    def _stale(self, holder: str | None, expires: datetime | None, me: ClaimOwner, now: datetime) -> bool:
        if holder is None:
            return True
        if holder == me.token():
            return True
        if expires is not None and _aware(expires) < now:  # type: ignore[operator]
            return True
        owner = ClaimOwner.parse(holder)
        if owner is None:
            return True
        if owner.run_id == me.run_id and not owner.run_id.startswith("local-"):
            return True  # the same flow run, retried from the UI, after its first process died
        return owner.host == me.host and not pid_exists(owner.pid)

    def _claim(self, table: Table, key_col: str, key: Any, me: ClaimOwner) -> bool:
        with self._begin(durable=False) as conn:
            now = db_now(conn)
            row = conn.execute(_CLAIM_READS[table.name, key_col], {"b_key": key}).first()
            if row is None or not self._stale(row.claimed_by, row.claim_expires_at, me, now):
                return False
            # Compare and swap on the holder just read: on PostgreSQL another run may claim in between.
            take = _TAKE_CLAIM[table.name, key_col, row.claimed_by is None]
            params = {"b_key": key, "b_prev": row.claimed_by, "b_me": me.token(), "b_expires": now + self.claim_ttl}
            return conn.execute(take, params).rowcount == 1

    def _fence(self, conn: Connection, table: Table, key_col: str, key: Any, me: ClaimOwner | None) -> datetime:
        """Inside a write transaction: renew `me`'s claim or raise ClaimLost. The UPDATE takes the
        row's write lock (PostgreSQL) or runs under BEGIN IMMEDIATE (SQLite), so no other run can take
        the claim between this check and the write that follows in the same transaction.

        Returns the database's time, for the transaction's other timestamps (one clock read each)."""
        now = db_now(conn)
        if me is None:
            return now
        params = {"b_key": key, "b_me": me.token(), "b_expires": now + self.claim_ttl}
        if conn.execute(_FENCES[table.name, key_col], params).rowcount != 1:
            what = "export" if table is exports else "upload"
            raise ClaimLost(what, key, me)
        return now

    def holds_export(self, uid: str, me: ClaimOwner) -> bool:
        """Renew and report: True while this run still holds the export's claim."""
        try:
            with self._begin(durable=False) as conn:
                self._fence(conn, exports, "uid", uid, me)
        except ClaimLost:
            return False
        return True

    def claim_export(self, uid: str, me: ClaimOwner) -> bool:
        """Take the export for this run; False when another live run is working on it."""
        won = self._claim(exports, "uid", uid, me)
        if won:
            with self._held_lock:
                self._held.add(uid)
        return won

    def release_export(self, uid: str, me: ClaimOwner) -> None:
        with self._held_lock:
            self._held.discard(uid)
        with self._begin(durable=False) as conn:
            conn.execute(_RELEASE_EXPORT, {"b_uid": uid, "b_me": me.token()})

    def renew_claims(self, me: ClaimOwner) -> int:
        """Extend every lease this run holds (database clock); returns how many it still holds, so a
        caller that expected more learns that another run took some over."""
        renewed = 0
        with self._begin(durable=False) as conn:
            expires = db_now(conn) + self.claim_ttl
            for table in (exports, uploads):
                result = conn.execute(
                    update(table).where(table.c.claimed_by == me.token()).values(claim_expires_at=expires)
                )
                renewed += result.rowcount
        return renewed

    def start_heartbeat(self, me: ClaimOwner) -> None:
        """Renew this run's claims in the background so long transfers keep them."""
        if self._heartbeat_stop is not None:
            return
        stop = threading.Event()
        self._heartbeat_stop = stop
        interval = max(self.claim_ttl.total_seconds() / 3, 0.5)

        def beat() -> None:
            while not stop.wait(interval):
                try:
                    self.renew_claims(me)
                    self.note_lost_claims(me)
                except Exception:  # noqa: S112 - a missed beat only shortens the lease
                    continue

        threading.Thread(target=beat, name="ledger-heartbeat", daemon=True).start()

    def note_lost_claims(self, me: ClaimOwner) -> None:
        """Log once per export claimed by this run that another run now holds: the writes that follow
        will be refused (ClaimLost); the log line says why before they are."""
        with self._held_lock:
            held = sorted(self._held)
        if not held:
            return
        with self._read() as conn:
            rows = conn.execute(
                select(exports.c.uid).where(and_(exports.c.uid.in_(held), exports.c.claimed_by != me.token()))
            ).all()
        for (uid,) in rows:
            if uid not in self.lost_claims:
                self.lost_claims.append(uid)
                logger.error(
                    "Export %s: this run's claim expired and another run took the export over "
                    "(was this worker frozen or suspended?); this run will not rename or record it",
                    uid,
                )

    def stop_heartbeat(self) -> None:
        if self._heartbeat_stop is not None:
            self._heartbeat_stop.set()
            self._heartbeat_stop = None

    # ---------------------------------------------------------------- listings
    def listing_started(self, product_key: str) -> int:
        with self._begin() as conn:
            result = conn.execute(insert(listings).values(product_key=product_key, started_at=worker_now()))
            return int(result.inserted_primary_key[0])

    def listing_finished(self, listing_id: int, *, recovered_older: bool = True) -> None:
        """Close the journal entry and, when `recovered_older`, the older interrupted ones this run
        recovered: those of the same product, or of every product for an all-products listing (key "")."""
        with self._begin() as conn:
            key = conn.execute(select(listings.c.product_key).where(listings.c.id == listing_id)).scalar_one()
            if not recovered_older:
                conn.execute(update(listings).where(listings.c.id == listing_id).values(finished_at=worker_now()))
                return
            same = listings.c.product_key.isnot(None) if key == ALL_PRODUCTS else listings.c.product_key == key
            conn.execute(
                update(listings)
                .where(and_(same, listings.c.finished_at.is_(None), listings.c.id <= listing_id))
                .values(finished_at=worker_now())
            )

    def interrupted_listing(self, product_key: str) -> bool:
        """True when an earlier listing that covered this product never recorded its answer (a killed run)."""
        covers = (
            listings.c.product_key.isnot(None)
            if product_key == ALL_PRODUCTS
            else listings.c.product_key.in_((product_key, ALL_PRODUCTS))
        )
        with self._read() as conn:
            row = conn.execute(select(listings.c.id).where(and_(covers, listings.c.finished_at.is_(None)))).first()
        return row is not None

    def first_listing_at(self) -> datetime | None:
        with self._read() as conn:
            value = conn.execute(select(listings.c.started_at).order_by(listings.c.id).limit(1)).scalar()
        return _aware(value)

    # ----------------------------------------------------------------- exports
    def record_listed(self, listed: list[tuple[str, str]]) -> list[str]:
        """Insert (uid, product_key) pairs not seen before; returns the new uids. Idempotent."""
        crashpoint("listing.answered")  # a listing's answer (which consumed the exports) is not recorded yet
        new: list[str] = []
        with self._begin() as conn:
            for uid, product_key in listed:
                exists = conn.execute(select(exports.c.uid).where(exports.c.uid == uid)).first()
                if exists:
                    continue
                values = {"uid": uid, "product_key": product_key, "status": "listed", "listed_at": worker_now()}
                values["attempts"] = 0
                if conn.dialect.name == "postgresql":
                    # READ COMMITTED: a concurrent run may insert the same uid between our check and insert.
                    from sqlalchemy.dialects.postgresql import insert as pg_insert

                    stmt = pg_insert(exports).values(**values).on_conflict_do_nothing(index_elements=["uid"])
                    if conn.execute(stmt.returning(exports.c.uid)).first() is None:
                        continue
                else:
                    conn.execute(insert(exports).values(**values))  # SQLite: BEGIN IMMEDIATE serialises this
                new.append(uid)
        crashpoint("ledger.record_listed")
        return new

    def get_export(self, uid: str) -> ExportRow | None:
        with self._read() as conn:
            row = conn.execute(_GET_EXPORT, {"b_uid": uid}).first()
        return _row(ExportRow, row) if row else None

    def pending_exports(self, product_keys: list[str] | None = None) -> list[ExportRow]:
        """Listed or staged exports, oldest first: what this run (or a crashed one) still owes."""
        query = select(exports).where(exports.c.status.in_(("listed", "staged"))).order_by(exports.c.listed_at)
        if product_keys:
            query = query.where(exports.c.product_key.in_(product_keys))
        with self._read() as conn:
            return [_row(ExportRow, r) for r in conn.execute(query)]

    def all_exports(self) -> list[ExportRow]:
        with self._read() as conn:
            return [_row(ExportRow, r) for r in conn.execute(select(exports).order_by(exports.c.listed_at))]

    def assign_file_name(
        self, uid: str, wanted: str, fallback: str, *, me: ClaimOwner | None = None, current: ExportRow | None = None
    ) -> str:
        """Give the export a file name no other export ever had; keep the one it already has.

        `current`: the row as the caller read it under its claim (saves reading it again)."""
        current = current or self.get_export(uid)
        if current and current.file_name:
            return current.file_name
        for candidate in (wanted, fallback):
            try:
                with self._begin(durable=False) as conn:
                    self._fence(conn, exports, "uid", uid, me)
                    conn.execute(_UPDATE_EXPORT, {"b_uid": uid, "file_name": candidate})
                return candidate
            except IntegrityError:
                continue
        raise RuntimeError(f"export {uid}: could not assign a unique file name")

    def mark_staged(
        self, uid: str, *, source_name: str, size: int, sha256: str, me: ClaimOwner | None = None
    ) -> None:
        values = {"status": "staged", "source_name": source_name, "size": size, "sha256": sha256, "last_error": None}
        with self._begin(durable=False) as conn:
            self._fence(conn, exports, "uid", uid, me)
            conn.execute(_UPDATE_EXPORT, {"b_uid": uid, "staged_at": worker_now(), **values})
        crashpoint("ledger.mark_staged")

    def mark_export_error(
        self, uid: str, error: str, *, rejected: bool = False, me: ClaimOwner | None = None
    ) -> None:
        values: dict[str, Any] = {"last_error": error[:2000], "attempts": exports.c.attempts + 1}
        if rejected:
            values["status"] = "rejected"
        with self._begin() as conn:
            self._fence(conn, exports, "uid", uid, me)
            conn.execute(update(exports).where(exports.c.uid == uid).values(**values))

    def mark_export_delivered(self, uid: str, *, me: ClaimOwner | None = None) -> None:
        with self._begin() as conn:
            self._fence(conn, exports, "uid", uid, me)
            conn.execute(
                _UPDATE_EXPORT, {"b_uid": uid, "status": "delivered", "delivered_at": worker_now(), "last_error": None}
            )
        crashpoint("ledger.mark_export_delivered")

    def reset_for_redelivery(self, uid: str, product_key: str = "") -> None:
        """--redeliver: make a delivered (or unknown) export pending again, for every destination."""
        self.record_listed([(uid, product_key)])
        with self._begin() as conn:
            conn.execute(update(exports).where(exports.c.uid == uid).values(status="listed", last_error=None))
            conn.execute(
                update(deliveries).where(deliveries.c.export_uid == uid).values(status="pending", last_error=None)
            )

    # -------------------------------------------------------------- deliveries
    def ensure_deliveries(
        self, uid: str, destinations: list[str], *, me: ClaimOwner | None = None
    ) -> list[DeliveryRow]:
        """Add a pending row per destination not yet known; returns all of the export's rows (read in
        the same transaction, so the caller need not read them again)."""
        with self._begin(durable=False) as conn:
            self._fence(conn, exports, "uid", uid, me)
            have = [_row(DeliveryRow, r) for r in conn.execute(_DELIVERIES_FOR, {"b_uid": uid})]
            missing = sorted(set(destinations) - {d.destination for d in have})
            for name in missing:
                pending = {"export_uid": uid, "destination": name, "status": "pending", "attempts": 0}
                conn.execute(_INSERT_DELIVERY, pending)
                # What the row now holds (every other column NULL), without reading it back.
                empty = {"relative_path": None, "final_path": None, "size": None, "sha256": None, "last_error": None}
                have.append(DeliveryRow(**pending, **empty))
            return sorted(have, key=lambda d: d.destination)  # the order _DELIVERIES_FOR gives

    def deliveries_for(self, uid: str) -> list[DeliveryRow]:
        with self._read() as conn:
            return [_row(DeliveryRow, r) for r in conn.execute(_DELIVERIES_FOR, {"b_uid": uid})]

    def all_deliveries(self) -> list[DeliveryRow]:
        with self._read() as conn:
            return [_row(DeliveryRow, r) for r in conn.execute(select(deliveries))]

    def mark_delivered(
        self,
        uid: str,
        destination: str,
        *,
        relative_path: str,
        final_path: str,
        size: int,
        sha256: str | None,
        me: ClaimOwner | None = None,
        intent_id: int | None = None,
        intent_status: str = "delivered",
        note: str | None = None,
    ) -> None:
        """Record a confirmed delivery and, in the same transaction, close the intent it came from."""
        delivered = {"relative_path": relative_path, "final_path": final_path, "size": size, "sha256": sha256}
        with self._begin() as conn:
            now = self._fence(conn, exports, "uid", uid, me)
            if intent_id is not None:
                conn.execute(
                    _UPDATE_INTENT, {"b_id": intent_id, "status": intent_status, "note": note, "settled_at": now}
                )
            key = {"b_uid": uid, "b_destination": destination}
            conn.execute(_MARK_DELIVERED, {**key, "status": "delivered", "delivered_at": worker_now(), **delivered})
        crashpoint("ledger.mark_delivered")

    def mark_delivery_failed(self, uid: str, destination: str, error: str, *, me: ClaimOwner | None = None) -> None:
        with self._begin() as conn:
            self._fence(conn, exports, "uid", uid, me)
            conn.execute(
                update(deliveries)
                .where(and_(deliveries.c.export_uid == uid, deliveries.c.destination == destination))
                .values(status="failed", last_error=error[:2000], attempts=deliveries.c.attempts + 1)
            )

    # --------------------------------------------------------------- intents
    def record_intent(
        self,
        uid: str,
        destination: str,
        *,
        temp_path: str | None,
        final_path: str,
        size: int,
        sha256: str,
        me: ClaimOwner | None = None,
    ) -> int:
        """Write down the rename about to happen (fenced: ClaimLost if another run took the export).

        An older open intent for the same export and destination is superseded: a run settles
        open intents before it publishes, so one still open here belonged to an attempt that
        failed before its rename and left nothing behind but what the sweep removes."""
        with self._begin() as conn:
            now = self._fence(conn, exports, "uid", uid, me)
            superseded = {"status": "abandoned", "note": "superseded by a newer attempt", "settled_at": now}
            conn.execute(_SUPERSEDE_INTENTS, {"b_uid": uid, "b_destination": destination, **superseded})
            intent = {"temp_path": temp_path, "final_path": final_path, "size": size, "sha256": sha256}
            result = conn.execute(
                _INSERT_INTENT,
                {"export_uid": uid, "destination": destination, "status": "open", "created_at": now, **intent},
            )
            intent_id = int(result.inserted_primary_key[0])
        crashpoint("ledger.record_intent")
        return intent_id

    def open_intents(self, uid: str | None = None) -> list[IntentRow]:
        query = select(publish_intents).where(publish_intents.c.status == "open").order_by(publish_intents.c.id)
        if uid is not None:
            query = query.where(publish_intents.c.export_uid == uid)
        with self._read() as conn:
            return [_row(IntentRow, r) for r in conn.execute(query)]

    def intents_for(self, uid: str) -> list[IntentRow]:
        with self._read() as conn:
            return [_row(IntentRow, r) for r in conn.execute(_INTENTS_FOR, {"b_uid": uid})]

    def close_intent(self, intent_id: int, status: str, note: str, *, uid: str, me: ClaimOwner | None = None) -> None:
        """Settle an intent that did not end in a delivery (e.g. `abandoned`: nothing arrived)."""
        with self._begin() as conn:
            self._fence(conn, exports, "uid", uid, me)
            conn.execute(
                update(publish_intents)
                .where(publish_intents.c.id == intent_id)
                .values(status=status, note=note[:2000], settled_at=db_now(conn))
            )

    # ----------------------------------------------------------------- uploads
    def find_upload(self, *, sha256: str, name: str, product_type: str) -> UploadRow | None:
        with self._read() as conn:
            row = conn.execute(
                select(uploads).where(
                    and_(uploads.c.sha256 == sha256, uploads.c.name == name, uploads.c.product_type == product_type)
                )
            ).first()
        return _row(UploadRow, row) if row else None

    def claim_upload(
        self, *, source: str, name: str, sha256: str, size: int, product_type: str, me: ClaimOwner
    ) -> UploadRow | None:
        """Create or take the upload record for this content; None when another live run holds it."""
        try:
            with self._begin() as conn:
                conn.execute(
                    insert(uploads).values(
                        source=source,
                        name=name,
                        sha256=sha256,
                        size=size,
                        product_type=product_type,
                        status="new",
                        created_at=worker_now(),
                        updated_at=worker_now(),
                    )
                )
        except IntegrityError:
            pass
        row = self.find_upload(sha256=sha256, name=name, product_type=product_type)
        if row is None or not self._claim(uploads, "id", row.id, me):
            return None
        return self.find_upload(sha256=sha256, name=name, product_type=product_type)

    def update_upload(self, upload_id: int, *, me: ClaimOwner | None = None, **values: Any) -> None:
        """Change an upload record; with `me`, only while this run holds the upload's claim (ClaimLost)."""
        allowed = {"status", "encoura_file_id", "error", "archived_to", "source"}
        unknown = set(values) - allowed
        if unknown:
            raise ValueError(f"unknown upload fields: {sorted(unknown)}")
        with self._begin() as conn:
            self._fence(conn, uploads, "id", upload_id, me)
            conn.execute(update(uploads).where(uploads.c.id == upload_id).values(updated_at=worker_now(), **values))

    def holds_upload(self, upload_id: int, me: ClaimOwner) -> bool:
        """Renew and report: True while this run still holds the upload's claim. Asked right before a
        call that cannot be fenced by the ledger itself (the POST that creates an Encoura record, a
        move in the source folder), so a run that lost its claim stops before it, not after."""
        try:
            with self._begin() as conn:
                self._fence(conn, uploads, "id", upload_id, me)
        except ClaimLost:
            return False
        return True

    def release_upload(self, upload_id: int, me: ClaimOwner) -> None:
        with self._begin() as conn:
            conn.execute(
                update(uploads)
                .where(and_(uploads.c.id == upload_id, uploads.c.claimed_by == me.token()))
                .values(claimed_by=None, claim_expires_at=None)
            )

    def unfinished_uploads(self) -> list[UploadRow]:
        """Uploads sent to Encoura but not yet confirmed and archived: a re-run resumes polling these."""
        with self._read() as conn:
            rows = conn.execute(select(uploads).where(or_(uploads.c.status.notin_(("archived", "rejected")))))
            return [_row(UploadRow, r) for r in rows]
