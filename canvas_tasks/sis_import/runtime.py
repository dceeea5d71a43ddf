"""Wiring for a Canvas SIS import: the client built from the settings, the per-import folder, the preflight.

Settings (URL, account, token) are read where they are used, never passed to tasks: nothing secret
is stored with a flow run. The wiring lives in the slice so `flows/` only composes.
"""

from __future__ import annotations

from pathlib import Path

from canvas_tasks.api.client import CanvasSisClient
from canvas_tasks.api.transport import RetryPolicy
from canvas_tasks.sis_import.options import ImportOptions
from canvas_tasks.sis_import.packaging import check_input
from canvas_tasks.sis_import.settings import CanvasSettings, load_canvas_settings


def make_client(settings: CanvasSettings) -> CanvasSisClient:
    return CanvasSisClient(
        settings.base_url,
        settings.account_id,
        settings.token,
        retry=RetryPolicy(attempts=settings.retry_attempts, backoff=settings.retry_backoff),
        ca_bundle=settings.ca_bundle,
    )


def run_dir(settings: CanvasSettings, import_id: int) -> Path:
    return settings.state_dir / "canvas" / str(import_id)


def preflight(source: str, options: ImportOptions) -> None:
    """Check settings, input and account before the flow starts, so mistakes end with one message and
    exit 2 (no traceback, nothing uploaded). The only request is a read of the account."""
    settings = load_canvas_settings()
    settings.token()  # resolves a prefect-secret: reference now, so a missing block is a config error
    check_input(source, settings.state_dir / "canvas" / "preflight", extension=options.extension)
    with make_client(settings) as client:  # a read-only request: is the token good, is this the root account?
        client.check_root_account()
