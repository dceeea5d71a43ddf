"""Canvas SIS import: file or folder -> (zip) -> validate options -> submit -> watch -> report.

    python -m flows.canvas_sis_import PATH_OR_URL [options]     (see README, "Canvas SIS imports")

Exit codes: 0 imported (warnings allowed unless --fail-on-warnings) or submitted with --no-watch;
1 the import failed, was aborted, or is still running when the watch timed out; 2 settings, options
or input are wrong and nothing was sent.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Iterator, Sequence
from typing import Any

from prefect import flow
from prefect.states import Failed, State

from canvas_tasks.api.models import Outcome
from canvas_tasks.sis_import.options import VALUE_FIELDS, ImportOptions, build_options, flag
from canvas_tasks.sis_import.runtime import preflight
from canvas_tasks.sis_import.tasks import (
    package_task,
    report_submitted_task,
    report_task,
    submit_task,
    watch_task,
)
from common import exit_codes
from common.cli import run_cli
from common.commands import parse_command_line
from common.environ import patched_environ
from common.errors import ConfigError
from common.redaction import quiet_noisy_loggers, redact_text
from common.run_context import ends_in_one_line


@flow(name="canvas-sis-import", log_prints=False)
@ends_in_one_line
def canvas_sis_import(
    source: str,
    options: ImportOptions | None = None,
    watch: bool = True,
    poll_interval: float = 10.0,
    timeout: float = 3600.0,
    fail_on_warnings: bool = False,
    abort_on_timeout: bool = False,
    resubmit: bool = False,
) -> Outcome | State:
    """Settings (URL, account, token) are read at run time from the environment, never passed as
    parameters, so nothing secret is stored with the flow run."""
    quiet_noisy_loggers()  # httpx would log request URLs, and errors-CSV URLs carry a verifier
    options = options or ImportOptions()
    package = package_task(source, options.extension)
    submitted = submit_task(package, options, resubmit)
    if submitted.sis_import is None:  # Canvas refused (bad token, not a root account, bad parameter)
        refused = Outcome(status="refused", exit_code=exit_codes.CONFIG_ERROR, message=submitted.refused or "")
        return Failed(message=refused.message, data=refused)
    imp, reattached = submitted.sis_import, submitted.reattached
    if not watch:
        return report_submitted_task(imp, package, options, reattached)
    final, timed_out, aborted = watch_task(imp, poll_interval, timeout, abort_on_timeout)
    outcome = report_task(final, package, options, timed_out, aborted, fail_on_warnings, reattached)
    if outcome.exit_code != exit_codes.OK:
        return Failed(message=outcome.message, data=outcome)
    return outcome


# --- command line ----------------------------------------------------------------------------------

_BOOL_OPTIONS = {
    "batch_mode": "run in batch mode: delete SIS data of the term that is not in this import",
    "multi_term_batch_mode": "batch mode for every term in terms.csv (needs --change-threshold)",
    "override_sis_stickiness": "overwrite fields changed in the Canvas UI",
    "add_sis_stickiness": "treat these changes as UI changes (needs --override-sis-stickiness)",
    "clear_sis_stickiness": "clear stickiness on touched fields (needs --override-sis-stickiness)",
    "update_sis_id_if_login_claimed": "replace a non-matching SIS ID when the login is found",
    "diffing_remaster_data_set": "join the diffing data set without diffing this import",
    "skip_deletes": "skip deletes in the files (batch cleanup still deletes)",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m flows.canvas_sis_import",
        description="Submit an SIS import to Canvas, watch it, and report counts, warnings and errors.",
        epilog="Exit codes: 0 done, 1 import failed / aborted / still running, 2 configuration or input error.",
    )
    parser.add_argument(
        "source",
        metavar="PATH_OR_URL",
        nargs="?",
        help="CSV, zip or XML file, or a folder of SIS CSVs (local path or fsspec URL)",
    )
    opts = parser.add_argument_group("Canvas import options (validated before anything is sent)")
    opts.add_argument("--import-type", default=None, help="default instructure_csv")
    opts.add_argument(
        "--extension",
        choices=["csv", "zip", "xml"],
        default=None,
        help="override the extension derived from the content (must still match it)",
    )
    for name, text in _BOOL_OPTIONS.items():
        opts.add_argument(flag(name), dest=name, action="store_true", default=None, help=text)
    opts.add_argument("--batch-mode-term-id", default=None, help="term for --batch-mode (id or sis_term_id:X)")
    opts.add_argument(
        "--change-threshold",
        type=int,
        default=None,
        metavar="PERCENT",
        help="1-100: abort batch cleanup / skip diffing above this percentage of changes",
    )
    opts.add_argument(
        "--diffing-data-set-identifier",
        default=None,
        metavar="ID",
        help="diff against the previous import with this identifier (not with batch mode)",
    )
    opts.add_argument("--diffing-drop-status", choices=["deleted", "completed", "inactive"], default=None)
    opts.add_argument("--diffing-user-remove-status", choices=["deleted", "suspended"], default=None)
    opts.add_argument("--batch-mode-enrollment-drop-status", choices=["deleted", "completed", "inactive"], default=None)
    opts.add_argument(
        "--diff-row-count-threshold",
        type=int,
        default=None,
        metavar="ROWS",
        help="skip diffing when the diff would exceed this many rows",
    )
    run = parser.add_argument_group("watching")
    run.add_argument("--no-watch", action="store_true", help="submit, print the import id and exit 0")
    run.add_argument("--poll-interval", type=float, default=10.0, metavar="SECONDS", help="default 10")
    run.add_argument(
        "--timeout",
        type=float,
        default=3600.0,
        metavar="SECONDS",
        help="stop watching after this long (default 3600); the import keeps running",
    )
    run.add_argument("--fail-on-warnings", action="store_true", help="exit 1 on imported_with_messages")
    run.add_argument("--abort-on-timeout", action="store_true", help="abort the import if the watch times out")
    run.add_argument(
        "--resubmit",
        action="store_true",
        help="upload even if the same files and options were already submitted (default: follow that import)",
    )
    parser.add_argument(
        "--sandbox",
        action="store_true",
        help="start a local Canvas emulator and import into it (PATH_OR_URL defaults to a demo)",
    )
    return parser


_OPTION_NAMES = ("import_type", "extension", *_BOOL_OPTIONS, *VALUE_FIELDS)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    args = parse_command_line(build_parser(), argv)
    problems = []
    if args.poll_interval <= 0:
        problems.append("--poll-interval must be greater than 0")
    if args.timeout <= 0:
        problems.append("--timeout must be greater than 0")
    if args.no_watch and (args.fail_on_warnings or args.abort_on_timeout):
        problems.append("--fail-on-warnings and --abort-on-timeout need watching; drop --no-watch")
    if not args.source and not args.sandbox:
        problems.append("PATH_OR_URL is required (a CSV, zip or XML file, or a folder of SIS CSVs)")
    if problems:
        raise ConfigError(problems, heading="Invalid command line")
    return args


def options_from_args(args: argparse.Namespace) -> ImportOptions:
    return build_options(**{name: getattr(args, name) for name in _OPTION_NAMES})


@contextlib.contextmanager
def _sandbox_env() -> Iterator[dict[str, Any]]:
    from sandbox.canvas import CanvasSandbox

    with CanvasSandbox() as sandbox:
        env = {
            "CANVAS_BASE_URL": sandbox.base_url,
            "CANVAS_ACCOUNT_ID": sandbox.account_id,
            "CANVAS_ACCESS_TOKEN": sandbox.token,
            "CANVAS_RETRY_BACKOFF": "0.05",
        }
        with patched_environ(env):
            yield {"sandbox": sandbox}


def run(args: argparse.Namespace, options: ImportOptions) -> Outcome:
    state = canvas_sis_import(
        args.source,
        options=options,
        watch=not args.no_watch,
        poll_interval=args.poll_interval,
        timeout=args.timeout,
        fail_on_warnings=args.fail_on_warnings,
        abort_on_timeout=args.abort_on_timeout,
        resubmit=args.resubmit,
        return_state=True,
    )
    result = state.result(raise_on_failure=False)
    if isinstance(result, Outcome):
        return result
    if isinstance(result, ConfigError):
        raise result
    if isinstance(result, dict) and result.get("fatal"):  # one clear line from ends_in_one_line
        return Outcome(status="error", exit_code=result["exit_code"], message=result["summary_line"])
    message = f"{type(result).__name__}: {result}" if isinstance(result, BaseException) else str(state.message)
    return Outcome(status="error", exit_code=exit_codes.WORK_FAILED, message=message)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    options = options_from_args(args)
    if args.sandbox:
        from sandbox.canvas.samples import demo_folder

        args.source = args.source or str(demo_folder())
        if args.poll_interval == build_parser().get_default("poll_interval"):
            args.poll_interval = 0.2
        with _sandbox_env() as ctx:
            print(f"Canvas sandbox running at {ctx['sandbox'].base_url} (account {ctx['sandbox'].account_id})")
            preflight(args.source, options)
            outcome = run(args, options)
    else:
        preflight(args.source, options)
        outcome = run(args, options)
    stream = sys.stdout if outcome.exit_code == exit_codes.OK else sys.stderr
    if outcome.status == "submitted":
        print(outcome.import_id)
    print(redact_text(outcome.message), file=stream)
    if outcome.counts:
        print("Counts: " + ", ".join(f"{k}={v}" for k, v in sorted(outcome.counts.items()) if v), file=stream)
    if outcome.errors_csv:
        print(f"Full errors CSV: {outcome.errors_csv}", file=stream)
    return outcome.exit_code


if __name__ == "__main__":
    run_cli(main)
