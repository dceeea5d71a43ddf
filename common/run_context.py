"""What the flows need to know about the Prefect run they are in (if any), and how a finished run
becomes the command line's output and exit code."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from prefect import get_run_logger
from prefect.context import FlowRunContext
from prefect.states import Completed, Failed, State

from common import exit_codes
from common.errors import ConfigError
from common.redaction import redact_text


def current_flow_run_id() -> str | None:
    """The flow run id: a UI retry reuses it, which lets the ledger hand that retry its own claims."""
    ctx = FlowRunContext.get()
    return str(ctx.flow_run.id) if ctx and ctx.flow_run else None


def in_flow_run() -> bool:
    return FlowRunContext.get() is not None


def report_state(report: dict[str, Any], *, failed: bool) -> State[Any]:
    """The flow's final state carries its report either way, so the CLI and the UI show the same summary."""
    get_run_logger().info("%s", report["summary_line"])
    return (Failed if failed else Completed)(message=report["summary_line"], data=report)


def finish_cli_run(state: State[Any], print_report: Callable[[dict[str, Any]], None]) -> int:
    """Print a finished flow run's report and return the exit code a scheduler acts on.

    Flows return their report as the state's data, Completed or Failed; a report carrying
    exit_code 2 (refused credentials) and a ConfigError raised inside the flow are settings problems.
    """
    report = state.result(raise_on_failure=False)
    if isinstance(report, ConfigError):
        raise report
    if isinstance(report, dict):
        if report.get("exit_code") == exit_codes.CONFIG_ERROR:
            print(report["summary_line"], file=sys.stderr)
            return exit_codes.CONFIG_ERROR
        print_report(report)
    elif isinstance(report, BaseException):
        print(f"Run failed: {type(report).__name__}: {redact_text(str(report))}", file=sys.stderr)
    return exit_codes.OK if state.is_completed() else exit_codes.WORK_FAILED
