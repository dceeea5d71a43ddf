"""Watching and outcomes as plain logic: a fake clock, no sleeping, every terminal state mapped."""

from __future__ import annotations

import pytest

from canvas_tasks.api.models import SisImport
from canvas_tasks.sis_import.watch import describe_progress, outcome_for, watch_until_done


def imp(state: str, progress: float = 0, **extra: object) -> SisImport:
    return SisImport.model_validate({"id": 7, "workflow_state": state, "progress": progress, **extra})


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_watch_follows_queue_and_backwards_progress_to_the_end() -> None:
    steps = [
        imp("created"),
        imp("created"),
        imp("importing", 60),
        imp("cleanup_batch", 90),
        imp("cleanup_batch", 10),
        imp("imported", 100),
    ]
    seen: list[float] = []
    clock = FakeClock()
    final, timed_out = watch_until_done(
        lambda: steps.pop(0),
        poll_interval=5,
        timeout=100,
        on_update=lambda i: seen.append(i.progress or 0),
        clock=clock,
        sleep=clock.sleep,
    )
    assert (final.workflow_state, timed_out) == ("imported", False)
    assert seen == [0, 0, 60, 90, 10, 100]
    assert clock.now == 25


def test_watch_times_out_without_oversleeping() -> None:
    clock = FakeClock()
    final, timed_out = watch_until_done(
        lambda: imp("importing", 50), poll_interval=4, timeout=10, clock=clock, sleep=clock.sleep
    )
    assert timed_out and final.workflow_state == "importing"
    assert clock.now == 10


@pytest.mark.parametrize(
    ("state", "fail_on_warnings", "status", "code"),
    [
        ("imported", False, "imported", 0),
        ("imported_with_messages", False, "imported_with_warnings", 0),
        ("imported_with_messages", True, "failed_on_warnings", 1),
        ("failed", False, "failed", 1),
        ("failed_with_messages", False, "failed", 1),
        ("aborted", False, "failed", 1),
        ("restored", False, "failed", 1),
    ],
)
def test_terminal_states_map_to_exit_codes(state: str, fail_on_warnings: bool, status: str, code: int) -> None:
    outcome = outcome_for(
        imp(state, 100, processing_warnings=[["users.csv", "w"]]), timed_out=False, fail_on_warnings=fail_on_warnings
    )
    assert (outcome.status, outcome.exit_code) == (status, code)


def test_timeout_says_still_running_with_the_id() -> None:
    outcome = outcome_for(imp("importing", 40), timed_out=True, fail_on_warnings=False)
    assert outcome.exit_code == 1 and outcome.status == "still_running"
    assert "still running" in outcome.message and "import id 7" in outcome.message
    aborted = outcome_for(imp("aborted"), timed_out=True, fail_on_warnings=False, aborted_after_timeout=True)
    assert aborted.status == "aborted_after_timeout" and aborted.exit_code == 1


def test_progress_descriptions() -> None:
    assert "waiting" in describe_progress(imp("created"))
    assert "restarts" in describe_progress(imp("cleanup_batch", 20))


def test_abort_that_lost_the_race_reports_how_the_import_ended() -> None:
    finished = imp("imported", 100, finished_before_abort=True)
    outcome = outcome_for(finished, timed_out=True, fail_on_warnings=False, aborted_after_timeout=False)
    assert (outcome.status, outcome.exit_code) == ("imported", 0)
    assert "finished before the abort" in outcome.message


def test_message_totals_come_from_data_counts_not_the_capped_lists() -> None:
    rows = [["users.csv", f"warning {i}"] for i in range(24)] + [["", "There were 4976 more warnings"]]
    capped = imp(
        "imported_with_messages",
        100,
        processing_warnings=rows,
        data={"counts": {"users": 9000, "warning_count": 5000, "error_count": 0}},
    )
    assert (capped.warning_count, capped.error_count) == (5000, 0)
    assert capped.counts == {"users": 9000}
    outcome = outcome_for(capped, timed_out=False, fail_on_warnings=False)
    assert outcome.warnings == 5000 and "5000 warning(s)" in outcome.message
