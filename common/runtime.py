"""The run's live objects (HTTP client, ledger, open destinations), found by type, never passed to tasks.

Prefect records every task parameter (the UI shows them, result persistence and cache keys hash
them), so a task that takes a runtime object carries a live client, a ledger and credentials into
places built for plain values. Instead the flow enters `provide(rt)` once and its tasks take ids
and names; a task (or anything it calls) asks `current(ExportRuntime)` for the object.

Why a ContextVar works everywhere we run: a sync task called from the flow runs in the flow's own
thread, and Prefect's `ThreadPoolTaskRunner.submit` runs each submitted task in
`contextvars.copy_context()` of the submitting thread (prefect/task_runners.py), so a value set
before submitting is seen by every task thread. A flow retried from the UI runs the flow function
again, which enters `provide` again: nothing survives from the earlier attempt, nothing is needed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from types import MappingProxyType
from typing import TypeVar

T = TypeVar("T")

_RUNTIMES: ContextVar[Mapping[type, object]] = ContextVar("run_runtimes", default=MappingProxyType({}))


class NoRuntimeError(RuntimeError):
    """A task ran outside the flow that provides its runtime: a programming error, not a user's."""


@contextlib.contextmanager
def provide(runtime: T) -> Iterator[T]:
    """Make `runtime` what `current(type(runtime))` returns until the block ends (nested blocks stack)."""
    runtimes = dict(_RUNTIMES.get())
    runtimes[type(runtime)] = runtime
    token = _RUNTIMES.set(MappingProxyType(runtimes))
    try:
        yield runtime
    finally:
        _RUNTIMES.reset(token)


def current(kind: type[T]) -> T:
    """The runtime of type `kind` the enclosing flow provided; a clear error if there is none."""
    runtime = _RUNTIMES.get().get(kind)
    if not isinstance(runtime, kind):
        raise NoRuntimeError(
            f"no {kind.__name__} in this context: run this task from its flow, which provides one "
            "(common.runtime.provide)"
        )
    return runtime
