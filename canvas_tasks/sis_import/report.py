"""Artifact contents built from an import: plain data, so they can be unit tested and reused."""

from __future__ import annotations

from typing import Any

from canvas_tasks.api.models import Outcome, SisImport
from canvas_tasks.sis_import.options import ImportOptions
from canvas_tasks.sis_import.packaging import Package
from common.redaction import redact_text


def counts_table(imp: SisImport) -> list[dict[str, Any]]:
    return [{"object type": kind, "count": n} for kind, n in sorted(imp.counts.items())]


def messages_table(imp: SisImport) -> list[dict[str, str]]:
    rows = [{"severity": "error", "file": f, "message": redact_text(m)} for f, m in imp.errors]
    rows += [{"severity": "warning", "file": f, "message": redact_text(m)} for f, m in imp.warnings]
    return rows


def summary_markdown(outcome: Outcome, imp: SisImport | None, package: Package, options: ImportOptions) -> str:
    lines = [
        f"# Canvas SIS import {outcome.import_id if outcome.import_id is not None else ''}".rstrip(),
        "",
        f"**Outcome:** {outcome.status} (exit code {outcome.exit_code})  ",
        f"**Canvas state:** {outcome.workflow_state or '-'}  ",
        f"**Message:** {redact_text(outcome.message)}",
        "",
        f"**Input:** `{package.source}` uploaded as `{package.filename}` ({package.size} bytes, sha256 "
        f"`{package.sha256[:16]}…`)",
    ]
    if package.members:
        lines.append(f"**Files in zip (in order):** {', '.join(package.members)}")
    set_options = [f"`{k}={v}`" for k, v in options.form_fields(package.extension)]
    lines += ["", f"**Options sent:** {', '.join(set_options)}"]
    if imp is not None and imp.counts:
        lines += ["", "| object type | count |", "|---|---|"]
        lines += [f"| {r['object type']} | {r['count']} |" for r in counts_table(imp)]
    if imp is not None and (imp.warning_count or imp.error_count):
        lines += [
            "",
            f"**Warnings:** {imp.warning_count} · **Errors:** {imp.error_count} "
            "(Canvas lists at most 24 of each here; the full list is in the errors CSV)",
        ]
    if outcome.errors_csv:
        lines += ["", f"**Full errors CSV:** `{outcome.errors_csv}`"]
    return "\n".join(lines) + "\n"
