"""The export path as plain functions (stage, publish, finalize), each idempotent against the ledger.

Prefect tasks in `encoura_tasks.export.tasks` wrap these; keeping the logic here keeps it testable
without an orchestrator, and keeps the flow a readable list of steps.
"""

from __future__ import annotations

import logging
import shutil
import zipfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from fsspec.callbacks import Callback

from common.hashing import file_hexdigest
from destinations import Destination, PathContext, PublishError, Receipt, render_path
from encoura_tasks.api.client import PROGRESS_EVERY_BYTES, EncouraClient
from encoura_tasks.api.errors import ExportRejected
from encoura_tasks.api.models import source_name_from_url
from encoura_tasks.export.naming import fallback_stem, sanitize_filename, unique_variant
from ledger import ClaimOwner, ExportRow, Ledger

logger = logging.getLogger(__name__)


class ExportRuntime:
    """Live objects for one run (API client, ledger, open destinations).

    Deliberately a plain class, not a pydantic model or dataclass: Prefect passes it to tasks as an
    opaque object and never tries to hash or serialise the clients inside it.
    """

    def __init__(
        self,
        *,
        client: EncouraClient,
        ledger: Ledger,
        destinations: dict[str, Destination],
        staging_dir: Path,
        owner: ClaimOwner,
    ) -> None:
        self.client = client
        self.ledger = ledger
        self.destinations = destinations
        self.staging_dir = staging_dir
        self.owner = owner
        self.unavailable: dict[str, str] = {}  # destination -> why (found by the sweep at start)

    def __repr__(self) -> str:
        return f"ExportRuntime(destinations={sorted(self.destinations)})"

    def staging_folder(self, uid: str) -> Path:
        """One folder per export: two exports with the same file name never share a staged copy."""
        return self.staging_dir / sanitize_filename(uid, fallback="export")

    def staging_path(self, uid: str, file_name: str) -> Path:
        return self.staging_folder(uid) / file_name


@dataclass
class ExportOutcome:
    """What happened to one export in this run: one row of the run report."""

    uid: str
    product_key: str
    file_name: str = ""
    size: int | None = None
    sha256: str | None = None
    status: str = "pending"  # delivered | failed | rejected | skipped
    deliveries: dict[str, str] = field(default_factory=dict)  # destination -> final path or error
    error: str | None = None


class LoggedProgress(Callback):
    """Logs a large transfer's progress every PROGRESS_EVERY_BYTES, so a 500 MB prospect file is
    visibly moving in the run's logs rather than silent for minutes."""

    def __init__(self, label: str, verb: str, every: int = PROGRESS_EVERY_BYTES) -> None:
        super().__init__()
        self.label, self.verb, self.every = label, verb, every
        self._next = every

    def call(self, *args: object, **kwargs: object) -> None:
        if self.value >= self._next:
            logger.info("%s: %d MB %s", self.label, self.value // (1024 * 1024), self.verb)
            self._next = (self.value // self.every + 1) * self.every


def file_kind(path: Path) -> str:
    """Encoura exports are CSV; zips happen. We never rewrite contents, only note what we saw."""
    if zipfile.is_zipfile(path):
        return "zip"
    with open(path, "rb") as fh:
        head = fh.read(4096)
    if head.lstrip().startswith(b"<"):
        return "html/xml"
    return "text"


def stage(rt: ExportRuntime, uid: str) -> ExportRow:
    """Make sure the export's bytes are in staging and recorded; download with a fresh URL if not."""
    row = rt.ledger.get_export(uid)
    if row is None:
        raise KeyError(f"export {uid} is not in the ledger")
    if row.status == "staged" and row.file_name:
        staged = rt.staging_path(uid, row.file_name)
        if staged.is_file() and staged.stat().st_size == row.size and file_hexdigest(staged) == row.sha256:
            return row
        logger.warning("Export %s: staged copy missing or changed; downloading it again", uid)

    url = rt.client.get_download_url(uid)  # fresh, one-time, short-lived: ask right before using it
    source_name = source_name_from_url(url.reveal())
    wanted = sanitize_filename(source_name, fallback=fallback_stem(uid))
    file_name = rt.ledger.assign_file_name(uid, wanted, unique_variant(wanted, uid))
    target = rt.staging_path(uid, file_name)

    def progress(received: int) -> None:
        logger.info("Export %s (%s): %d MB downloaded", uid, file_name, received // (1024 * 1024))

    downloaded = rt.client.download(url, target, on_progress=progress)
    if downloaded.size == 0:
        target.unlink(missing_ok=True)
        message = f"export {uid} ({file_name}) is empty (0 bytes); not delivered. Ask Encoura to regenerate it."
        rt.ledger.mark_export_error(uid, message, rejected=True)
        raise ExportRejected(message)
    kind = file_kind(target)
    if kind != "text":
        logger.warning("Export %s (%s) is not a CSV (%s); delivered unchanged", uid, file_name, kind)
    rt.ledger.mark_staged(uid, source_name=source_name, size=downloaded.size, sha256=downloaded.sha256)
    logger.info("Export %s staged as %s (%d bytes)", uid, file_name, downloaded.size)
    refreshed = rt.ledger.get_export(uid)
    assert refreshed is not None
    return refreshed


def relative_path_for(dest: Destination, row: ExportRow) -> str:
    # The listing date, not today's: a re-run after a crash must compute the same final path.
    listed = row.listed_at or datetime.now(UTC)
    ctx = PathContext(filename=row.file_name or "", product_key=row.product_key, export_uid=row.uid, date=listed)
    return render_path(dest.config.path_template, ctx)


def publish_everywhere(rt: ExportRuntime, row: ExportRow) -> tuple[dict[str, Receipt], dict[str, str]]:
    """Publish to every destination still owed this export; one failure does not stop the others."""
    rt.ledger.ensure_deliveries(row.uid, sorted(rt.destinations))
    receipts: dict[str, Receipt] = {}
    failures: dict[str, str] = {}
    local = rt.staging_path(row.uid, row.file_name or "")
    for delivery in rt.ledger.deliveries_for(row.uid):
        if delivery.status == "delivered" or delivery.destination not in rt.destinations:
            continue
        dest = rt.destinations[delivery.destination]
        if delivery.destination in rt.unavailable:
            failures[dest.name] = rt.unavailable[dest.name]
            rt.ledger.mark_delivery_failed(row.uid, dest.name, failures[dest.name])
            continue
        relative = relative_path_for(dest, row)
        try:
            receipt = dest.publish(
                local,
                relative,
                sha256=row.sha256 or "",
                size=row.size or 0,
                callback=LoggedProgress(f"Export {row.uid} -> {dest.name}", "sent"),
            )
        except PublishError as exc:
            failures[dest.name] = str(exc)
            rt.ledger.mark_delivery_failed(row.uid, dest.name, str(exc))
            logger.error("Export %s -> %s failed: %s", row.uid, dest.name, exc)
            continue
        rt.ledger.mark_delivered(
            row.uid,
            dest.name,
            relative_path=relative,
            final_path=receipt.final_path,
            size=receipt.size,
            sha256=receipt.sha256 or row.sha256,
        )
        receipts[dest.name] = receipt
        note = " (already there, identical)" if receipt.already_present else ""
        logger.info("Export %s delivered to %s: %s%s", row.uid, dest.name, receipt.final_path, note)
    return receipts, failures


def finalize(rt: ExportRuntime, row: ExportRow) -> bool:
    """Mark the export delivered and free staging only when every destination has confirmed it."""
    deliveries = rt.ledger.deliveries_for(row.uid)
    wanted = set(rt.destinations)
    done = {d.destination for d in deliveries if d.status == "delivered"}
    if not wanted <= done:
        return False
    rt.ledger.mark_export_delivered(row.uid)
    shutil.rmtree(rt.staging_folder(row.uid), ignore_errors=True)
    return True


def clean_delivered_staging(rt: ExportRuntime) -> None:
    """A run killed between 'delivered' and clean-up leaves staging behind; remove it."""
    if not rt.staging_dir.is_dir():
        return
    for row in rt.ledger.all_exports():
        if row.status == "delivered":
            shutil.rmtree(rt.staging_folder(row.uid), ignore_errors=True)
