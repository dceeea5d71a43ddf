"""The export path as plain functions (stage, publish, finalize), each idempotent against the ledger.

Prefect tasks in `encoura_tasks.export.tasks` wrap these; keeping the logic here keeps it testable
without an orchestrator, and keeps the flow a readable list of steps.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from fsspec.callbacks import Callback

from common.errors import ConfigError, merge_config_errors
from common.hashing import file_hexdigest
from destinations import (
    AuthenticationRefused,
    Destination,
    DestinationUnavailable,
    HostKeyError,
    PathContext,
    PublishError,
    Receipt,
    reachable,
    render_path,
)
from encoura_tasks.api.client import PROGRESS_EVERY_BYTES, EncouraClient
from encoura_tasks.api.errors import ExportRejected
from encoura_tasks.api.models import source_name_from_url
from encoura_tasks.export.naming import fallback_stem, sanitize_filename, unique_variant
from encoura_tasks.export.settings import RunSettings
from ledger import ClaimLost, ClaimOwner, DeliveryRow, ExportRow, IntentRow, Ledger

logger = logging.getLogger(__name__)


TAKEN_STATUS = "taken by the importer"
# Appended to the delivery's location in the report when the importer had taken the file.
TAKEN_MARK = f"({TAKEN_STATUS}: an interrupted run renamed it into place and Slate imported it; delivered once)"


class ExportRuntime:
    """Live objects for one run (API client, ledger, open destinations).

    Tasks never receive it as a parameter (a task's inputs are plain values the UI can show and a
    retry can replay): the flow provides it with `common.runtime.provide` and tasks look it up with
    `current(ExportRuntime)`. Steps take it directly, so unit tests can build one by hand.
    """

    def __init__(
        self,
        *,
        client: EncouraClient,
        ledger: Ledger,
        destinations: dict[str, Destination],
        settings: RunSettings,
        owner: ClaimOwner,
    ) -> None:
        self.client = client
        self.ledger = ledger
        self.destinations = destinations
        self.settings = settings
        self.staging_dir = settings.staging_dir
        self.owner = owner
        self.unavailable: dict[str, str] = {}  # destination -> why (found by the sweep at start)
        # destination -> temp paths that open publish intents of other live runs still own (not swept)
        self.keep_temps: dict[str, set[str]] = {}
        # Calls no delivery waits for (renaming a task run in the UI); threads start on first use.
        # Four, not one: a rename took ~60 ms on the busy server in the 200-file benchmark, and one
        # thread fell 1.6 s behind, which the run then waited for at its end.
        self.background = ThreadPoolExecutor(max_workers=4, thread_name_prefix="export-background")

    def __repr__(self) -> str:
        return f"ExportRuntime(destinations={sorted(self.destinations)})"

    def staging_folder(self, uid: str) -> Path:
        """One folder per export: two exports with the same file name never share a staged copy.

        Created 0700: staged exports are student records (see `secure_state_dir`)."""
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

    @property
    def report_status(self) -> str:
        """The status a person reads in the report: "taken by the importer" for an export delivered
        by settling an interrupted run's rename that Slate had already imported (so nobody mistakes
        it for a second delivery); else `status`. Counting still uses `status` ("delivered")."""
        if self.status == "delivered" and any(v.endswith(TAKEN_MARK) for v in self.deliveries.values()):
            return TAKEN_STATUS
        return self.status


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


def stage(rt: ExportRuntime, uid: str, row: ExportRow | None = None) -> ExportRow:
    """Make sure the export's bytes are in staging and recorded; download with a fresh URL if not.

    `row`: the export as the caller read it under its claim (saves a ledger read)."""
    row = row or rt.ledger.get_export(uid)
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
    file_name = rt.ledger.assign_file_name(uid, wanted, unique_variant(wanted, uid), me=rt.owner, current=row)
    target = rt.staging_path(uid, file_name)
    make_private_dir(rt.staging_dir)
    make_private_dir(target.parent)

    def progress(received: int) -> None:
        logger.info("Export %s (%s): %d MB downloaded", uid, file_name, received // (1024 * 1024))

    downloaded = rt.client.download(url, target, on_progress=progress)
    if downloaded.size == 0:
        target.unlink(missing_ok=True)
        message = f"export {uid} ({file_name}) is empty (0 bytes); not delivered. Ask Encoura to regenerate it."
        rt.ledger.mark_export_error(uid, message, rejected=True, me=rt.owner)
        raise ExportRejected(message)
    os.chmod(target, 0o600)
    kind = file_kind(target)
    if kind != "text":
        logger.warning("Export %s (%s) is not a CSV (%s); delivered unchanged", uid, file_name, kind)
    rt.ledger.mark_staged(uid, source_name=source_name, size=downloaded.size, sha256=downloaded.sha256, me=rt.owner)
    logger.info("Export %s staged as %s (%d bytes)", uid, file_name, downloaded.size)
    # What mark_staged just wrote under our claim (fenced), without reading it back.
    staged = {"source_name": source_name, "size": downloaded.size, "sha256": downloaded.sha256}
    return dataclasses.replace(row, status="staged", file_name=file_name, last_error=None, **staged)


def relative_path_for(dest: Destination, row: ExportRow) -> str:
    # The listing date, not today's: a re-run after a crash must compute the same final path.
    listed = row.listed_at or datetime.now(UTC)
    ctx = PathContext(filename=row.file_name or "", product_key=row.product_key, export_uid=row.uid, date=listed)
    return render_path(dest.config.path_template, ctx)


def publish_everywhere(rt: ExportRuntime, row: ExportRow) -> tuple[dict[str, Receipt], dict[str, str]]:
    """Publish to every destination still owed this export; one failure does not stop the others.

    An open publish intent (a run died after recording the rename) is settled first, so a file
    Slate already imported is recorded as delivered, not sent again. ClaimLost propagates: a run
    that lost the export must stop, not record a failure under another run's claim.
    """
    owed = rt.ledger.ensure_deliveries(row.uid, sorted(rt.destinations), me=rt.owner)
    receipts: dict[str, Receipt] = {}
    failures: dict[str, str] = {}
    local = rt.staging_path(row.uid, row.file_name or "")
    history = rt.ledger.intents_for(row.uid)  # oldest first: the newest open one per destination wins
    intents = {i.destination: i for i in history if i.status == "open"}
    taken = {i.destination for i in history if i.status == "taken"}
    for delivery in owed:
        if delivery.destination not in rt.destinations:
            continue
        dest = rt.destinations[delivery.destination]
        if delivery.status == "delivered":
            if dest.name in taken:  # settled earlier (start of this run, or a run that died before finishing)
                receipts[dest.name] = _taken_receipt(dest, delivery.relative_path or "", delivery.size, row.sha256)
            continue
        if delivery.destination in rt.unavailable:
            failures[dest.name] = rt.unavailable[dest.name]
            rt.ledger.mark_delivery_failed(row.uid, dest.name, failures[dest.name], me=rt.owner)
            continue
        relative = relative_path_for(dest, row)
        try:
            intent = intents.get(dest.name)
            if intent is not None:
                settled = settle_intent(rt, dest, intent, local)
                if settled is not None:
                    receipts[dest.name] = settled
                    continue
            # Never tried and no intent: the final name cannot hold our own earlier delivery, so the
            # pre-upload stat is skipped (one round trip; the rename never replaces either way).
            first = delivery.status == "pending" and delivery.attempts == 0 and intent is None
            receipt, intent_id = _publish_with_intent(rt, dest, row, local, relative, first_attempt=first)
        except PublishError as exc:
            failures[dest.name] = str(exc)
            rt.ledger.mark_delivery_failed(row.uid, dest.name, str(exc), me=rt.owner)
            logger.error("Export %s -> %s failed: %s", row.uid, dest.name, exc)
            continue
        rt.ledger.mark_delivered(
            row.uid,
            dest.name,
            relative_path=relative,
            final_path=receipt.final_path,
            size=receipt.size,
            sha256=receipt.sha256 or row.sha256,
            me=rt.owner,
            intent_id=intent_id,
            intent_status="present" if receipt.already_present else "delivered",
        )
        receipts[dest.name] = receipt
        note = " (already there, identical)" if receipt.already_present else ""
        logger.info("Export %s delivered to %s: %s%s", row.uid, dest.name, receipt.final_path, note)
    return receipts, failures


def _publish_with_intent(
    rt: ExportRuntime, dest: Destination, row: ExportRow, local: Path, relative: str, *, first_attempt: bool = False
) -> tuple[Receipt, int | None]:
    """Publish, recording the intent (fenced by the claim) right before the final name can appear."""
    recorded: list[int] = []

    def before_rename(temp: str | None, final: str) -> None:
        recorded.append(
            rt.ledger.record_intent(
                row.uid,
                dest.name,
                temp_path=temp,
                final_path=final,
                size=row.size or 0,
                sha256=row.sha256 or "",
                me=rt.owner,
            )
        )

    receipt = dest.publish(
        local,
        relative,
        sha256=row.sha256 or "",
        size=row.size or 0,
        callback=LoggedProgress(f"Export {row.uid} -> {dest.name}", "sent"),
        first_attempt=first_attempt,
        before_rename=before_rename,
    )
    return receipt, (recorded[-1] if recorded else None)


SETTLED_NOTES = {
    "renamed": "an interrupted run's verified temp file was renamed into place now",
    "present": "already there, identical (an interrupted run had renamed it)",
    "taken": "taken by the importer: an interrupted run renamed it and Slate imported it; delivered once",
}


def _taken_receipt(dest: Destination, relative: str, size: int | None, sha256: str | None) -> Receipt:
    """A receipt whose location says the importer took the file, so the run report shows it as such."""
    return Receipt(
        destination=dest.name,
        final_path=f"{dest.location(relative)} {TAKEN_MARK}",
        relative_path=relative,
        size=size or 0,
        sha256=sha256,
        checksum=None,
        already_present=True,
    )


def settle_intent(rt: ExportRuntime, dest: Destination, intent: IntentRow, local: Path | None) -> Receipt | None:
    """Finish one open intent under the export's claim; a Receipt when it ended delivered, else None
    (the intent is closed as abandoned and the caller publishes normally)."""
    outcome, receipt = dest.settle_intent(
        local if local is not None and local.is_file() else None,
        intent.temp_path,
        intent.final_path,
        sha256=intent.sha256,
        size=intent.size,
    )
    if outcome == "absent":
        note = "nothing arrived; publishing again"
        rt.ledger.close_intent(intent.id, "abandoned", note, uid=intent.export_uid, me=rt.owner)
        return None
    if receipt is None:  # taken: the file left before anyone could look at it again
        receipt = Receipt(
            destination=dest.name,
            final_path=dest.location(intent.final_path),
            relative_path=intent.final_path,
            size=intent.size,
            sha256=intent.sha256,
            checksum=None,
            already_present=True,
        )
    rt.ledger.mark_delivered(
        intent.export_uid,
        dest.name,
        relative_path=intent.final_path,
        final_path=receipt.final_path,
        size=intent.size,
        sha256=intent.sha256,
        me=rt.owner,
        intent_id=intent.id,
        intent_status=outcome,
        note=SETTLED_NOTES[outcome],
    )
    logger.warning("Export %s -> %s: %s (%s)", intent.export_uid, dest.name, SETTLED_NOTES[outcome], receipt.final_path)
    if outcome == "taken":
        return _taken_receipt(dest, intent.final_path, intent.size, intent.sha256)
    return receipt


def settle_open_intents(rt: ExportRuntime) -> list[str]:
    """At the start of a run, BEFORE any sweep: settle every open intent whose export this run can
    claim. Intents held by another live run are left to it, and their temps kept from the sweep.
    Returns one line per settled intent, for the log."""
    lines: list[str] = []
    for intent in rt.ledger.open_intents():
        dest = rt.destinations.get(intent.destination)
        if dest is None:
            continue  # destination removed from the settings: nothing to settle against
        if not rt.ledger.claim_export(intent.export_uid, rt.owner):
            if intent.temp_path:
                rt.keep_temps.setdefault(dest.name, set()).add(intent.temp_path)
            continue
        try:
            row = rt.ledger.get_export(intent.export_uid)
            local = rt.staging_path(intent.export_uid, row.file_name) if row and row.file_name else None
            receipt = settle_intent(rt, dest, intent, local)
            if receipt is not None:
                lines.append(f"{intent.export_uid} -> {dest.name}: settled")
        except (HostKeyError, AuthenticationRefused) as exc:
            raise ConfigError(str(exc)) from None  # a settings mistake: stop before listing (exit 2)
        except DestinationUnavailable as exc:
            rt.unavailable[dest.name] = str(exc)
            if intent.temp_path:
                rt.keep_temps.setdefault(dest.name, set()).add(intent.temp_path)
        except (PublishError, ClaimLost) as exc:
            logger.error("Export %s -> %s: open intent not settled: %s", intent.export_uid, dest.name, exc)
            if intent.temp_path:
                rt.keep_temps.setdefault(dest.name, set()).add(intent.temp_path)
        finally:
            rt.ledger.release_export(intent.export_uid, rt.owner)
    return lines


def destination_unreachable(dest: Destination) -> str | None:
    """Why this destination cannot receive files right now, or None. The one place that asks.

    Three answers are settings mistakes, not outages, and raise ConfigError (exit 2) so the run stops
    before listing (a listing consumes exports) instead of saying "try again":
    - the server's host key is unknown or differs from HOST_KEY / KNOWN_HOSTS: trying again cannot
      help, and connecting anyway is what the check exists to prevent;
    - the server refused the user, password or key (a rotated password): only PASSWORD / CLIENT_KEY
      can fix it, and each retry counts against the account's lockout;
    - the root folder is missing (`destinations.reachable`): a typo in the URL's folder would
      otherwise be created and watched by nothing (issue 12 item 8). Folders below the root that
      come from PATH_TEMPLATE are still created by the publish.
    """
    try:
        dest.connect_check()
    except (HostKeyError, AuthenticationRefused) as exc:
        raise ConfigError(str(exc)) from None
    except PublishError as exc:
        return str(exc)
    except Exception as exc:
        return f"{dest.name}: {type(exc).__name__}: {exc} ({dest.describe()})"
    return reachable(dest)  # connected (cached): now the root folder, ConfigError when it is missing


def check_receivers(rt: ExportRuntime) -> list[str]:
    """Probe every destination not already known unavailable. Returns one line per destination
    when NONE can receive (the run must not list: listing consumes exports), else [].

    Settings mistakes at any destination (missing root folder, host key) raise one ConfigError
    naming them all: the run stops before listing, even if another destination is fine, since a
    person has to fix the settings and a half-configured run would report success."""
    mistakes: list[ConfigError] = []
    for name, dest in sorted(rt.destinations.items()):
        if name in rt.unavailable:
            continue
        try:
            why = destination_unreachable(dest)
        except ConfigError as exc:
            mistakes.append(exc)
            continue
        if why is not None:
            rt.unavailable[name] = why
    merged = merge_config_errors(mistakes)
    if merged is not None:
        raise merged
    if rt.destinations and set(rt.unavailable) >= set(rt.destinations):
        return [f"Destination {name} is unreachable: {rt.unavailable[name]}" for name in sorted(rt.destinations)]
    return []


def finalize(rt: ExportRuntime, row: ExportRow) -> list[DeliveryRow] | None:
    """Mark the export delivered and free staging only when every destination has confirmed it.

    Returns the export's delivery rows when it is delivered everywhere (for the report), else None."""
    deliveries = rt.ledger.deliveries_for(row.uid)
    wanted = set(rt.destinations)
    done = {d.destination for d in deliveries if d.status == "delivered"}
    if not wanted <= done:
        return None
    rt.ledger.mark_export_delivered(row.uid, me=rt.owner)
    shutil.rmtree(rt.staging_folder(row.uid), ignore_errors=True)
    return deliveries


def clean_delivered_staging(rt: ExportRuntime) -> None:
    """A run killed between 'delivered' and clean-up leaves staging behind; remove it."""
    if not rt.staging_dir.is_dir():
        return
    for row in rt.ledger.all_exports():
        if row.status == "delivered":
            shutil.rmtree(rt.staging_folder(row.uid), ignore_errors=True)


def make_private_dir(path: Path) -> None:
    """Create (or tighten) a folder to 0700: what sits under STATE_DIR is student records."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    if path.stat().st_mode & 0o077:
        os.chmod(path, 0o700)


def secure_state_dir(state_dir: Path) -> None:
    """STATE_DIR 0700 (staging, ledger, Canvas error CSVs live below it)."""
    make_private_dir(state_dir)


def remove_expired_state(rt: ExportRuntime, state_dir: Path, retention_days: float) -> list[str]:
    """Remove student records kept past STATE_RETENTION_DAYS: staged copies of exports that keep
    failing (never delivered) and Canvas error CSVs. Delivered exports' staging is removed at once
    anyway. A removed staged copy is downloaded again if its export is ever retried."""
    cutoff = time.time() - retention_days * 86400
    removed: list[str] = []
    undelivered = {r.uid: r for r in rt.ledger.all_exports() if r.status != "delivered"}
    if rt.staging_dir.is_dir():
        for row in undelivered.values():
            folder = rt.staging_folder(row.uid)
            if folder.is_dir() and folder.stat().st_mtime < cutoff:
                shutil.rmtree(folder, ignore_errors=True)
                removed.append(f"staged copy of export {row.uid} (not delivered for {retention_days:g}+ days)")
    canvas = state_dir / "canvas"
    if canvas.is_dir():
        for csv in canvas.glob("*/errors.csv"):
            if csv.stat().st_mtime < cutoff:
                csv.unlink(missing_ok=True)
                removed.append(f"Canvas errors CSV {csv.parent.name}/errors.csv")
    for item in removed:
        logger.info("Removed %s: older than STATE_RETENTION_DAYS=%g", item, retention_days)
    return removed


def start_of_run(rt: ExportRuntime, state_dir: Path, retention_days: float, *, dry_run: bool = False) -> list[str]:
    """Everything a run does before it may list, in order. Returns problem lines (one per
    destination) when no destination can receive: the caller must then stop without listing,
    since a listing hands exports out once and there would be nowhere to put them.

    1. settle open publish intents (before any sweep could remove a temp one of them owns);
    2. check that some destination is reachable;
    3. remove student records kept past STATE_RETENTION_DAYS.

    A dry run changes nothing at destinations (nor in STATE_DIR): it only counts the open intents
    ("N open intent(s) would be settled") and checks the destinations; the caller skips the sweep.
    """
    if dry_run:
        waiting = [i for i in rt.ledger.open_intents() if i.destination in rt.destinations]
        if waiting:
            logger.warning(
                "Dry run: %d open publish intent(s) would be settled (left as they are: a dry run renames nothing)",
                len(waiting),
            )
        blocked = check_receivers(rt)
        for line in blocked:
            logger.error("%s", line)
        return blocked
    for line in settle_open_intents(rt):
        logger.info("Open publish intent %s", line)
    blocked = check_receivers(rt)
    for line in blocked:
        logger.error("%s", line)
    remove_expired_state(rt, state_dir, retention_days)
    return blocked
