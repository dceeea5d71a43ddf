"""Opening and closing an export run: settings -> client, ledger, destinations, owner, heartbeat.

The wiring lives in the slice, not in `flows/`, so the flow only composes steps and tasks, and
the same runtime is what `common.runtime.current(ExportRuntime)` hands the tasks.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from datetime import timedelta

from common.run_context import current_flow_run_id
from destinations import Destination, DestinationUnavailable, open_destination
from encoura_tasks.api.client import EncouraClient
from encoura_tasks.export.settings import load_export_settings
from encoura_tasks.export.steps import ExportRuntime, clean_delivered_staging, secure_state_dir
from ledger import ClaimOwner, Ledger

logger = logging.getLogger(__name__)


@contextlib.contextmanager
def export_runtime() -> Iterator[ExportRuntime]:
    """Everything one run needs, opened once and closed on every way out (the client, too, on errors)."""
    encoura_settings, run_settings = load_export_settings()
    secure_state_dir(run_settings.state_dir)
    ledger = Ledger(run_settings.resolved_ledger_url, claim_ttl=timedelta(seconds=run_settings.claim_ttl_seconds))
    owner = ClaimOwner.current(current_flow_run_id())
    destinations: dict[str, Destination] = {}
    client = EncouraClient(encoura_settings)
    rt: ExportRuntime | None = None
    try:
        for name, config in sorted(run_settings.destinations.items()):
            destinations[name] = open_destination(name, config)
        rt = ExportRuntime(
            client=client,
            ledger=ledger,
            destinations=destinations,
            settings=run_settings,
            owner=owner,
        )
        ledger.start_heartbeat(owner)
        yield rt
    finally:
        if rt is not None:  # what the tasks left running in the background ends with the run
            rt.background.shutdown(wait=True)
        for dest in destinations.values():
            with contextlib.suppress(Exception):
                dest.close()
        client.close()
        ledger.close()


def sweep(rt: ExportRuntime, log: logging.Logger | logging.LoggerAdapter[logging.Logger] = logger) -> None:
    """Remove temp files left by killed runs; a destination that cannot even be reached is noted once."""
    for name, dest in rt.destinations.items():
        try:
            removed = dest.sweep(keep=rt.keep_temps.get(name, ()))
        except DestinationUnavailable as exc:
            rt.unavailable[name] = str(exc)
            log.error("Destination %s is unavailable: %s", name, exc)
            continue
        if removed:
            log.warning("Destination %s: removed %d temporary file(s) left by an interrupted run", name, len(removed))
    clean_delivered_staging(rt)
