"""Run reports: Prefect artifacts (table, markdown summary, progress) and the console summary.

Artifacts are written through Prefect's own helpers; they never include URLs with query strings,
tokens or passwords: only file names, sizes, checksums and redacted destination locations.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)

from common.run_context import in_flow_run
from encoura_tasks.export.steps import ExportOutcome

logger = logging.getLogger(__name__)


def outcome_rows(outcomes: Sequence[ExportOutcome]) -> list[dict[str, str]]:
    rows = []
    for o in outcomes:
        rows.append(
            {
                # The file and where it went first: what a person scans the table for.
                "file": o.file_name,
                "delivered_to": "; ".join(f"{k}: {v}" for k, v in sorted(o.deliveries.items())),
                "status": o.report_status,
                "error": o.error or "",
                "product": o.product_key,
                "bytes": "" if o.size is None else str(o.size),
                "sha256": o.sha256 or "",
                "export_uid": o.uid,
            }
        )
    return rows


class Progress:
    """A Prefect progress artifact that advances file by file (no-op outside a flow run).

    Updates are API calls made from the flow's own thread, so they are sent at most once per
    `min_interval` seconds (and always for the last file): with many small files, one call per file
    would cost more than the files themselves.
    """

    def __init__(self, total: int, description: str, *, min_interval: float = 1.0) -> None:
        self.total = max(total, 1)
        self.done = 0
        self.min_interval = min_interval
        self._last_sent = time.monotonic()
        self.artifact_id = None
        if in_flow_run():
            self.artifact_id = create_progress_artifact(progress=0.0, description=description)

    def advance(self) -> None:
        self.done += 1
        if self.artifact_id is None:
            return
        now = time.monotonic()
        if self.done < self.total and now - self._last_sent < self.min_interval:
            return
        self._last_sent = now
        update_progress_artifact(self.artifact_id, progress=100.0 * self.done / self.total)


def publish_export_report(outcomes: Sequence[ExportOutcome], problems: Sequence[str], *, dry_run: bool) -> str:
    """Create the run's table + markdown artifacts; return the markdown summary."""
    delivered = sum(o.status == "delivered" for o in outcomes)
    failed = [o for o in outcomes if o.status in ("failed", "rejected")]
    skipped = sum(o.status == "skipped" for o in outcomes)
    lines = [
        f"# Encoura export {'(dry run) ' if dry_run else ''}summary",
        "",
        f"- exports handled: {len(outcomes)}",
        f"- delivered everywhere: {delivered}",
        f"- failed: {len(failed)}",
        f"- left to another run in progress: {skipped}",
        f"- listing problems: {len(problems)}",
    ]
    if failed:
        lines += ["", "## Failures", ""] + [f"- `{o.uid}` {o.file_name}: {o.error}" for o in failed]
    if problems:
        lines += ["", "## Listing problems", ""] + [f"- {p}" for p in problems]
    markdown = "\n".join(lines)
    if in_flow_run():
        create_table_artifact(
            table=outcome_rows(outcomes),
            key="encoura-export-deliveries",
            description="Every export handled by this run: file, size, sha256 and where it went.",
        )
        create_markdown_artifact(markdown=markdown, key="encoura-export-summary", description="Run summary")
    return markdown


def print_console_report(report: dict) -> None:
    outcomes = report.get("exports", [])
    if not outcomes and report.get("listed", True):
        print("No exports to deliver.")
    for o in outcomes:
        print(f"[{o['status']:>9}] {o['export_uid']}  {o['file'] or '-'}  {o['bytes'] or '-'} bytes")
        if o["delivered_to"]:
            for part in o["delivered_to"].split("; "):
                print(f"            -> {part}")
        if o["error"]:
            print(f"            !! {o['error']}")
    for problem in report.get("problems", []):
        print(f"[ problem ] {problem}")
    print(report.get("summary_line", ""))
