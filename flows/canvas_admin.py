"""Canvas SIS import administration: the rest of the SIS import API, for a person at a terminal.

    python -m flows.canvas_admin list [--since ISO] [--before ISO] [--state STATE ...] [--limit N]
    python -m flows.canvas_admin importing
    python -m flows.canvas_admin show ID
    python -m flows.canvas_admin abort ID
    python -m flows.canvas_admin abort-all-pending
    python -m flows.canvas_admin restore ID [--batch-mode] [--undelete-only | --unconclude-only]
    python -m flows.canvas_admin errors ID [--out PATH]

A separate module rather than more flags on `flows.canvas_sis_import`: that command is a scheduled
job (one import, watched to its end), these are one-off calls a person makes, so they are plain
functions with no Prefect flow run. Settings are the same CANVAS_* ones.

Exit codes: 0 done (including an abort that lost the race with completion), 1 Canvas failed or
could not be reached (try again), 2 settings or arguments wrong, or Canvas refused (unknown id...).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from canvas_tasks.api.client import CanvasSisClient
from canvas_tasks.api.errors import CanvasAPIError
from canvas_tasks.api.models import SisImport
from canvas_tasks.sis_import.runtime import make_client, run_dir
from canvas_tasks.sis_import.settings import load_canvas_settings
from common import exit_codes
from common.cli import run_cli
from common.commands import parse_command_line
from common.redaction import quiet_noisy_loggers, redact_text

STATES = (
    "initializing", "created", "importing", "cleanup_batch", "imported", "imported_with_messages", "aborted",
    "failed", "failed_with_messages", "restoring", "partially_restored", "restored",
)  # fmt: skip


def _when(text: str) -> datetime:
    """An ISO date or date-time; without a zone it is UTC (what Canvas assumes), never local time."""
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not an ISO date/time: {text!r} (like 2026-09-01 or 2026-09-01T08:00Z)"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m flows.canvas_admin",
        description="List, abort, restore and inspect Canvas SIS imports (CANVAS_* settings).",
        epilog="Exit codes: 0 done, 1 Canvas failed or unreachable, 2 settings/arguments wrong or Canvas refused.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    lst = sub.add_parser("list", help="imports, newest first (follows every page)")
    lst.add_argument("--since", type=_when, help="created at or after (created_since)")
    lst.add_argument("--before", type=_when, help="created before (created_before)")
    lst.add_argument("--state", action="append", choices=STATES, help="only this workflow_state (repeatable)")
    lst.add_argument("--limit", type=int, default=None, help="stop after this many imports")
    lst.add_argument("--json", action="store_true", help="print the imports as JSON")
    sub.add_parser("importing", help="the imports Canvas is processing now")
    show = sub.add_parser("show", help="one import: state, counts, warning and error totals")
    show.add_argument("id", type=int)
    abort = sub.add_parser("abort", help="abort one import")
    abort.add_argument("id", type=int)
    sub.add_parser("abort-all-pending", help="abort every import not yet processed or processing")
    restore = sub.add_parser("restore", help="roll back the changes an import made (restore_states)")
    restore.add_argument("id", type=int)
    restore.add_argument("--batch-mode", action="store_true", help="only restore what batch mode deleted")
    only = restore.add_mutually_exclusive_group()
    only.add_argument("--undelete-only", action="store_true", help="only restore deleted items")
    only.add_argument("--unconclude-only", action="store_true", help="only restore concluded items")
    errors = sub.add_parser("errors", help="download the full errors CSV of a past import")
    errors.add_argument("id", type=int)
    errors.add_argument("--out", type=Path, default=None, help="where to save it (default under STATE_DIR)")
    return parser


def line(imp: SisImport) -> str:
    """One import on one line: id, state, when, true warning / error totals."""
    created = imp.created_at or "?"
    return f"{imp.id}\t{imp.workflow_state}\t{created}\twarnings={imp.warning_count}\terrors={imp.error_count}"


def _run(args: argparse.Namespace, client: CanvasSisClient) -> int:
    if args.command == "list":
        found = client.list_imports(
            created_since=args.since, created_before=args.before, workflow_states=args.state, limit=args.limit
        )
        if args.json:
            print(json.dumps([i.model_dump(mode="json") for i in found], indent=2))
        else:
            print("\n".join(line(i) for i in found) or "no imports")
    elif args.command == "importing":
        print("\n".join(line(i) for i in client.importing()) or "no import is running")
    elif args.command == "show":
        imp = client.get_import(args.id)
        print(line(imp))
        if imp.counts:
            print("Counts: " + ", ".join(f"{k}={v}" for k, v in sorted(imp.counts.items()) if v))
    elif args.command == "abort":
        imp = client.abort(args.id)
        if imp.finished_before_abort:
            print(f"import {imp.id} finished before the abort ({imp.workflow_state}); nothing was aborted")
        else:
            print(f"import {imp.id} aborted ({imp.workflow_state})")
    elif args.command == "abort-all-pending":
        done = client.abort_all_pending()
        print("aborted every pending import" if done else "Canvas reported nothing aborted")
    elif args.command == "restore":
        progress = client.restore_states(
            args.id, batch_mode=args.batch_mode, undelete_only=args.undelete_only, unconclude_only=args.unconclude_only
        )
        print(f"restore of import {args.id} started: progress {progress.get('id')} ({progress.get('workflow_state')})")
    elif args.command == "errors":
        settings = load_canvas_settings()
        dest = args.out or run_dir(settings, args.id) / "errors.csv"
        saved = client.download_errors(args.id, dest)
        if saved is None:
            print(f"import {args.id} has no errors attachment (no warnings or errors, or not finished)")
        else:
            print(f"Full errors CSV for import {args.id} saved to {saved}")
    return exit_codes.OK


def main(argv: Sequence[str] | None = None) -> int:
    quiet_noisy_loggers()  # httpx would log URLs; errors-CSV URLs carry a verifier
    args = parse_command_line(build_parser(), argv)
    settings = load_canvas_settings()
    try:
        with make_client(settings) as client:
            return _run(args, client)
    except CanvasAPIError as exc:
        print(redact_text(str(exc)), file=sys.stderr)
        return exit_codes.WORK_FAILED


if __name__ == "__main__":
    run_cli(main)
