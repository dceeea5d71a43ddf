"""Prefect tasks for one SIS import: package, submit, watch, report.

Only `package` is safe to repeat. `submit` has no Prefect retries on purpose: a repeated upload is a
second import. HTTP-level retries that are provably safe happen inside the transport instead.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from prefect import get_run_logger, task
from prefect.cache_policies import NONE
from pydantic import BaseModel

from canvas_tasks.api.client import CanvasSisClient
from canvas_tasks.api.errors import CanvasAPIError, CanvasRefused, SubmitOutcomeUnknown
from canvas_tasks.api.models import FAILED_STATES, Outcome, SisImport
from canvas_tasks.sis_import.options import ImportOptions
from canvas_tasks.sis_import.packaging import Package, package_input
from canvas_tasks.sis_import.report import counts_table, messages_table, summary_markdown
from canvas_tasks.sis_import.runtime import make_client, run_dir
from canvas_tasks.sis_import.settings import load_canvas_settings
from canvas_tasks.sis_import.submissions import SubmissionStore, submission_key
from canvas_tasks.sis_import.watch import describe_progress, outcome_for, watch_until_done
from common.errors import ConfigError
from common.redaction import redact_url
from common.report import Progress, Table, publish_report

ARTIFACT_PREFIX = "canvas-sis-import"
CLOCK_SKEW = timedelta(minutes=2)  # margin between our clock and Canvas's created_at


@task(name="package-sis-input", cache_policy=NONE)
def package_task(source: str, extension: str | None = None) -> Package:
    settings = load_canvas_settings()
    staging = settings.state_dir / "canvas" / "staging" / datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    package = package_input(source, staging, extension=extension)
    get_run_logger().info(
        "Prepared %s as %s (%d bytes%s)",
        package.source,
        package.filename,
        package.size,
        f"; {', '.join(package.members)}" if package.members else "",
    )
    return package


class Submitted(BaseModel):
    """What the submit step produced. A refusal by Canvas (400/401/403) is a result, not a crash, so the
    run ends with its message and exit code 2 instead of a task traceback."""

    sis_import: SisImport | None = None
    reattached: bool = False
    refused: str | None = None


@task(name="submit-sis-import", retries=0, cache_policy=NONE)
def submit_task(package: Package, options: ImportOptions, resubmit: bool = False) -> Submitted:
    try:
        imp, reattached = _submit(package, options, resubmit)
    except ConfigError as exc:
        get_run_logger().error("%s", exc.render())
        return Submitted(refused=exc.render())
    return Submitted(sis_import=imp, reattached=reattached)


def _submit(package: Package, options: ImportOptions, resubmit: bool) -> tuple[SisImport, bool]:
    """Upload once. Returns (import, reattached): a re-run with the same bytes and options follows the
    import the earlier run started (if it is running or succeeded) instead of uploading again."""
    logger = get_run_logger()
    settings = load_canvas_settings()
    fields = options.form_fields(package.extension)
    key = submission_key(settings.base_url, settings.account_id, package.sha256, fields)
    store = SubmissionStore(settings.state_dir)
    try:
        with make_client(settings) as client:
            earlier = None if resubmit else store.get(key)
            if earlier is not None and earlier.import_id is not None:
                try:
                    previous: SisImport | None = client.get_import(earlier.import_id)
                except CanvasRefused:  # gone from Canvas (or another instance): nothing to follow
                    previous = None
                if previous is not None and previous.workflow_state not in FAILED_STATES:
                    logger.warning(
                        "These files and options were already submitted as import %d at %s (%s); following it "
                        "instead of uploading again (--resubmit imports them again)",
                        previous.id,
                        earlier.started_at.isoformat(timespec="seconds"),
                        previous.workflow_state,
                    )
                    return previous, True
            elif earlier is not None:
                recent = client.list_created_since(earlier.started_at - CLOCK_SKEW)
                if recent:
                    ids = ", ".join(f"{i.id} ({i.workflow_state})" for i in recent)
                    raise CanvasAPIError(
                        f"an earlier run stopped while uploading {earlier.filename} at "
                        f"{earlier.started_at.isoformat(timespec='seconds')}; imports created since: {ids}. "
                        "Check them in Canvas; re-run with --resubmit to upload again"
                    )
            try:
                record = store.start(key, package.filename, package.sha256, replace=resubmit or earlier is not None)
            except FileExistsError:
                raise CanvasAPIError(
                    "another run is submitting the same files and options right now; wait for it "
                    "(or re-run with --resubmit to upload anyway)"
                ) from None
            started = record.started_at - CLOCK_SKEW
            try:
                imp = client.submit(package.path, package.filename, package.content_type, fields)
            except SubmitOutcomeUnknown as exc:  # keep the pending record: the next run must check first
                raise CanvasAPIError(f"{exc}. {_landed_hint(client, started)}") from None
            except Exception:
                store.forget(key)  # Canvas certainly did not create an import
                raise
            store.put(record.model_copy(update={"import_id": imp.id}))
    finally:
        if package.staged:  # our own copy; the user's input is never touched
            package.path.unlink(missing_ok=True)
    logger.info("Submitted %s: import id %d (%s)", package.filename, imp.id, imp.workflow_state)
    return imp, False


def _landed_hint(client: CanvasSisClient, since: datetime) -> str:
    """Tell the user which imports appeared meanwhile, so they can check before submitting again."""
    try:
        recent = client.list_created_since(since)
    except Exception as exc:  # the hint is best effort; the original failure is what matters
        return f"Could not list recent imports ({type(exc).__name__}); check Canvas before re-running."
    if not recent:
        return "No new import is visible on the account; re-running is likely safe."
    ids = ", ".join(f"{i.id} ({i.workflow_state})" for i in recent)
    return f"Imports created since the upload started: {ids}. Check them before re-running to avoid a double import."


@task(name="watch-sis-import", cache_policy=NONE)
def watch_task(
    submitted: SisImport, poll_interval: float, timeout: float, abort_on_timeout: bool
) -> tuple[SisImport, bool, bool]:
    """Returns (last seen import, timed_out, aborted_after_timeout). Losing contact with Canvas for
    longer than the transport's retries counts as a timeout: the import carries on in Canvas."""
    logger = get_run_logger()
    settings = load_canvas_settings()
    import_id = submitted.id
    progress = Progress(100, f"Import {import_id}: submitted", key=f"{ARTIFACT_PREFIX}-progress")
    last_seen = [submitted]
    last_line: list[str] = []

    def on_update(imp: SisImport) -> None:
        last_seen[0] = imp
        line = describe_progress(imp)
        if not last_line or last_line[0] != line:
            logger.info(line)
            last_line[:] = [line]
        progress.show(float(imp.progress or 0.0), line)

    with make_client(settings) as client:
        try:
            imp, timed_out = watch_until_done(
                lambda: client.get_import(import_id), poll_interval=poll_interval, timeout=timeout, on_update=on_update
            )
        except CanvasAPIError as exc:
            logger.error("Lost contact with Canvas while watching import %d: %s", import_id, exc)
            return last_seen[0], True, False
        aborted = False
        if timed_out and abort_on_timeout:
            logger.warning(
                "Import %d still %s after %.0fs; aborting (--abort-on-timeout)", imp.id, imp.workflow_state, timeout
            )
            imp = client.abort(import_id)
            aborted = not imp.finished_before_abort
            if imp.finished_before_abort:
                logger.info("Import %d finished (%s) before the abort reached Canvas", imp.id, imp.workflow_state)
    return imp, timed_out, aborted


@task(name="report-sis-import", cache_policy=NONE)
def report_task(
    imp: SisImport,
    package: Package,
    options: ImportOptions,
    timed_out: bool,
    aborted: bool,
    fail_on_warnings: bool,
    reattached: bool = False,
) -> Outcome:
    logger = get_run_logger()
    settings = load_canvas_settings()
    errors_csv: str | None = None
    url = imp.errors_attachment_url
    if url:
        dest = run_dir(settings, imp.id) / "errors.csv"
        try:
            with make_client(settings) as client:
                client.download(url, dest)
            errors_csv = str(dest)
            logger.info("Full errors CSV for import %d saved to %s", imp.id, dest)
        except CanvasAPIError as exc:
            logger.warning("Could not download the errors CSV from %s: %s", redact_url(url), exc)
    outcome = outcome_for(
        imp,
        timed_out=timed_out,
        fail_on_warnings=fail_on_warnings,
        aborted_after_timeout=aborted,
        errors_csv=errors_csv,
    )
    if reattached:
        outcome = outcome.model_copy(
            update={
                "reattached": True,
                "message": f"{outcome.message} (submitted by an earlier run; not uploaded again)",
            }
        )
    tables = []
    if imp.counts:
        tables.append(
            Table(f"{ARTIFACT_PREFIX}-counts", counts_table(imp), f"Rows processed per object type, import {imp.id}")
        )
    messages = messages_table(imp)
    if messages:
        tables.append(
            Table(
                f"{ARTIFACT_PREFIX}-messages",
                messages,
                f"processing_errors and processing_warnings of import {imp.id} (Canvas shows at most 24)",
            )
        )
    publish_report(
        key=f"{ARTIFACT_PREFIX}-summary",
        markdown=summary_markdown(outcome, imp, package, options),
        description=f"Canvas SIS import {imp.id}: {outcome.status}",
        tables=tables,
    )
    for file, message in imp.errors:
        logger.warning("Canvas error: %s: %s", file, message)
    for file, message in imp.warnings:
        logger.info("Canvas warning: %s: %s", file, message)
    return outcome


@task(name="report-submitted", cache_policy=NONE)
def report_submitted_task(
    imp: SisImport, package: Package, options: ImportOptions, reattached: bool = False
) -> Outcome:
    how = "already submitted by an earlier run as" if reattached else "submitted"
    outcome = Outcome(
        import_id=imp.id,
        workflow_state=imp.workflow_state,
        status="submitted",
        exit_code=0,
        message=f"{how} import {imp.id} ({imp.workflow_state}); not watching (--no-watch)",
        reattached=reattached,
    )
    publish_report(
        key=f"{ARTIFACT_PREFIX}-summary",
        markdown=summary_markdown(outcome, imp, package, options),
        description=f"Canvas SIS import {imp.id}: submitted",
    )
    return outcome
