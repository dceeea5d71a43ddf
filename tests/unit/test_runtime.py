"""`common.runtime`: the run's live objects are found by type, in the flow and in its task threads."""

from __future__ import annotations

import concurrent.futures
import contextvars

import pytest

from common.runtime import NoRuntimeError, current, provide


class Thing:
    def __init__(self, name: str) -> None:
        self.name = name


class Other:
    pass


def test_current_without_provide_is_a_clear_error() -> None:
    with pytest.raises(NoRuntimeError, match="no Thing in this context"):
        current(Thing)


def test_provide_is_scoped_and_nests() -> None:
    outer, inner = Thing("outer"), Thing("inner")
    with provide(outer):
        assert current(Thing) is outer
        with provide(inner), provide(Other()):
            assert current(Thing) is inner
            assert isinstance(current(Other), Other)
        assert current(Thing) is outer
        with pytest.raises(NoRuntimeError):
            current(Other)
    with pytest.raises(NoRuntimeError):
        current(Thing)


def test_seen_from_a_thread_that_runs_in_a_copied_context() -> None:
    """What ThreadPoolTaskRunner.submit does: run the task in copy_context() of the submitting thread."""
    thing = Thing("run")
    with provide(thing), concurrent.futures.ThreadPoolExecutor(1) as pool:
        seen = pool.submit(contextvars.copy_context().run, current, Thing).result()
    assert seen is thing


def test_concurrent_runs_in_one_process_do_not_see_each_other() -> None:
    """Two flows in two threads of one process (tests do this) each find their own runtime."""

    def run(name: str) -> str:
        with provide(Thing(name)):
            return current(Thing).name

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        assert sorted(pool.map(run, ["a", "b"])) == ["a", "b"]
