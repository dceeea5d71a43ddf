"""Files -> Encoura's upload API (enrollment, Affinity, eMatch): validate, send once, watch, archive.

python -m flows.encoura_upload [--sandbox] [--dry-run]

Exit codes: 0 every file processed (or nothing to do), 1 some file was refused, failed, was canceled,
needs a person or is still processing at the time limit, 2 the settings are wrong (nothing tried).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.task_runners import ThreadPoolTaskRunner

from common.cli import run_cli
from common.commands import run_flow_command
from common.environ import patched_environ
from common.fan_out import MAX_WINDOW, fan_out
from common.redaction import redact_text
from common.report import Progress
from common.run_context import ends_in_one_line, report_state
from common.runtime import provide
from encoura_tasks.export.settings import RunSettings
from encoura_tasks.session import encoura_login
from encoura_tasks.upload.report import outcome_rows, print_upload_report, publish_upload_report, summary_line
from encoura_tasks.upload.runtime import load_upload_config, upload_runtime
from encoura_tasks.upload.steps import UploadOutcome, UploadRuntime, select_orphans
from encoura_tasks.upload.tasks import list_source, resume_upload, upload_file


def _error_outcome(rt: UploadRuntime, name: str, exc: BaseException) -> UploadOutcome:
    return UploadOutcome(
        file=name, status="error", error=redact_text(f"{type(exc).__name__}: {exc}"), source=rt.settings.name
    )


@flow(name="encoura-upload", task_runner=ThreadPoolTaskRunner(max_workers=MAX_WINDOW))
@ends_in_one_line
def encoura_upload(dry_run: bool = False):
    """Send every matching source file to Encoura exactly once and see each one through to a final status."""
    logger = get_run_logger()
    with upload_runtime(dry_run=dry_run) as run, provide(run):
        runtimes, run_settings = run.runtimes, run.run_settings
        if not dry_run:
            with provide(run.api):
                signed_in = encoura_login()  # one client, one login for every source
            if signed_in.error:  # wrong credentials: one line, exit 2, nothing listed or sent
                report = {"files": [], "problems": [signed_in.error], "summary_line": signed_in.error, "exit_code": 2}
                return report_state(report, failed=True)
        outcomes: list[UploadOutcome] = []
        for rt in runtimes:
            outcomes += _upload_one_source(rt, run_settings, dry_run=dry_run, logger=logger)
        outcomes.sort(key=lambda o: (o.source, o.file))
        described = "; ".join(f"{rt.settings.name}: {rt.source.describe()}" for rt in runtimes)
        publish_upload_report(outcomes, source=described, dry_run=dry_run)
        report = {
            "files": outcome_rows(outcomes),
            "source": described,
            "summary_line": summary_line(outcomes, dry_run=dry_run),
        }
        state = report_state(report, failed=bool(any(o.is_problem for o in outcomes)))
    return state


def _upload_one_source(
    rt: UploadRuntime, run_settings: RunSettings, *, dry_run: bool, logger: Any
) -> list[UploadOutcome]:
    """Everything one source needs in a run: its files, then its earlier uploads whose files are gone."""
    name = rt.settings.name
    files = list_source(name)
    task = upload_file.with_options(
        retries=run_settings.task_retries, retry_delay_seconds=run_settings.task_retry_delay_seconds
    )
    outcomes: list[UploadOutcome] = []
    progress = Progress(len(files), f"Uploading {len(files)} file(s) to Encoura")
    for item, result in fan_out(lambda i: task.submit(name, i), files, limit=run_settings.max_parallel_files):
        outcomes.append(_error_outcome(rt, item.relative, result) if isinstance(result, Exception) else result)
        progress.advance()

    # Sent by an earlier run, not finished, and its file is no longer in the source: still find out how it ended.
    orphans = select_orphans(
        rt.ledger.unfinished_uploads(),
        product_type=rt.settings.product_type,
        folder=rt.source.folder_location(),
        listed={rt.source.location(item.relative) for item in files},
    )
    if orphans and dry_run:
        outcomes += [
            UploadOutcome(
                file=r.name,
                size=r.size,
                sha256=r.sha256,
                encoura_file_id=r.encoura_file_id,
                status=f"would resume ({r.status})",
                source=rt.settings.name,
            )
            for r in orphans
        ]
    elif orphans:
        logger.info("Resuming %d upload(s) sent by an earlier run whose files are gone", len(orphans))
        resume = resume_upload.with_options(
            retries=run_settings.task_retries, retry_delay_seconds=run_settings.task_retry_delay_seconds
        )
        for row, result in fan_out(lambda r: resume.submit(name, r), orphans, limit=run_settings.max_parallel_files):
            outcomes.append(_error_outcome(rt, row.name, result) if isinstance(result, Exception) else result)
    return outcomes


# ----------------------------------------------------------------------------- command line
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m flows.encoura_upload",
        description="Send enrollment, Affinity or eMatch files (UPLOAD_SOURCE) to Encoura's upload API.",
    )
    parser.add_argument(
        "--sandbox",
        action="store_true",
        help="run against the built-in Encoura sandbox with demo files (one processed, one failing, one "
        "needing field mapping)",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="list, read and validate only: nothing is sent to Encoura or moved"
    )
    return parser.parse_args(argv)


DEMO_DIR = Path("demo-output/encoura-upload")
DEMO_STATE_DIR = Path(".state/sandbox-upload")
DEMO_FILES = {
    # The sandbox picks the outcome from the file name: "fail" -> failure, "mapping" -> fields_mapping_required.
    "enrollment_ok.csv": "StudentID,FirstName,LastName,ZIP,EnrollStatus\n"
    '000123,Ana,Lopez,"01234",Enrolled\n000124,"Kim, Jr.",Park,"02139",Deposited\n',
    "enrollment_fail.csv": 'StudentID,FirstName,LastName,ZIP,EnrollStatus\n000200,Sam,Lee,"60601",Enrolled\n',
    "enrollment_mapping.csv": 'Student Number,Given,Family,Postal,Stage\n000300,Jo,Ng,"94110",Admitted\n',
}


@contextlib.contextmanager
def sandbox_environment() -> Iterator[None]:
    """Start the built-in sandbox and, unless UPLOAD_SOURCE is set, a fresh demo folder with three files."""
    from sandbox.encoura import SandboxConfig, SandboxServer

    with SandboxServer(SandboxConfig(upload_status_steps=1)) as sandbox:
        env = dict(sandbox.env())
        if not os.environ.get("UPLOAD_SOURCE"):
            shutil.rmtree(DEMO_DIR, ignore_errors=True)
            outgoing = (DEMO_DIR / "outgoing").resolve()
            outgoing.mkdir(parents=True)
            for name, text in DEMO_FILES.items():
                (outgoing / name).write_text(text, encoding="utf-8")
            env.update(
                UPLOAD_SOURCE=f"{outgoing.as_uri()}/enrollment_*.csv",
                UPLOAD_PRODUCT_TYPE="enrollment",
                UPLOAD_DESCRIPTION="Sandbox demo",
                UPLOAD_POLL_INTERVAL_SECONDS="0.2",
                UPLOAD_POLL_MAX_INTERVAL_SECONDS="1",
                UPLOAD_POLL_TIMEOUT_SECONDS="30",
            )
            if not os.environ.get("STATE_DIR"):
                # A fresh sandbox knows none of the file ids an earlier demo recorded: start clean.
                shutil.rmtree(DEMO_STATE_DIR, ignore_errors=True)
                env["STATE_DIR"] = str(DEMO_STATE_DIR)
            print(f"Demo files written to {outgoing}")
        print(f"Sandbox Encoura API at {sandbox.base_url} (fake credentials, loopback only)")
        with patched_environ(env):
            yield


def announce_sources() -> None:
    """Fail fast on bad settings (no Prefect server, no network), and say which files will be sent."""
    _, _, sources = load_upload_config()
    for upload_settings, _ in sources:
        name, product = upload_settings.name, upload_settings.product_type
        print(f"Source {name}: {upload_settings.describe_source()} ({product})")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return run_flow_command(
        sandbox=sandbox_environment() if args.sandbox else None,
        check_settings=announce_sources,
        start=lambda: encoura_upload(dry_run=args.dry_run, return_state=True),
        print_report=print_upload_report,
    )


if __name__ == "__main__":
    run_cli(main)
