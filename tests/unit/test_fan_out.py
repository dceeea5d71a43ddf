import threading
import time

from prefect import flow, task
from prefect.task_runners import ThreadPoolTaskRunner

from common.fan_out import fan_out

lock = threading.Lock()
state = {"now": 0, "peak": 0}


@task
def work(i: int) -> int:
    with lock:
        state["now"] += 1
        state["peak"] = max(state["peak"], state["now"])
    time.sleep(0.05)
    with lock:
        state["now"] -= 1
    if i == 3:
        raise ValueError("item 3 is bad")
    return i * 10


@flow(task_runner=ThreadPoolTaskRunner(max_workers=16))
def windowed(limit: int) -> dict:
    return {item: result for item, result in fan_out(work.submit, range(10), limit=limit)}


def test_window_bounds_concurrency_and_reports_failures_per_item() -> None:
    results = windowed(3)
    assert state["peak"] <= 3
    assert {k: v for k, v in results.items() if k != 3} == {i: i * 10 for i in range(10) if i != 3}
    assert isinstance(results[3], ValueError)
