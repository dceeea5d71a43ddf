"""Polling an import to its end, and what that end means: plain functions, so tests need no Prefect."""

from __future__ import annotations

import time
from collections.abc import Callable

from canvas_tasks.api.models import (
    FAILED_STATES,
    RESTORE_STATES,
    SUCCESS_STATES,
    WARNING_STATES,
    Outcome,
    SisImport,
)
from common import exit_codes
from common.polling import poll_until


def watch_until_done(
    fetch: Callable[[], SisImport],
    *,
    poll_interval: float,
    timeout: float,
    on_update: Callable[[SisImport], None] = lambda _imp: None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[SisImport, bool]:
    """Poll until a terminal state or `timeout` seconds; returns (last seen import, timed_out).

    Queued imports (`created` behind another import on the account) and a progress that restarts
    during `cleanup_batch` are both normal: only the state decides when we stop.
    """
    return poll_until(
        fetch,
        done=lambda imp: imp.is_terminal,
        interval=poll_interval,
        timeout=timeout,
        on_value=on_update,
        clock=clock,
        sleep=sleep,
    )


def describe_progress(imp: SisImport) -> str:
    state = imp.workflow_state
    pct = f"{imp.progress:.0f}%" if imp.progress is not None else "?"
    if state in ("initializing", "created"):
        return f"Import {imp.id}: {state} (waiting for Canvas to start it; imports run one at a time per account)"
    if state == "cleanup_batch":
        return f"Import {imp.id}: cleanup_batch {pct} (batch-mode cleanup; progress restarts in this phase)"
    return f"Import {imp.id}: {state} {pct}"


def outcome_for(
    imp: SisImport,
    *,
    timed_out: bool,
    fail_on_warnings: bool,
    aborted_after_timeout: bool = False,
    errors_csv: str | None = None,
) -> Outcome:
    state = imp.workflow_state
    n_warn, n_err = imp.warning_count, imp.error_count  # true totals, not the capped lists

    def make(status: str, code: int, message: str) -> Outcome:
        return Outcome(
            import_id=imp.id,
            workflow_state=state,
            status=status,
            exit_code=code,
            message=message,
            errors_csv=errors_csv,
            counts=imp.counts,
            warnings=n_warn,
            errors=n_err,
        )

    if imp.finished_before_abort:  # the abort lost the race with completion: report how it really ended
        plain = imp.model_copy(update={"finished_before_abort": False})
        outcome = outcome_for(plain, timed_out=False, fail_on_warnings=fail_on_warnings, errors_csv=errors_csv)
        return outcome.model_copy(update={"message": f"{outcome.message} (it finished before the abort)"})
    if timed_out:
        if aborted_after_timeout:
            return make(
                "aborted_after_timeout",
                exit_codes.WORK_FAILED,
                f"import {imp.id} did not finish in time and was aborted (--abort-on-timeout)",
            )
        return make(
            "still_running",
            exit_codes.WORK_FAILED,
            f"import {imp.id} is still running ({state}); check later: import id {imp.id}",
        )
    if state in SUCCESS_STATES:
        return make("imported", exit_codes.OK, f"import {imp.id} imported")
    if state in WARNING_STATES:
        if fail_on_warnings:
            return make(
                "failed_on_warnings",
                exit_codes.WORK_FAILED,
                f"import {imp.id} imported with {n_warn} warning(s) and {n_err} error(s); "
                "failing because of --fail-on-warnings",
            )
        return make(
            "imported_with_warnings",
            exit_codes.OK,
            f"import {imp.id} imported with {n_warn} warning(s) and {n_err} error(s)",
        )
    if state in FAILED_STATES:
        return make(
            "failed",
            exit_codes.WORK_FAILED,
            f"import {imp.id} ended {state} with {n_err} error(s) and {n_warn} warning(s)",
        )
    if state in RESTORE_STATES:
        return make(
            "failed", exit_codes.WORK_FAILED, f"import {imp.id} is {state}: someone restored it while we watched"
        )
    return make("failed", exit_codes.WORK_FAILED, f"import {imp.id} is in an unknown state {state!r}")
