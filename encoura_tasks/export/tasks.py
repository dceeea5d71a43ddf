"""Prefect tasks for the Encoura export: list (and record at once), deliver one export.

The login is `encoura_tasks.session.encoura_login`, shared with the upload.

Tasks take plain values only (product keys, export uids): Prefect records task parameters, and a
live client or ledger has no place there. Each finds the run's `ExportRuntime` with
`common.runtime.current`, which the flow provides. They rely on the ledger, not on Prefect result
persistence (NO_CACHE), for idempotency; so a flow retried from the UI re-runs them safely and
finishes only what is left.
"""

from __future__ import annotations

import contextvars
from dataclasses import dataclass, field
from datetime import timedelta
from uuid import UUID

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.context import TaskRunContext
from prefect.logging import get_run_logger

from common.errors import ConfigError
from common.events import emit_export_delivered
from common.run_context import prefect_api
from common.runtime import current
from common.task_retry import retry_only
from encoura_tasks.api.errors import DownloadError, EncouraAuthError, EncouraError, EncouraResponseError, ExportRejected
from encoura_tasks.export import steps as export_steps
from encoura_tasks.export.steps import ExportOutcome, ExportRuntime
from ledger import ClaimLost


def delivery_label(product_key: str, file_name: str | None) -> str:
    """What a person reads first in the UI for one delivery: the product and the file."""
    return f"{product_key} {file_name or 'export'}"


def delivery_run_name(product_key: str, file_name: str | None, uid: str) -> str:
    """The delivery task run's name: product, file, then the uid that makes it unique."""
    return f"{delivery_label(product_key, file_name)} ({uid})"


def name_after_staging(product_key: str, file_name: str, uid: str) -> None:
    """On a first run the file name comes with the download URL, after the task run was named
    `<product> export (<uid>)`: rename the running task run once the name is known.

    A cosmetic step, so it is off the delivery's path: the API call runs on the runtime's
    background threads (`ExportRuntime.background`), which the run drains before it ends. Made in
    line, it held each of the first files about 0.7 s before its upload could start, while the
    Prefect server was busy creating the first task runs (measured in the bandwidth benchmark).
    Any failure is logged at debug and never fails the delivery.
    """
    ctx = TaskRunContext.get()
    name = delivery_run_name(product_key, file_name, uid)
    if ctx is None or ctx.task_run.name == name:
        return
    # The engine reports every later state as an event carrying this TaskRun, name included, and the
    # server records those events as they arrive: rename the run's own copy first, so the next state
    # event carries the new name even if the PATCH below comes before the server has the task run.
    ctx.task_run.name = name
    # In the task's context: the run logger and the flow's Prefect client are found there.
    in_task = contextvars.copy_context()
    current(ExportRuntime).background.submit(in_task.run, _rename_task_run, ctx.task_run.id, name, uid)


def _rename_task_run(task_run_id: UUID, name: str, uid: str) -> None:
    try:
        with prefect_api() as client:
            client.set_task_run_name(task_run_id, name)  # shown at once, not only at the next state
    except Exception as exc:
        get_run_logger().debug("Task run for export %s not renamed yet: %s", uid, type(exc).__name__)


@dataclass
class ListingOutcome:
    product_key: str
    new_uids: list[str] = field(default_factory=list)
    listed: int = 0
    problems: list[str] = field(default_factory=list)
    error: str | None = None


# Only what a fresh attempt (and a fresh one-time URL) can fix.
_retry_transient = retry_only(
    permanent=(EncouraAuthError, ExportRejected, ConfigError, ClaimLost),
    transient=(DownloadError, EncouraResponseError, EncouraError, OSError),
)


def _recover_interrupted(rt: ExportRuntime, product_key: str) -> list[str]:
    """An earlier run died between Encoura's answer and our insert: those exports now show as
    Delivered. Record the ones we never saw, limited to exports created since we started listing."""
    first = rt.ledger.first_listing_at()
    cutoff = (first - timedelta(days=1)) if first else None
    result = rt.client.list_exports(product_key or None, status="Delivered")
    wanted: list[tuple[str, str]] = []
    for export in result.exports:
        created = export.created_ms()
        if cutoff is not None and created is not None and created < cutoff.timestamp() * 1000:
            continue
        wanted.append((export.uid, export.product_key or product_key))
    return rt.ledger.record_listed(wanted)


@task(name="list-exports", cache_policy=NO_CACHE)
def list_and_record(product_key: str) -> ListingOutcome:
    """List NotDelivered exports and record them in the same breath: listing consumes them.

    `product_key` "" (ALL_PRODUCTS) lists every product in one call, which is what a run configured
    for all products does: one round trip instead of eight.
    """
    rt = current(ExportRuntime)
    logger = get_run_logger()
    what = product_key or "all products"
    outcome = ListingOutcome(product_key=product_key)
    try:
        # Recover only AFTER our own NotDelivered listing: a killed run's request may still be in
        # flight at Encoura. If it consumes an export before our listing, the export shows up as
        # Delivered in the recovery listing below; if not, our own listing consumes it. Recovering
        # first would leave a window in which neither listing sees it.
        interrupted = rt.ledger.interrupted_listing(product_key)
        journal = rt.ledger.listing_started(product_key)
        try:
            result = rt.client.list_exports(product_key or None, status="NotDelivered")
        except EncouraResponseError:
            raise  # the answer may have consumed exports: leave the journal open for recovery
        except EncouraError:
            # An error status consumed nothing; an older interrupted listing is still unrecovered.
            rt.ledger.listing_finished(journal, recovered_older=False)
            raise
        outcome.new_uids.extend(
            rt.ledger.record_listed([(e.uid, e.product_key or product_key) for e in result.exports])
        )
        if interrupted or result.uncertain:
            # Exports consumed by an answer we never recorded (a killed run, or a retried attempt
            # whose answer was lost) now show as Delivered.
            recovered = _recover_interrupted(rt, product_key)
            if recovered:
                why = "an interrupted run" if interrupted else "an unanswered listing"
                logger.warning("Recovered %d %s export(s) listed by %s", len(recovered), what, why)
            outcome.new_uids.extend(recovered)
        rt.ledger.listing_finished(journal)
    except EncouraAuthError:
        raise
    except EncouraError as exc:
        outcome.error = str(exc)
        logger.error("%s", exc)
        return outcome
    outcome.listed = len(result.exports)
    outcome.problems = result.problems
    for problem in result.problems:
        logger.error("%s", problem)
    logger.info("%s: %d new export(s) listed", what, outcome.listed)
    return outcome


@task(
    name="deliver-export", cache_policy=NO_CACHE, retry_condition_fn=_retry_transient, task_run_name="{label} ({uid})"
)
def deliver_export(uid: str, label: str = "export") -> ExportOutcome:
    """Stage one export (fresh URL, bounded-memory download) and publish it to every destination.

    `label` only names the task run (`delivery_label`): given as a parameter, the flow submits one
    Task for every file instead of building a new one per file with `with_options` (a Task's
    construction reads its source, a few per cent of a run's CPU over 200 files)."""
    rt = current(ExportRuntime)
    logger = get_run_logger()
    if not rt.ledger.claim_export(uid, rt.owner):
        row = rt.ledger.get_export(uid)
        outcome = ExportOutcome(uid=uid, product_key=row.product_key if row else "")
        outcome.status = "skipped"
        outcome.error = "another run is delivering this export right now"
        logger.info("Export %s is being delivered by another run; leaving it to that run", uid)
        return outcome
    try:
        row = rt.ledger.get_export(uid)  # read under the claim: another run may have finished it meanwhile
        outcome = ExportOutcome(uid=uid, product_key=row.product_key if row else "")
        if row is None or row.status not in ("listed", "staged"):
            outcome.status = "skipped"
            outcome.error = f"already {row.status if row else 'gone'} (another run finished it)"
            logger.info("Export %s was finished by another run meanwhile; nothing to do", uid)
            return outcome
        try:
            row = export_steps.stage(rt, uid, row)
        except ExportRejected as exc:
            outcome.status, outcome.error = "rejected", str(exc)
            logger.error("%s", exc)
            return outcome
        except EncouraError as exc:
            rt.ledger.mark_export_error(uid, str(exc), me=rt.owner)
            raise
        outcome.file_name, outcome.size, outcome.sha256 = row.file_name or "", row.size, row.sha256
        name_after_staging(row.product_key, outcome.file_name, uid)
        try:
            receipts, failures = export_steps.publish_everywhere(rt, row)
            finalized = export_steps.finalize(rt, row)
        except ClaimLost as exc:
            # Stalled past CLAIM_TTL_SECONDS (a frozen VM, a long pause) and another run took the
            # export over: that run delivers it. Counted as failed (try again), never delivered.
            outcome.status, outcome.error = "failed", str(exc)
            logger.error("Export %s: claim lost, stopped before renaming or recording: %s", uid, exc)
            return outcome
        for name, receipt in receipts.items():
            outcome.deliveries[name] = receipt.final_path
        for name, error in failures.items():
            outcome.deliveries[name] = f"FAILED: {error}"
        if finalized is not None:
            outcome.status = "delivered"
            for delivery in finalized:
                outcome.deliveries.setdefault(delivery.destination, delivery.final_path or "")
            emit_export_delivered(uid, outcome.product_key, outcome.file_name, outcome.size, outcome.deliveries)
        else:
            outcome.status = "failed"
            outcome.error = "; ".join(f"{k}: {v}" for k, v in sorted(failures.items())) or "not delivered everywhere"
        return outcome
    finally:
        rt.ledger.release_export(uid, rt.owner)
