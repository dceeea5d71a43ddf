"""Per-host politeness across every run: a Prefect global concurrency limit named `sftp:<host>`.

`DESTINATIONS__<NAME>__MAX_CONCURRENCY` caps transfers within one run; two overlapping runs (or two
workers) would each use their own cap. When an operator creates a global concurrency limit named
after the host, every publish to that host takes a slot first, so the cap holds across runs:

    prefect global-concurrency-limit create sftp:ft.technolutions.net --limit 4

Without such a limit nothing waits and nothing is logged: we check for the limit (cached for a
minute per process) instead of letting Prefect warn once per file.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

logger = logging.getLogger(__name__)

SFTP_SCHEMES = frozenset({"sftp", "ssh"})
CACHE_SECONDS = 60.0

_lock = threading.Lock()
_known: dict[str, tuple[float, bool]] = {}


def limit_name(url: str) -> str | None:
    """`sftp:<host>` for SFTP URLs (the name to give the limit); None for other storage."""
    first = url.split("::", 1)[0]
    if "://" not in first:
        return None
    parts = urlsplit(first)
    if parts.scheme.lower() not in SFTP_SCHEMES or not parts.hostname:
        return None
    return f"sftp:{parts.hostname.lower()}"


def reset_cache() -> None:
    with _lock:
        _known.clear()


def limit_exists(name: str) -> bool:
    now = time.monotonic()
    with _lock:
        hit = _known.get(name)
        if hit is not None and now - hit[0] < CACHE_SECONDS:
            return hit[1]
    exists = False
    try:
        from prefect.client.orchestration import get_client
        from prefect.exceptions import ObjectNotFound
        from prefect.settings import get_current_settings

        if not get_current_settings().api.url:
            return False  # no Prefect server configured (plain library use): never start a temporary one
        try:
            with get_client(sync_client=True) as client:
                limit = client.read_global_concurrency_limit_by_name(name)
            exists = bool(limit.active)
        except ObjectNotFound:
            exists = False
    except Exception as exc:  # politeness, not safety: an unreachable API must not stop a delivery
        logger.debug("Could not read concurrency limit %s (%s); not waiting for it", name, type(exc).__name__)
    with _lock:
        _known[name] = (now, exists)
    return exists


@contextlib.contextmanager
def host_slot(url: str) -> Iterator[None]:
    """Hold one slot of the host's global concurrency limit (if there is one) around a transfer."""
    name = limit_name(url)
    if name is None or not limit_exists(name):
        yield
        return
    from prefect.concurrency.sync import concurrency

    with concurrency(name, occupy=1, strict=False):
        yield
