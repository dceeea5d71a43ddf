"""One way to build a run's report artifacts (export, upload, Canvas): tables, a markdown summary, progress.

Each job decides what its report says (rows, facts, sections); this module decides how that
becomes Prefect artifacts: through Prefect's public helpers, only inside a flow run (a plain
function call in a unit test creates nothing), tables before the summary so the summary is the
newest artifact of the run. Callers pass only redacted text: file names, sizes, checksums, ids.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)

from common.run_context import in_flow_run


@dataclass(frozen=True)
class Table:
    """One table artifact: a stable key (the UI groups a key's versions across runs) and its rows."""

    key: str
    rows: Sequence[Mapping[str, Any]]
    description: str


def markdown_summary(
    title: str,
    facts: Sequence[str],
    *,
    note: str | None = None,
    sections: Mapping[str, Sequence[str]] | None = None,
) -> str:
    """`# title`, a bullet per fact, an optional paragraph, then a `## heading` list per non-empty section."""
    lines = [f"# {title}", "", *(f"- {fact}" for fact in facts)]
    if note:
        lines += ["", note]
    for heading, items in (sections or {}).items():
        if items:
            lines += ["", f"## {heading}", "", *(f"- {item}" for item in items)]
    return "\n".join(lines)


def publish_report(
    *, key: str, markdown: str, description: str = "Run summary", tables: Sequence[Table] = ()
) -> bool:
    """Create `tables` then the markdown summary under `key`, in the current flow run.

    Outside a flow run nothing is created and False is returned: the report functions stay plain
    functions a unit test can call.
    """
    if not in_flow_run():
        return False
    for table in tables:
        create_table_artifact(table=[dict(row) for row in table.rows], key=table.key, description=table.description)
    create_markdown_artifact(markdown=markdown, key=key, description=description)
    return True


class Progress:
    """A Prefect progress artifact that advances item by item (no-op outside a flow run).

    Updates are API calls made from the flow's own thread, so they are sent at most once per
    `min_interval` seconds (and always for the last item): with many small files, one call per file
    would cost more than the files themselves.
    """

    def __init__(
        self, total: int, description: str, *, key: str | None = None, start: float = 0.0, min_interval: float = 1.0
    ) -> None:
        self.total = max(total, 1)
        self.done = 0
        self.min_interval = min_interval
        self._last_sent = time.monotonic()
        self.artifact_id: UUID | None = None
        if in_flow_run():
            self.artifact_id = create_progress_artifact(progress=start, key=key, description=description)

    def show(self, percent: float, description: str) -> None:
        """Set the progress a remote job reports itself (a Canvas import's own percentage), with a line
        saying where it is; sent every time, since the caller already paces its polls."""
        if self.artifact_id is not None:
            update_progress_artifact(self.artifact_id, progress=percent, description=description)

    def advance(self) -> None:
        self.done += 1
        if self.artifact_id is None:
            return
        now = time.monotonic()
        if self.done < self.total and now - self._last_sent < self.min_interval:
            return
        self._last_sent = now
        update_progress_artifact(self.artifact_id, progress=100.0 * self.done / self.total)
