"""One builder for Prefect task retry conditions: retry what a fresh attempt can fix, never a settings problem.

Each job lists its own error classes (common may not import the jobs), but the rule is written once: an
exception that is a settings or credentials problem stops at once, a transient one is retried, and
anything unforeseen is not retried (a crash repeated three times helps nobody).
"""

from __future__ import annotations

from collections.abc import Callable

from prefect import Task
from prefect.client.schemas.objects import State, TaskRun

RetryCondition = Callable[[Task, TaskRun, State], bool]


def retry_only(
    *, transient: tuple[type[BaseException], ...], permanent: tuple[type[BaseException], ...] = ()
) -> RetryCondition:
    """A `retry_condition_fn`: `permanent` wins over `transient` (a subclass may be both)."""

    def condition(task: Task, task_run: TaskRun, state: State) -> bool:
        try:
            state.result()
        except permanent:
            return False
        except transient:
            return True
        except Exception:
            return False
        return False

    return condition
