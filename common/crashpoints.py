"""Deterministic crash points for the reliability suite; a no-op unless ENCOURA_SLATE_CRASHPOINT is set.

Why this exists: the dangerous moments of the export (an API listing answered but not yet
recorded, a file renamed into place but not yet marked delivered, a ledger row just committed)
last microseconds, so a test that kills the process from outside can only hit them by luck. The
suite in tests/reliability/ sets `ENCOURA_SLATE_CRASHPOINT=<name>[@<n>]` on a flow subprocess and
the process SIGKILLs itself the n-th time (default: first) it reaches `crashpoint(<name>)`:
exactly what a power cut or OOM kill at that instant would do (no cleanup, no finally blocks).

`<name>[@<n>]:stop` SIGSTOPs instead: the process freezes there (a suspended VM, a long GC pause)
until the test sends SIGCONT; the lease-loss tests use it to freeze a run past its claim's lease.

Production never sets the variable; the cost is one environment lookup per call.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections import Counter
from collections.abc import Iterator

CRASHPOINT_ENV = "ENCOURA_SLATE_CRASHPOINT"

_lock = threading.Lock()
_hits: Counter[str] = Counter()
# Held by `quiet_section` users (the ledger's write transactions) while a ":stop" point is armed,
# and taken by the stop action before it freezes: a frozen test process never holds a database
# lock from another of its threads (the heartbeat), which would block the run meant to take over.
_quiet = threading.RLock()


@contextlib.contextmanager
def quiet_section() -> Iterator[None]:
    """Mark a section the process must not freeze inside (no-op unless a ':stop' point is armed)."""
    if not os.environ.get(CRASHPOINT_ENV, "").endswith(":stop"):
        yield
        return
    with _quiet:
        yield


def crashpoint(name: str) -> None:
    """SIGKILL this process here when the environment asks for it (see module docstring)."""
    wanted = os.environ.get(CRASHPOINT_ENV)
    if not wanted:
        return
    wanted, _, action = wanted.partition(":")
    point, _, nth = wanted.partition("@")
    if point != name:
        return
    with _lock:
        _hits[name] += 1
        reached = _hits[name] == int(nth or 1)
    if not reached:
        return
    if action == "stop":
        with _quiet:  # wait until no other thread is inside a quiet section, then freeze
            # Sent to this thread, not the process: a process-directed SIGSTOP is taken by the main
            # thread, and on a loaded machine this thread ran on (out of the quiet section, into the
            # next ledger write) before the main thread was scheduled to stop the group, so the
            # frozen run held SQLite's write lock. A thread-directed stop lands as kill returns.
            signal.pthread_kill(threading.get_ident(), signal.SIGSTOP)
        return
    os.kill(os.getpid(), signal.SIGKILL)
