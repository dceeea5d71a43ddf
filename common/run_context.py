"""What the flows need to know about the Prefect run they are in (if any), and how a finished run
becomes the command line's output and exit code."""

from __future__ import annotations

import contextlib
import functools
import inspect
import sys
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from prefect import get_client, get_run_logger
from prefect.client.orchestration import SyncPrefectClient
from prefect.context import FlowRunContext, SyncClientContext
from prefect.states import Completed, Failed, State

from common import exit_codes
from common.errors import ConfigError, explain
from common.redaction import redact_text


def current_flow_run_id() -> str | None:
    """The flow run id: a UI retry reuses it, which lets the ledger hand that retry its own claims."""
    ctx = FlowRunContext.get()
    return str(ctx.flow_run.id) if ctx and ctx.flow_run else None


def in_flow_run() -> bool:
    return FlowRunContext.get() is not None


@contextlib.contextmanager
def prefect_api() -> Iterator[SyncPrefectClient]:
    """The run's own Prefect client when there is one, else a client for this block.

    The run's client is shared by its task threads and used here without entering it: its
    enter/exit count is not guarded by a lock, and a count that reached zero would close the
    client under the run. Reusing it also spares a new connection and TLS context per call.
    """
    shared = SyncClientContext.get()
    if shared is not None:
        yield shared.client
        return
    with get_client(sync_client=True) as client:
        yield client


def report_state(report: dict[str, Any], *, failed: bool) -> State[Any]:
    """The flow's final state carries its report either way, so the CLI and the UI show the same summary."""
    get_run_logger().info("%s", report["summary_line"])
    return (Failed if failed else Completed)(message=report["summary_line"], data=report)


F = TypeVar("F", bound=Callable[..., Any])


def debug_enabled() -> bool:
    """`--debug` or LOG_LEVEL=DEBUG: the only way tracebacks reach the screen and the Prefect UI."""
    import os

    return os.environ.get("LOG_LEVEL", "").upper() == "DEBUG"


def ends_in_one_line(fn: F) -> F:
    """Wrap a flow function so any exception ends the run as a Failed state carrying one clear line.

    Prefect's engine logs an escaping exception with its traceback (to the console and to the run's
    logs in the UI); catching it here and returning a Failed state is Prefect's public way to fail a
    run with a message of our choosing. The report carries the exit code for the CLI.
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            message, code = explain(exc)
            message = redact_text(message)
            get_run_logger().error("%s", message, exc_info=exc if debug_enabled() else None)
            report = {"fatal": True, "summary_line": message, "exit_code": code, "problems": [message]}
            return Failed(message=message, data=report)

    # Prefect builds the flow's parameter model from the signature and resolves string annotations in
    # the function's own module; the wrapper lives here, so hand Prefect the resolved types.
    wrapper.__signature__ = inspect.signature(fn, eval_str=True)  # type: ignore[attr-defined]
    return wrapper  # type: ignore[return-value]


def finish_cli_run(state: State[Any], print_report: Callable[[dict[str, Any]], None]) -> int:
    """Print a finished flow run's report and return the exit code a scheduler acts on.

    Flows return their report as the state's data, Completed or Failed; a report carrying
    exit_code 2 (refused credentials) and a ConfigError raised inside the flow are settings problems.
    """
    report = state.result(raise_on_failure=False)
    if isinstance(report, ConfigError):
        raise report
    if isinstance(report, dict):
        if report.get("exit_code") == exit_codes.CONFIG_ERROR or report.get("fatal"):
            print(report["summary_line"], file=sys.stderr)
            return int(report.get("exit_code") or exit_codes.WORK_FAILED)
        print_report(report)
    elif isinstance(report, BaseException):
        message, code = explain(report)
        print(redact_text(message), file=sys.stderr)
        return code
    return exit_codes.OK if state.is_completed() else exit_codes.WORK_FAILED
