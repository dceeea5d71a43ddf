"""The upload path for one file as plain functions: stage -> validate -> claim -> send -> poll -> settle.

The ledger row, keyed by (sha256, name, product type), is the only memory between runs, so every
step starts by asking it what already happened:

    new -> sending (record created, Encoura file id saved) -> uploaded (S3 answered 204)
        -> <Encoura status as polled> -> archived (done, moved to processed/)
                                       -> failed   (failure, moved to failed/ + error note)
                                       -> canceled (moved to failed/ + note; archived_to set)
                                       -> fields_mapping_required (left in place; re-checked next run)

A re-run after a crash at any point neither sends the bytes twice nor forgets a sent file:
`sending` is resolved by asking Encoura whether the file arrived (status past `uploading`) before
anything is sent again; a new record is created only when it did not.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common.events import emit_upload_final
from common.polling import poll_until
from common.redaction import redact_text
from encoura_tasks.api.client import EncouraClient
from encoura_tasks.api.errors import EncouraAuthError, EncouraError
from encoura_tasks.upload.settings import UploadSettings
from encoura_tasks.upload.source import SourceFile, UploadSource, candidate_names, clear_dir
from encoura_tasks.upload.validation import validate_upload_file
from ledger import ClaimLost, ClaimOwner, Ledger, UploadRow

logger = logging.getLogger(__name__)

# Encoura's statuses, in the order a file goes through them (docs, "Check File Status").
PROGRESS_CHAIN = ("uploading", "analyzing", "enqueued", "cleansing", "ingesting", "processing", "done")
ENCOURA_FINAL = frozenset({"done", "failure", "canceled"})
NEEDS_PERSON = "fields_mapping_required"
NEEDS_PERSON_MESSAGE = (
    "needs a person: map the fields once in the Encoura Data Center (Data Center > File Upload); "
    "the file stays where it is and the next run checks it again"
)
MAX_POLL_ERRORS = 5
STAGING_MAX_AGE_SECONDS = 2 * 24 * 3600  # longer than any run polls
# Outcome statuses that make the run exit 1.
PROBLEM_STATUSES = frozenset(
    {"invalid", "failure", "canceled", "needs_person", "timed_out", "error", "previously_failed", "claim_lost"}
)


@dataclass
class UploadOutcome:
    """One row of the run report."""

    file: str
    size: int | None = None
    sha256: str | None = None
    encoura_file_id: str | None = None
    status: str = "pending"
    # done | already_uploaded | would_upload | skipped | invalid | failure | canceled | needs_person
    # | timed_out | error | previously_failed | claim_lost
    error: str | None = None
    moved_to: str | None = None
    encoura_status: str | None = None
    source: str = ""  # the upload source's name (`default` for UPLOAD_SOURCE), set by the task

    @property
    def is_problem(self) -> bool:
        return self.status in PROBLEM_STATUSES


@dataclass(kw_only=True, eq=False, repr=False)
class UploadRuntime:
    """Live objects for one source in one run; tasks find it by source name, never take it as a parameter."""

    client: EncouraClient | None
    ledger: Ledger
    source: UploadSource
    settings: UploadSettings
    staging_dir: Path
    owner: ClaimOwner
    dry_run: bool = False
    sleep: Callable[[float], None] = time.sleep

    def __repr__(self) -> str:
        return f"UploadRuntime(source={self.source.describe()!r}, product_type={self.settings.product_type!r})"

    @property
    def api(self) -> EncouraClient:
        if self.client is None:
            raise RuntimeError("a dry run has no Encoura client")
        return self.client

    @property
    def work_dir(self) -> Path:
        return self.staging_dir / ".work"


StatusCallback = Callable[[str], None]


def settled(row: UploadRow) -> bool:
    """True once nothing more will ever happen to this upload."""
    return row.status in ("archived", "failed") or (row.status == "canceled" and row.archived_to is not None)


def select_orphans(rows: Iterable[UploadRow], *, product_type: str, folder: str, listed: set[str]) -> list[UploadRow]:
    """Uploads this source sent earlier, not finished, whose file is not in this run's listing.

    A file listed this run is never an orphan, whatever happened to its task: its own task (or the
    next run) owns it. Other sources' and other product types' uploads are left to their own runs.
    """
    return [
        row
        for row in rows
        if row.product_type == product_type
        and row.source.startswith(folder.rstrip("/") + "/")
        and row.source not in listed
        and row.encoura_file_id
        and not settled(row)
    ]


# ----------------------------------------------------------------------------- staging + validation
def stage(rt: UploadRuntime, item: SourceFile) -> tuple[Path, int, str]:
    """Copy the source file locally; everything after this reads the copy, never the source again.

    One private folder per attempt: two files with the same name (from different folders, or the
    same file in two overlapping runs) never share or delete each other's copy.
    """
    staged = rt.staging_dir / f"{time.time_ns()}-{secrets.token_hex(4)}" / item.name
    size, sha256 = rt.source.fetch(item, staged)
    return staged, size, sha256


def sweep_staging(staging_dir: Path, *, older_than: float = STAGING_MAX_AGE_SECONDS) -> int:
    """Remove copies left by killed runs (old enough that no live run can still be using them)."""
    if not staging_dir.is_dir():
        return 0
    removed = 0
    cutoff = time.time() - older_than
    for child in staging_dir.iterdir():
        try:
            if child.is_dir() and child.name != ".work" and child.stat().st_mtime < cutoff:
                clear_dir(child)
                removed += 1
        except OSError:
            continue
    return removed


# ----------------------------------------------------------------------------- fencing
def require_claim(rt: UploadRuntime, row: UploadRow, before: str) -> None:
    """ClaimLost unless this run still holds the upload's claim (renewing it).

    Ledger writes are fenced by the ledger itself (`update_upload(..., me=)`); this is for the steps
    the ledger cannot fence: the POST that creates an Encoura record and the moves in the source
    folder. A worker that stalled past CLAIM_TTL_SECONDS while another run took the upload over must
    stop before them, or the file would be sent (or moved) twice."""
    if not rt.ledger.holds_upload(row.id, rt.owner):
        raise ClaimLost("upload", f"{row.name} (ledger id {row.id}, before {before})", rt.owner)


# ----------------------------------------------------------------------------- Encoura calls
def create_and_send(rt: UploadRuntime, row: UploadRow, staged: Path, name: str) -> str:
    """Create a record and send the bytes once. The file id is saved before the send starts, so a
    crash mid-send is resolved next run by asking Encoura, not by sending again blindly."""
    s = rt.settings
    require_claim(rt, row, "creating an Encoura file record")
    ticket = rt.api.create_upload(
        file_name=name, product_type=s.product_type, data_source=s.data_source, description=s.description
    )
    rt.ledger.update_upload(row.id, me=rt.owner, status="sending", encoura_file_id=ticket.id, error=None)
    logger.info("%s: Encoura file record %s created; sending %d bytes", name, ticket.id, row.size)
    rt.api.send_upload(ticket, staged, file_name=name)
    rt.ledger.update_upload(row.id, me=rt.owner, status="uploaded")
    logger.info("%s: received by Encoura's storage (HTTP 204)", name)
    return ticket.id


def arrived(rt: UploadRuntime, file_id: str) -> bool:
    """Did an earlier, interrupted send reach Encoura? Past `uploading` means it did.

    An error reading the status propagates (the task retries, or the next run asks again): guessing
    "not received" could send the bytes a second time.
    """
    status = str(rt.api.get_upload(file_id).get("status", ""))
    return status not in ("", "uploading")


def poll(
    rt: UploadRuntime, row: UploadRow, file_id: str, *, on_status: StatusCallback | None = None
) -> dict[str, Any] | None:
    """Poll with exponential backoff (capped) until a final status, `fields_mapping_required`, or the
    overall time limit (None). Transient API errors are tolerated a few times in a row."""
    s = rt.settings
    last: str | None = None
    errors = 0

    def fetch() -> dict[str, Any] | None:
        nonlocal errors
        try:
            body = rt.api.get_upload(file_id)
        except EncouraAuthError:
            raise
        except EncouraError as exc:
            errors += 1
            if errors >= MAX_POLL_ERRORS:
                raise
            logger.warning("%s: status check failed (%s); trying again", row.name, exc)
            return None
        errors = 0
        return body

    def record(body: dict[str, Any] | None) -> None:
        nonlocal last
        status = str(body.get("status") or "") if body is not None else None
        if status is None or status == last:
            return
        last = status
        error = body.get("error") if body is not None else None
        rt.ledger.update_upload(row.id, me=rt.owner, status=status, error=str(error)[:2000] if error else None)
        logger.info("%s: Encoura status %s", row.name, status)
        if on_status is not None:
            on_status(status)

    def settled(body: dict[str, Any] | None) -> bool:
        status = str(body.get("status") or "") if body is not None else ""
        return status in ENCOURA_FINAL or status == NEEDS_PERSON

    body, timed_out = poll_until(
        fetch,
        done=settled,
        interval=s.poll_interval_seconds,
        max_interval=s.poll_max_interval_seconds,
        timeout=s.poll_timeout_seconds,
        on_value=record,
        sleep=rt.sleep,
    )
    return None if timed_out else body


# ----------------------------------------------------------------------------- settling
def _error_note(row: UploadRow, file_id: str, status: str, error: str) -> str:
    return (
        f"File: {row.name}\nSHA-256: {row.sha256}\nProduct type: {row.product_type}\n"
        f"Encoura file id: {file_id}\nEncoura status: {status}\n\n{error}\n"
    )


def archive_done(rt: UploadRuntime, row: UploadRow, item: SourceFile | None, outcome: UploadOutcome) -> None:
    """Move the source into processed/, but only if it still holds the bytes Encoura confirmed."""
    s = rt.settings
    if item is None:
        rt.ledger.update_upload(row.id, me=rt.owner, status="archived", archived_to="(source file no longer present)")
        outcome.error = "processed by Encoura; the source file was no longer there to archive"
        return
    now = rt.source.fingerprint(item.relative, rt.work_dir)
    if now is None:
        moved = rt.source.find_moved(item.relative, s.archive_dir, size=row.size, sha256=row.sha256,
                                     work_dir=rt.work_dir)
        where = moved or "(source file no longer present)"
        rt.ledger.update_upload(row.id, me=rt.owner, status="archived", archived_to=where)
        outcome.moved_to = moved
        return
    if now != (row.size, row.sha256):
        note = "(left in place: the file changed after it was sent; the new content is sent next run)"
        rt.ledger.update_upload(row.id, me=rt.owner, status="archived", archived_to=note)
        outcome.error = note.strip("()")
        return
    require_claim(rt, row, "archiving the source file")
    moved = rt.source.move(item.relative, s.archive_dir, sha256=row.sha256)
    rt.ledger.update_upload(row.id, me=rt.owner, status="archived", archived_to=moved)
    outcome.moved_to = moved
    logger.info("%s: archived to %s", row.name, rt.source.location(moved))


def move_to_failed(
    rt: UploadRuntime, row: UploadRow, item: SourceFile | None, file_id: str, status: str, error: str,
    outcome: UploadOutcome,
) -> None:
    """failure/canceled: the error note first (so a moved file always has its reason), then the file."""
    final_status = "failed" if status == "failure" else "canceled"
    if item is None:
        rt.ledger.update_upload(row.id, me=rt.owner, status=final_status, archived_to="(source file no longer present)")
        return
    now = rt.source.fingerprint(item.relative, rt.work_dir)
    if now != (row.size, row.sha256):
        where = "(source file no longer present)" if now is None else "(left in place: the file changed)"
        if now is None:
            where = rt.source.find_moved(item.relative, rt.settings.failed_dir, size=row.size, sha256=row.sha256,
                                         work_dir=rt.work_dir) or where
        rt.ledger.update_upload(row.id, me=rt.owner, status=final_status, archived_to=where)
        outcome.moved_to = where
        return
    require_claim(rt, row, "moving the source file to failed/")
    target_dir = rt.source.target_folder(item.relative, rt.settings.failed_dir)
    note_text = _error_note(row, file_id, status, error)
    # The note is named after the first free name the file will get, so the pair stays together.
    moved_name = None
    for candidate in candidate_names(item.name, row.sha256):
        if rt.source.dest.size_of(rt.source.full(f"{target_dir}/{candidate}")) is None:
            moved_name = candidate
            break
    if moved_name is not None:
        try:
            rt.source.write_note(f"{target_dir}/{moved_name}.error.txt", note_text, rt.work_dir)
        except Exception as exc:
            logger.warning("%s: could not save the error note (%s)", row.name, redact_text(str(exc)))
    moved = rt.source.move(item.relative, rt.settings.failed_dir, sha256=row.sha256)
    rt.ledger.update_upload(row.id, me=rt.owner, status=final_status, archived_to=moved)
    outcome.moved_to = moved
    logger.info("%s: moved to %s", row.name, rt.source.location(moved))


def settle(
    rt: UploadRuntime, row: UploadRow, item: SourceFile | None, body: dict[str, Any], outcome: UploadOutcome
) -> None:
    status = str(body.get("status") or "")
    file_id = row.encoura_file_id or outcome.encoura_file_id or ""
    outcome.encoura_status = status
    if status == "done":
        outcome.status = "done"
        archive_done(rt, row, item, outcome)
    elif status == "failure":
        error = str(body.get("error") or "Encoura reported a failure without an error text")
        outcome.status, outcome.error = "failure", f"Encoura: {error}"
        move_to_failed(rt, row, item, file_id, status, error, outcome)
    elif status == "canceled":
        outcome.status = "canceled"
        outcome.error = "canceled by a person in the Encoura Data Center; not processed"
        move_to_failed(rt, row, item, file_id, status, outcome.error, outcome)
    elif status == NEEDS_PERSON:
        outcome.status, outcome.error = "needs_person", NEEDS_PERSON_MESSAGE
    else:  # pragma: no cover - poll() only returns final statuses
        outcome.status, outcome.error = "error", f"unexpected Encoura status {status!r}"
    emit_upload_final(status, file=row.name, file_id=file_id, product_type=row.product_type, size=row.size,
                      error=outcome.error)  # fmt: skip


def _refresh(rt: UploadRuntime, row: UploadRow) -> UploadRow:
    fresh = rt.ledger.find_upload(sha256=row.sha256, name=row.name, product_type=row.product_type)
    if fresh is None:  # written by this run a moment ago: only a wiped ledger loses it
        raise LookupError(f"{row.name}: its ledger row vanished")
    return fresh


def _finish_settled(row: UploadRow, outcome: UploadOutcome) -> None:
    """A file whose upload was finished before (same name, same bytes) shows up in the source again."""
    outcome.encoura_file_id = row.encoura_file_id
    outcome.moved_to = row.archived_to
    if row.status == "archived":
        outcome.status = "already_uploaded"
        outcome.error = "identical file (same name and content) was uploaded and processed before; not sent again"
    else:
        outcome.status = "previously_failed"
        outcome.error = (
            f"identical file was uploaded before and ended {row.status}"
            f"{': ' + row.error if row.error else ''}; rename it to send it again"
        )


def drive(
    rt: UploadRuntime, row: UploadRow, item: SourceFile | None, staged: Path | None, outcome: UploadOutcome,
    *, on_status: StatusCallback | None = None,
) -> None:
    """Advance one claimed upload as far as it goes this run, from wherever the ledger says it is.

    A run that lost the claim (it stalled past CLAIM_TTL_SECONDS and another run took the upload
    over) stops at its next POST, move or ledger write, and says so: the other run finishes the file.
    Reported as `claim_lost` (exit 1), never as done."""
    try:
        _advance(rt, row, item, staged, outcome, on_status=on_status)
    except ClaimLost as exc:
        outcome.status, outcome.error = "claim_lost", str(exc)
        logger.error("%s: claim lost, stopped before sending, moving or recording anything more: %s", row.name, exc)


def _advance(
    rt: UploadRuntime, row: UploadRow, item: SourceFile | None, staged: Path | None, outcome: UploadOutcome,
    *, on_status: StatusCallback | None = None,
) -> None:
    if settled(row):
        _finish_settled(row, outcome)
        return
    file_id = row.encoura_file_id
    if row.status in ("new", "sending") or file_id is None:
        if row.status == "sending" and file_id and arrived(rt, file_id):
            logger.info("%s: an interrupted run's send did arrive (file id %s); not sending again", row.name, file_id)
        else:
            if staged is None:
                # Never sent and its file is gone: forget the record (not settle it), so the same file
                # is sent normally if it ever reappears.
                rt.ledger.update_upload(row.id, me=rt.owner, status="new", encoura_file_id=None)
                outcome.status = "skipped"
                outcome.error = "was never sent and its source file is gone; it is sent if it reappears"
                return
            if row.status == "sending":
                logger.warning("%s: an interrupted send never arrived; sending with a new record", row.name)
            file_id = create_and_send(rt, row, staged, row.name)
        row = _refresh(rt, row)
    outcome.encoura_file_id = file_id
    if file_id is None:
        raise LookupError(f"{row.name}: sent, but no Encoura file id was recorded")
    if row.status in ENCOURA_FINAL:
        body: dict[str, Any] | None = {"status": row.status, "error": row.error}
    else:
        body = poll(rt, row, file_id, on_status=on_status)
    if body is None:
        current = _refresh(rt, row)
        outcome.status, outcome.encoura_status = "timed_out", current.status
        outcome.error = (
            f"still {current.status!r} after {rt.settings.poll_timeout_seconds:g} s "
            "(UPLOAD_POLL_TIMEOUT_SECONDS); the file stays in place and the next run resumes checking it"
        )
        return
    settle(rt, _refresh(rt, row), item, body, outcome)


def process_file(rt: UploadRuntime, item: SourceFile, *, on_status: StatusCallback | None = None) -> UploadOutcome:
    """Everything for one source file; exceptions are left to the caller (the Prefect task retries)."""
    outcome = UploadOutcome(file=item.relative, size=item.size)
    staged, size, sha256 = stage(rt, item)
    try:
        outcome.size, outcome.sha256 = size, sha256
        if size != item.size:
            outcome.status = "skipped"
            outcome.error = f"changed while being read ({item.size} -> {size} bytes); still being written? next run"
            return outcome
        report = validate_upload_file(staged, name=item.name, product_type=rt.settings.product_type)
        if not report.ok:
            outcome.status = "invalid"
            outcome.error = f"{item.name} {report.message()}; not sent (file left in place)"
            logger.error("%s", outcome.error)
            return outcome
        for note in report.notes:
            logger.info("%s %s", item.name, note)
        s = rt.settings
        if rt.dry_run:
            row = rt.ledger.find_upload(sha256=sha256, name=item.name, product_type=s.product_type)
            if row is None or row.status == "new":
                outcome.status = "would_upload"
            elif settled(row):
                _finish_settled(row, outcome)
            else:
                outcome.status, outcome.encoura_file_id = f"would resume ({row.status})", row.encoura_file_id
            return outcome
        row = rt.ledger.claim_upload(
            source=rt.source.location(item.relative), name=item.name, sha256=sha256, size=size,
            product_type=s.product_type, me=rt.owner,
        )
        if row is None:
            outcome.status = "skipped"
            outcome.error = "another run is uploading this file right now"
            return outcome
        try:
            drive(rt, row, item, staged, outcome, on_status=on_status)
        finally:
            rt.ledger.release_upload(row.id, rt.owner)
        return outcome
    finally:
        clear_dir(staged.parent)


def resume_orphan(rt: UploadRuntime, row: UploadRow, *, on_status: StatusCallback | None = None) -> UploadOutcome:
    """A sent-but-unconfirmed upload whose source file is gone: still find out how it ended."""
    outcome = UploadOutcome(file=row.name, size=row.size, sha256=row.sha256, encoura_file_id=row.encoura_file_id)
    claimed = rt.ledger.claim_upload(
        source=row.source, name=row.name, sha256=row.sha256, size=row.size, product_type=row.product_type,
        me=rt.owner,
    )
    if claimed is None:
        outcome.status, outcome.error = "skipped", "another run is checking this upload right now"
        return outcome
    try:
        drive(rt, claimed, None, None, outcome, on_status=on_status)
    finally:
        rt.ledger.release_upload(claimed.id, rt.owner)
    if outcome.status == "done":
        outcome.error = "processed by Encoura; the source file was no longer there to archive"
    return outcome
