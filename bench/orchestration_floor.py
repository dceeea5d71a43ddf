"""The floor under our orchestration cost: a Prefect flow with one no-op task run per file, nothing else.

    python -m bench.orchestration_floor --count 200 [--durable-db PATH] [--window 8]

Submitted the way flows/encoura_export.py submits its deliveries (one Task for every file, `.submit`
with plain-string parameters naming the run through task_run_name, on a ThreadPoolTaskRunner sized
to common.fan_out's largest window, at most `--window` in flight through common.fan_out), with the
same Prefect settings our CLI sets before Prefect is imported. So the slope of this flow's run time
between two counts is what Prefect alone costs per file on this machine and server; our flow's
slope can only be above it.

`--durable-db`: each task also makes the two durable SQLite commits a delivery's exactly-once
guarantee needs (the intent before the rename, then delivered), configured like the ledger (WAL,
synchronous=FULL, BEGIN IMMEDIATE, SQLAlchemy Core, one engine shared by the task threads), so the
floor includes the fsyncs we cannot drop. Written here rather than borrowed from ledger/, so the
floor stays the bare cost, whatever the ledger does around those commits.

Needs PREFECT_API_URL (the benchmark's running server). Prints one JSON line with what ran.
"""

# ruff: noqa: E402 - Prefect is imported only after prepare_environment(), below
from __future__ import annotations

from common.cli import configure_logging, prepare_environment

# Before Prefect is imported, exactly as flows/__init__.py does for our flow: the same logging
# settings (extra loggers, levels, filters) make the same per-task-run log traffic to the API.
prepare_environment()
configure_logging()

import argparse
import json
from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.task_runners import ThreadPoolTaskRunner
from sqlalchemy import Column, Engine, MetaData, String, Table, create_engine, event, func, insert, select, update

from common.fan_out import MAX_WINDOW, fan_out

FLOW_NAME = "orchestration-floor"
DURABLE_FLOW_NAME = "orchestration-floor-durable"

_metadata = MetaData()
_rows = Table("floor_rows", _metadata, Column("uid", String, primary_key=True), Column("status", String))
_engine: Engine | None = None  # set before the flow starts; tasks take plain strings only


def _durable_engine(path: Path) -> Engine:
    engine = create_engine(f"sqlite:///{path}", connect_args={"timeout": 60, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # SQLAlchemy's begin event below issues BEGIN itself
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=FULL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    _metadata.create_all(engine)
    return engine


@task(name="floor-noop", cache_policy=NO_CACHE, task_run_name="{label} ({uid})")
def noop(uid: str, label: str = "export") -> str:
    """Nothing but the task run itself: Prefect's per-file cost."""
    return uid


@task(name="floor-durable", cache_policy=NO_CACHE, task_run_name="{label} ({uid})")
def durable(uid: str, label: str = "export") -> str:
    """Two durable commits, each its own fsync'd transaction, as a delivery makes around its rename."""
    if _engine is None:
        raise RuntimeError("no database: run with --durable-db")
    with _engine.begin() as conn:
        conn.execute(insert(_rows).values(uid=uid, status="intent"))
    with _engine.begin() as conn:
        conn.execute(update(_rows).where(_rows.c.uid == uid).values(status="delivered"))
    return uid


def _run(which: Any, count: int, window: int, retries: int, retry_delay: float) -> int:
    # One Task for every file, with the delivery's retry options, like our flow.
    job = which.with_options(retries=retries, retry_delay_seconds=retry_delay)
    uids = [f"floor-{n:06d}" for n in range(count)]

    def submit(uid: str) -> Any:
        return job.submit(uid, label=f"prospect tiny-{uid}.csv")

    return sum(not isinstance(result, Exception) for _, result in fan_out(submit, uids, limit=window))


@flow(name=FLOW_NAME, task_runner=ThreadPoolTaskRunner(max_workers=MAX_WINDOW))
def orchestration_floor(count: int, window: int, retries: int, retry_delay: float) -> int:
    return _run(noop, count, window, retries, retry_delay)


@flow(name=DURABLE_FLOW_NAME, task_runner=ThreadPoolTaskRunner(max_workers=MAX_WINDOW))
def orchestration_floor_durable(count: int, window: int, retries: int, retry_delay: float) -> int:
    return _run(durable, count, window, retries, retry_delay)


def main() -> int:
    global _engine
    p = argparse.ArgumentParser(prog="python -m bench.orchestration_floor")
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--window", type=int, default=8, help="tasks in flight (our MAX_PARALLEL_FILES default)")
    p.add_argument("--retries", type=int, default=3)
    p.add_argument("--retry-delay", type=float, default=10.0)
    p.add_argument("--durable-db", type=Path, help="add two durable SQLite commits per task, in this file")
    args = p.parse_args()
    options = {"count": args.count, "window": args.window, "retries": args.retries, "retry_delay": args.retry_delay}
    out: dict[str, Any] = {"flow": DURABLE_FLOW_NAME if args.durable_db else FLOW_NAME, "tasks": args.count}
    if args.durable_db:
        _engine = _durable_engine(args.durable_db)
        out["completed"] = orchestration_floor_durable(**options)
        with _engine.connect() as conn:
            delivered = select(func.count()).select_from(_rows).where(_rows.c.status == "delivered")
            out["rows_delivered"] = conn.execute(delivered).scalar_one()
        _engine.dispose()
    else:
        out["completed"] = orchestration_floor(**options)
    print(json.dumps(out))
    ok = out["completed"] == args.count and out.get("rows_delivered", args.count) == args.count
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
