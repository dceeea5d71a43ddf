"""Opening and closing an upload run: one `UploadRuntime` per source, sharing one client, ledger and owner.

The wiring lives in the slice, not in `flows/`, so the flow only composes. Tasks never receive
these objects (Prefect records task parameters); they take a source name and ask
`common.runtime.current(UploadRun).source(name)`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from datetime import timedelta
from pathlib import Path

from common.errors import gather_settings
from common.run_context import current_flow_run_id
from destinations import DestinationConfig
from encoura_tasks.api.client import EncouraClient
from encoura_tasks.api.settings import EncouraSettings, load_encoura_settings
from encoura_tasks.export.settings import RunSettings, load_run_settings
from encoura_tasks.upload.settings import DEFAULT_SOURCE_NAME, UploadSettings, load_upload_sources
from encoura_tasks.upload.source import UploadSource
from encoura_tasks.upload.steps import UploadRuntime, sweep_staging
from ledger import ClaimOwner, Ledger

UploadConfig = tuple[EncouraSettings, RunSettings, list[tuple[UploadSettings, DestinationConfig]]]


class UploadRun:
    """Every source's runtime in this run, by source name (names are unique: the settings check that)."""

    def __init__(self, runtimes: Sequence[UploadRuntime], run_settings: RunSettings) -> None:
        self.runtimes = list(runtimes)
        self.run_settings = run_settings
        self._by_name = {rt.settings.name: rt for rt in self.runtimes}

    def __repr__(self) -> str:
        return f"UploadRun(sources={sorted(self._by_name)})"

    def source(self, name: str) -> UploadRuntime:
        try:
            return self._by_name[name]
        except KeyError:
            raise LookupError(f"no upload source named {name!r} in this run") from None

    @property
    def api(self) -> EncouraClient:
        """The one Encoura client every source shares (a dry run has none: it raises)."""
        if not self.runtimes:
            raise LookupError("this run has no upload source")
        return self.runtimes[0].api


def load_upload_config() -> UploadConfig:
    """Every settings group at once, so one message lists every problem before anything touches the network."""
    encoura, run, sources = gather_settings(load_encoura_settings, load_run_settings, load_upload_sources)
    return encoura, run, sources


def upload_staging_dir(state_dir: Path, name: str) -> Path:
    """`default` keeps the old staging folder; each named source gets its own, so same-named files never meet."""
    return state_dir / "uploads" if name == DEFAULT_SOURCE_NAME else state_dir / f"uploads-{name}"


@contextlib.contextmanager
def upload_runtime(*, dry_run: bool) -> Iterator[UploadRun]:
    """One runtime per upload source; they share the ledger, the owner and the Encoura login."""
    encoura_settings, run_settings, sources = load_upload_config()
    run_settings.state_dir.mkdir(parents=True, exist_ok=True)
    ledger = Ledger(run_settings.resolved_ledger_url, claim_ttl=timedelta(seconds=run_settings.claim_ttl_seconds))
    owner = ClaimOwner.current(current_flow_run_id())
    opened = [UploadSource(upload_settings, source_config) for upload_settings, source_config in sources]
    client = None if dry_run else EncouraClient(encoura_settings)
    try:
        runtimes = [
            UploadRuntime(
                client=client,
                ledger=ledger,
                source=source,
                settings=source.settings,
                staging_dir=upload_staging_dir(run_settings.state_dir, source.settings.name),
                owner=owner,
                dry_run=dry_run,
            )
            for source in opened
        ]
        ledger.start_heartbeat(owner)
        for rt in runtimes:
            sweep_staging(rt.staging_dir)
        yield UploadRun(runtimes, run_settings)
    finally:
        for source in opened:
            with contextlib.suppress(Exception):
                source.close()
        if client is not None:
            client.close()
        ledger.close()
