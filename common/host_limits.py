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
_reading: dict[str, threading.Lock] = {}


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


def _cached(name: str, now: float) -> bool | None:
    with _lock:
        hit = _known.get(name)
    return hit[1] if hit is not None and now - hit[0] < CACHE_SECONDS else None


def limit_exists(name: str) -> bool:
    """Whether the operator created the limit; read once per name at a time.

    The files a run starts together all ask at once: without the per-name lock each asked the
    server, and at a run's start, when the server is busy creating their task runs, each answer
    took about 0.6 s, held before that file's upload (measured in the bandwidth benchmark).
    """
    hit = _cached(name, time.monotonic())
    if hit is not None:
        return hit
    with _lock:
        reading = _reading.setdefault(name, threading.Lock())
    with reading:
        now = time.monotonic()
        hit = _cached(name, now)  # another thread's answer, read while this one waited
        if hit is not None:
            return hit
        exists = _read_limit(name)
        with _lock:
            _known[name] = (now, exists)
        return exists


def _read_limit(name: str) -> bool:
    try:
        from prefect.exceptions import ObjectNotFound
        from prefect.settings import get_current_settings

        from common.run_context import prefect_api

        if not get_current_settings().api.url:
            return False  # no Prefect server configured (plain library use): never start a temporary one
        try:
            with prefect_api() as client:
                limit = client.read_global_concurrency_limit_by_name(name)
            return bool(limit.active)
        except ObjectNotFound:
            return False
    except Exception as exc:  # politeness, not safety: an unreachable API must not stop a delivery
        logger.debug("Could not read concurrency limit %s (%s); not waiting for it", name, type(exc).__name__)
        return False


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
