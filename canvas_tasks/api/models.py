"""The parts of Canvas's SisImport object this project reads; unknown fields are kept, not rejected."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, JsonValue

SUCCESS_STATES = frozenset({"imported"})
WARNING_STATES = frozenset({"imported_with_messages"})
FAILED_STATES = frozenset({"failed", "failed_with_messages", "aborted"})
# States reached by a restore, which this flow never starts; seeing one means someone else acted.
RESTORE_STATES = frozenset({"partially_restored", "restored"})
TERMINAL_STATES = SUCCESS_STATES | WARNING_STATES | FAILED_STATES | RESTORE_STATES
# data.counts also carries the true message totals; they are not object counts.
MESSAGE_COUNT_KEYS = frozenset({"warning_count", "error_count"})


class SisImport(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: int
    workflow_state: str
    progress: float | None = None
    created_at: str | None = None
    ended_at: str | None = None
    # JSON objects as Canvas sent them: plain values, so an import can be a task parameter.
    data: dict[str, JsonValue] | None = None
    processing_warnings: list[list[str]] | None = None
    processing_errors: list[list[str]] | None = None
    errors_attachment: dict[str, JsonValue] | None = None
    statistics: dict[str, JsonValue] | None = None
    # Set by our client, never by Canvas: an abort we sent arrived after the import had finished.
    finished_before_abort: bool = False

    @property
    def is_terminal(self) -> bool:
        return self.workflow_state in TERMINAL_STATES

    @property
    def _raw_counts(self) -> dict[str, int]:
        counts = (self.data or {}).get("counts") or {}
        return {str(k): int(v) for k, v in counts.items() if isinstance(v, (int, float))}

    @property
    def counts(self) -> dict[str, int]:
        """Rows processed per object type (users, courses...): what the counts table shows."""
        return {k: v for k, v in self._raw_counts.items() if k not in MESSAGE_COUNT_KEYS}

    @property
    def warning_count(self) -> int:
        """The true number of warnings. processing_warnings is capped at 24 rows plus an "and N more"
        row, so its length (25) says nothing once Canvas has more; data.counts.warning_count does."""
        raw = self._raw_counts
        return raw["warning_count"] if "warning_count" in raw else len(self.processing_warnings or [])

    @property
    def error_count(self) -> int:
        """The true number of errors (data.counts.error_count); see warning_count."""
        raw = self._raw_counts
        return raw["error_count"] if "error_count" in raw else len(self.processing_errors or [])

    @property
    def warnings(self) -> list[tuple[str, str]]:
        return [_pair(p) for p in self.processing_warnings or []]

    @property
    def errors(self) -> list[tuple[str, str]]:
        return [_pair(p) for p in self.processing_errors or []]

    @property
    def errors_attachment_url(self) -> str | None:
        url = (self.errors_attachment or {}).get("url")
        return str(url) if url else None


def _pair(item: list[str]) -> tuple[str, str]:
    if len(item) >= 2:
        return str(item[0]), str(item[1])
    return "", str(item[0]) if item else ""


class Outcome(BaseModel):
    """How a run ended, in terms a scheduler and a person can both act on."""

    import_id: int | None = None
    workflow_state: str | None = None
    status: str = Field(
        description="imported | imported_with_warnings | failed_on_warnings | failed | still_running | "
        "aborted_after_timeout | submitted | refused | error"
    )
    exit_code: int
    message: str
    errors_csv: str | None = None
    counts: dict[str, int] = Field(default_factory=dict)
    warnings: int = 0
    errors: int = 0
    reattached: bool = False  # the import was started by an earlier run with the same files and options
