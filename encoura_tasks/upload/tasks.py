"""Prefect tasks for the Encoura upload: list the source, one task per file, resume orphans.

The login is `encoura_tasks.session.encoura_login`, shared with the export.

Idempotency lives in the ledger, not in Prefect's result cache (NO_CACHE): a task retry re-enters
`upload_steps.drive`, which reads the ledger first, so a retry after the record was created or the
bytes were sent never sends them again. Transport-level retries (429/5xx, connection errors) are
already inside the httpx client; task retries cover what a fresh attempt can fix on top of that.

Tasks take plain values only (a source name, a listed file, a ledger row): each finds its
source's `UploadRuntime` through `common.runtime.current(UploadRun)`, which the flow provides.
"""

from __future__ import annotations

from dataclasses import replace

import httpx
from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.logging import get_run_logger

from common.errors import ConfigError
from common.report import Progress
from common.runtime import current
from common.task_retry import retry_only
from destinations import AuthenticationRefused, HostKeyError, PublishError
from encoura_tasks.api.errors import EncouraAuthError, EncouraError
from encoura_tasks.upload import steps as upload_steps
from encoura_tasks.upload.runtime import UploadRun
from encoura_tasks.upload.source import SourceFile, UploadSourceError
from encoura_tasks.upload.steps import PROGRESS_CHAIN, UploadOutcome
from ledger import UploadRow

# Retry what may pass on a second try (network, storage, Encoura hiccups); never bad credentials.
_retry_transient = retry_only(
    permanent=(EncouraAuthError, ConfigError, HostKeyError, AuthenticationRefused),
    transient=(EncouraError, UploadSourceError, PublishError, httpx.HTTPError, OSError),
)


class StatusProgress:
    """A progress artifact per file that follows Encoura's status chain while we poll."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.progress: Progress | None = None  # created with the first status: a file never polled has none

    def __call__(self, status: str) -> None:
        try:
            step = PROGRESS_CHAIN.index(status)
            progress = 100.0 * step / (len(PROGRESS_CHAIN) - 1)
        except ValueError:
            progress = 100.0  # failure / canceled / mapping: nothing more will happen this run
        description = f"{self.name}: Encoura status {status}"
        try:
            if self.progress is None:
                self.progress = Progress(100, description, start=progress)
            else:
                self.progress.show(progress, description)
        except Exception as exc:  # a report must never break an upload
            get_run_logger().debug("progress artifact not updated: %s", type(exc).__name__)


@task(name="list-upload-source", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=5,
      retry_condition_fn=_retry_transient)
def list_source(source_name: str) -> list[SourceFile]:
    rt = current(UploadRun).source(source_name)
    files = rt.source.list_files()
    get_run_logger().info("%s: %d file(s) match %s", rt.settings.name, len(files), rt.source.describe())
    return files


@task(name="upload-file", cache_policy=NO_CACHE, retry_condition_fn=_retry_transient,
      task_run_name="upload-{source_name}-{item.relative}")
def upload_file(source_name: str, item: SourceFile) -> UploadOutcome:
    """Stage, validate, send once, poll, then archive / move to failed/ / report: one file, start to end."""
    rt = current(UploadRun).source(source_name)
    outcome = replace(
        upload_steps.process_file(rt, item, on_status=StatusProgress(item.relative)), source=rt.settings.name
    )
    log = get_run_logger()
    if outcome.is_problem:
        detail = f" ({outcome.error})" if outcome.error else ""
        log.error("%s: %s: %s%s", rt.settings.name, item.relative, outcome.status, detail)
    else:
        log.info("%s: %s: %s", rt.settings.name, item.relative, outcome.status)
    return outcome


@task(name="resume-upload", cache_policy=NO_CACHE, retry_condition_fn=_retry_transient,
      task_run_name="resume-{row.name}")
def resume_upload(source_name: str, row: UploadRow) -> UploadOutcome:
    """An upload sent by an earlier run whose file is no longer in the source: finish checking it."""
    rt = current(UploadRun).source(source_name)
    return replace(upload_steps.resume_orphan(rt, row, on_status=StatusProgress(row.name)), source=rt.settings.name)
