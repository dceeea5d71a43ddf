"""The export run's report: what its table and markdown summary say, and the console summary.

Artifacts are built by `common.report` (the one way every job publishes them); they never include
URLs with query strings, tokens or passwords: only file names, sizes, checksums and redacted destination locations.
"""

from __future__ import annotations

from collections.abc import Sequence

from common.report import Table, markdown_summary, publish_report
from encoura_tasks.export.steps import ExportOutcome


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


def publish_export_report(outcomes: Sequence[ExportOutcome], problems: Sequence[str], *, dry_run: bool) -> str:
    """Create the run's table + markdown artifacts; return the markdown summary."""
    delivered = sum(o.status == "delivered" for o in outcomes)
    failed = [o for o in outcomes if o.status in ("failed", "rejected")]
    skipped = sum(o.status == "skipped" for o in outcomes)
    markdown = markdown_summary(
        f"Encoura export {'(dry run) ' if dry_run else ''}summary",
        [
            f"exports handled: {len(outcomes)}",
            f"delivered everywhere: {delivered}",
            f"failed: {len(failed)}",
            f"left to another run in progress: {skipped}",
            f"listing problems: {len(problems)}",
        ],
        sections={
            "Failures": [f"`{o.uid}` {o.file_name}: {o.error}" for o in failed],
            "Listing problems": list(problems),
        },
    )
    table = Table(
        key="encoura-export-deliveries",
        rows=outcome_rows(outcomes),
        description="Every export handled by this run: file, size, sha256 and where it went.",
    )
    publish_report(key="encoura-export-summary", markdown=markdown, tables=[table])
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
