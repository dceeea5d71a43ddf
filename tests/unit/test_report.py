"""`common.report`: the one builder of report artifacts, shared by the export, upload and Canvas reports."""

from __future__ import annotations

import ast
from pathlib import Path

from common.report import Progress, Table, markdown_summary, publish_report

ROOT = Path(__file__).resolve().parents[2]


def test_markdown_summary_shape() -> None:
    text = markdown_summary(
        "Job summary",
        ["handled: 2", "failed: 1"],
        note="1 done, 1 failed",
        sections={"Failures": ["a: boom"], "Empty": []},
    )
    assert text == "# Job summary\n\n- handled: 2\n- failed: 1\n\n1 done, 1 failed\n\n## Failures\n\n- a: boom"


def test_outside_a_flow_run_nothing_is_published() -> None:
    assert publish_report(key="k", markdown="# x", tables=[Table("t", [{"a": 1}], "d")]) is False
    progress = Progress(2, "two")
    progress.advance()
    assert progress.artifact_id is None and progress.done == 1


def test_only_common_report_creates_artifacts() -> None:
    """One way to build a report artifact: no job module calls Prefect's artifact helpers itself."""
    callers = []
    for package in ("encoura_tasks", "canvas_tasks", "flows", "common"):
        for path in (ROOT / package).rglob("*.py"):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                name = getattr(node, "id", None) or getattr(node, "attr", None)
                helpers = ("create_table_artifact", "create_markdown_artifact", "create_progress_artifact",
                           "update_progress_artifact")  # fmt: skip
                if name in helpers and isinstance(node.ctx, ast.Load):
                    callers.append(path.relative_to(ROOT).as_posix())
    assert sorted(set(callers)) == ["common/report.py"]
