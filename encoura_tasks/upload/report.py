"""The upload run's report: what its table and markdown summary say (published by `common.report`), and the
console lines.

Only file names (relative to the source folder), sizes, Encoura file ids, statuses and error texts
appear: no URLs with credentials, no presigned fields.
"""

from __future__ import annotations

from collections.abc import Sequence

from common.redaction import redact_text
from common.report import Table, markdown_summary, publish_report
from encoura_tasks.upload.steps import UploadOutcome


def outcome_rows(outcomes: Sequence[UploadOutcome]) -> list[dict[str, str]]:
    return [
        {
            "source": o.source,
            "file": o.file,
            "bytes": "" if o.size is None else str(o.size),
            "encoura_file_id": o.encoura_file_id or "",
            "status": o.status,
            "encoura_status": o.encoura_status or "",
            "moved_to": o.moved_to or "",
            "error": redact_text(o.error or ""),
            "sha256": o.sha256 or "",
        }
        for o in outcomes
    ]


def summary_line(outcomes: Sequence[UploadOutcome], *, dry_run: bool) -> str:
    counts: dict[str, int] = {}
    for o in outcomes:
        counts[o.status] = counts.get(o.status, 0) + 1
    parts = [f"{n} {status}" for status, n in sorted(counts.items())] or ["no files"]
    return ", ".join(parts) + (" (dry run: nothing sent or moved)" if dry_run else "")


def publish_upload_report(outcomes: Sequence[UploadOutcome], *, source: str, dry_run: bool) -> str:
    """Create the table + markdown artifacts (inside a flow run); return the markdown."""
    problems = [o for o in outcomes if o.is_problem]
    markdown = markdown_summary(
        f"Encoura upload {'(dry run) ' if dry_run else ''}summary",
        [
            f"source: `{source}`",
            f"files handled: {len(outcomes)}",
            f"processed by Encoura and archived: {sum(o.status == 'done' for o in outcomes)}",
            f"need attention: {len(problems)}",
        ],
        note=summary_line(outcomes, dry_run=dry_run),
        sections={
            "Needs attention": [
                f"{o.source}: `{o.file}` **{o.status}**: {redact_text(o.error or '')}" for o in problems
            ]
        },
    )
    table = Table(
        key="encoura-upload-files",
        rows=outcome_rows(outcomes),
        description="Every file this run handled: size, Encoura file id, final status, error.",
    )
    publish_report(key="encoura-upload-summary", markdown=markdown, tables=[table])
    return markdown


def print_upload_report(report: dict) -> None:
    rows = report.get("files", [])
    if not rows:
        print("No files to upload.")
    for row in rows:
        ident = row["encoura_file_id"] or "-"
        where = f"{row['source']}: " if row.get("source") else ""
        print(f"[{row['status']:>16}] {where}{row['file']}  {row['bytes'] or '-'} bytes  Encoura file id {ident}")
        if row["moved_to"]:
            print(f"                   -> {row['moved_to']}")
        if row["error"]:
            print(f"                   !! {row['error']}")
    print(report.get("summary_line", ""))
