"""Encoura -> Slate (and any other destination): list, record, stage, publish, report. Exactly once.

python -m flows.encoura_export [--sandbox] [--product-key K ...] [--dry-run] [--redeliver UID ...]
"""

from __future__ import annotations

import argparse
import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.task_runners import ThreadPoolTaskRunner

from common import exit_codes
from common.cli import run_cli
from common.commands import run_flow_command
from common.environ import patched_environ
from common.errors import ConfigError, explain
from common.fan_out import MAX_WINDOW, fan_out
from common.redaction import redact_url
from common.report import Progress
from common.run_context import ends_in_one_line, report_state
from common.runtime import provide
from encoura_tasks.api.settings import PRODUCT_KEYS
from encoura_tasks.export.report import outcome_rows, print_console_report, publish_export_report
from encoura_tasks.export.runtime import export_runtime, sweep
from encoura_tasks.export.settings import load_export_settings
from encoura_tasks.export.steps import ExportOutcome, start_of_run
from encoura_tasks.export.tasks import deliver_export, delivery_label, list_and_record
from encoura_tasks.session import encoura_login
from ledger.store import ALL_PRODUCTS, ExportRow


@flow(name="encoura-export", task_runner=ThreadPoolTaskRunner(max_workers=MAX_WINDOW))
@ends_in_one_line
def encoura_export(
    product_keys: list[str] | None = None,
    dry_run: bool = False,
    redeliver: list[str] | None = None,
):
    """Deliver every new Encoura export to every configured destination, exactly once."""
    logger = get_run_logger()
    unknown = [k for k in product_keys or [] if k not in PRODUCT_KEYS]
    if unknown:
        raise ConfigError(f"--product-key: unknown product key(s) {unknown}; known: {', '.join(PRODUCT_KEYS)}")
    with export_runtime() as rt, provide(rt), provide(rt.client):
        keys = product_keys or rt.client.settings.product_keys
        settings = rt.settings
        signed_in = encoura_login()
        if signed_in.error:
            report = {"exports": [], "problems": [signed_in.error], "summary_line": signed_in.error, "exit_code": 2}
            return report_state(report, failed=True)
        blocked = start_of_run(rt, settings.state_dir, settings.state_retention_days, dry_run=dry_run)
        if blocked:  # nowhere to deliver: do not list (a listing hands each export out once)
            summary = "no destination is reachable; nothing was listed (try again when one is)"
            report = {"exports": [], "problems": blocked, "summary_line": summary, "exit_code": 1, "listed": False}
            return report_state(report, failed=True)
        if not dry_run:  # a dry run removes nothing at destinations either
            sweep(rt, logger)
        for uid in redeliver or []:
            rt.ledger.reset_for_redelivery(uid)
            logger.info("Export %s will be fetched and delivered again", uid)

        problems: list[str] = []
        # Every product configured: one listing call without productKey instead of one per product.
        listing_keys = [ALL_PRODUCTS] if set(keys) >= set(PRODUCT_KEYS) else keys
        for key in listing_keys:
            listing = list_and_record(key)
            problems.extend(listing.problems)
            if listing.error:
                problems.append(listing.error)

        pending = rt.ledger.pending_exports(None if redeliver else keys)
        if redeliver:
            pending = [p for p in pending if p.product_key in keys or p.uid in redeliver]
        outcomes: list[ExportOutcome] = []
        if dry_run:
            outcomes = [ExportOutcome(uid=p.uid, product_key=p.product_key, status="would deliver") for p in pending]
        else:
            progress = Progress(len(pending), f"Delivering {len(pending)} export(s)")
            task = deliver_export.with_options(
                retries=settings.task_retries, retry_delay_seconds=settings.task_retry_delay_seconds
            )
            def submit(p: ExportRow) -> Any:  # renamed by the task once staging tells it the file name
                return task.submit(p.uid, label=delivery_label(p.product_key, p.file_name or p.source_name))

            for row, result in fan_out(submit, pending, limit=settings.max_parallel_files):
                if isinstance(result, Exception):
                    error = explain(result)[0]  # the same one line the CLI would print for it
                    result = ExportOutcome(uid=row.uid, product_key=row.product_key, status="failed", error=error)
                outcomes.append(result)
                progress.advance()

        publish_export_report(outcomes, problems, dry_run=dry_run)
        failed = [o for o in outcomes if o.status in ("failed", "rejected")]
        delivered = sum(o.status == "delivered" for o in outcomes)
        report = {
            "exports": outcome_rows(outcomes),
            "problems": problems,
            "destinations": {name: dest.describe() for name, dest in rt.destinations.items()},
            "exit_code": exit_codes.WORK_FAILED if failed or problems else exit_codes.OK,
            "summary_line": (
                f"{delivered} delivered, {len(failed)} failed, {len(problems)} listing problem(s)"
                + (" (dry run: nothing downloaded or delivered)" if dry_run else "")
            ),
        }
        state = report_state(report, failed=bool(failed or problems))
    return state


# ----------------------------------------------------------------------------- command line
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m flows.encoura_export",
        description="Deliver new Encoura exports to every configured destination (Slate SFTP, shares, S3).",
    )
    parser.add_argument("--sandbox", action="store_true", help="run against the built-in Encoura sandbox")
    parser.add_argument(
        "--product-key",
        action="append",
        dest="product_keys",
        choices=PRODUCT_KEYS,
        help="only this product (repeatable); default: ENCOURA_PRODUCT_KEYS",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="list and report only; listed exports are still recorded (listing consumes them)",
    )
    parser.add_argument(
        "--redeliver",
        action="append",
        metavar="UID",
        default=None,
        help="fetch an already delivered export again and deliver it (repeatable)",
    )
    return parser.parse_args(argv)


@contextlib.contextmanager
def sandbox_environment() -> Iterator[None]:
    """Start the built-in sandbox and point the flow at it; default to a local demo folder."""
    from sandbox.encoura import SandboxServer

    with SandboxServer(seed_samples=True) as sandbox:
        env = dict(sandbox.env())
        if not any(k.upper().startswith("DESTINATIONS__") for k in os.environ):
            out = Path("demo-output/slate-incoming").resolve()
            out.mkdir(parents=True, exist_ok=True)  # the demo's root; a real destination's must already exist
            env["DESTINATIONS__DEMO__URL"] = out.as_uri()
            env["DESTINATIONS__DEMO__PATH_TEMPLATE"] = "{product_key}/{filename}"
        env.setdefault("STATE_DIR", os.environ.get("STATE_DIR", str(Path(".state/sandbox"))))
        print(f"Sandbox Encoura API at {sandbox.base_url} (fake credentials, loopback only)")
        with patched_environ(env):
            yield


def announce_destinations() -> None:
    """Fail fast on bad settings (no Prefect server, no network), and say where files will go."""
    _, run_settings = load_export_settings()
    for name, config in sorted(run_settings.destinations.items()):
        print(f"Destination {name}: {redact_url(config.url)}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return run_flow_command(
        sandbox=sandbox_environment() if args.sandbox else None,
        check_settings=announce_destinations,
        start=lambda: encoura_export(
            product_keys=args.product_keys, dry_run=args.dry_run, redeliver=args.redeliver, return_state=True
        ),
        print_report=print_console_report,
    )


if __name__ == "__main__":
    run_cli(main)
