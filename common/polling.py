"""One poll-until-terminal loop for every job that waits on a remote state (Encoura uploads, Canvas imports).

The rules are the same everywhere: look once, hand each answer to the caller, stop at a terminal
answer or when the next wait would pass the deadline, and back off (optionally growing, capped)
between looks. The callers keep only what differs: how to fetch and what counts as done.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def poll_until(
    fetch: Callable[[], T],
    *,
    done: Callable[[T], bool],
    interval: float,
    timeout: float,
    max_interval: float | None = None,
    on_value: Callable[[T], None] = lambda _value: None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[T, bool]:
    """Fetch until `done(value)`; returns (last value, timed_out). The wait doubles up to `max_interval`
    when one is given, and the last wait is shortened so the deadline is kept."""
    deadline = clock() + timeout
    wait = interval
    while True:
        value = fetch()
        on_value(value)
        if done(value):
            return value, False
        remaining = deadline - clock()
        if remaining <= 0:
            return value, True
        sleep(min(wait, remaining))
        if max_interval is not None:
            wait = min(wait * 2, max_interval)
