"""Run one task per item with at most `limit` in flight, yielding each outcome as it finishes.

Both flows need this: a bounded window (MAX_PARALLEL_FILES) keeps memory, connections and the
Prefect API load flat however many files a run finds, while the UI still shows a task per file.
"""

from __future__ import annotations

import concurrent.futures
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

from prefect.futures import PrefectConcurrentFuture

T = TypeVar("T")
R = TypeVar("R")

# The flows' thread pools are sized to the largest allowed window; the window is what limits work.
MAX_WINDOW = 64


def fan_out(
    submit: Callable[[T], PrefectConcurrentFuture[R]], items: Iterable[T], *, limit: int
) -> Iterator[tuple[T, R | Exception]]:
    """Yield (item, result) or (item, the exception its task ended with), in completion order."""
    queue = deque(items)
    in_flight: dict[concurrent.futures.Future[R], tuple[T, PrefectConcurrentFuture[R]]] = {}
    limit = max(1, min(limit, MAX_WINDOW))
    while queue or in_flight:
        while queue and len(in_flight) < limit:
            item = queue.popleft()
            future = submit(item)
            in_flight[future.wrapped_future] = (item, future)
        done, _ = concurrent.futures.wait(in_flight, return_when=concurrent.futures.FIRST_COMPLETED)
        for raw in done:
            item, future = in_flight.pop(raw)
            try:
                yield item, future.result()
            except Exception as exc:  # the task failed: its exception is this item's outcome
                yield item, exc
