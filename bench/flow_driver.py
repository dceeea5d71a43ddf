"""Run a batch of flow runs in one process and time each (one Python start-up, like a worker).

    python -m bench.flow_driver canvas --count 10 --poll-interval 0.1
    python -m bench.flow_driver upload --count 10

Needs PREFECT_API_URL (the benchmark's running server). Starts the flow's own sandbox in-process
and prints one JSON line: per-run seconds and the states.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path


def _summary(kind: str, seconds: list[float], states: list[str], **extra: object) -> dict[str, object]:
    return {
        "kind": kind,
        "runs": len(seconds),
        "seconds": [round(s, 3) for s in seconds],
        "mean_seconds": round(statistics.fmean(seconds), 3) if seconds else None,
        "median_seconds": round(statistics.median(seconds), 3) if seconds else None,
        "states": states,
        **extra,
    }


def canvas(count: int, poll_interval: float) -> dict[str, object]:
    from flows.canvas_sis_import import canvas_sis_import
    from sandbox.canvas.server import CanvasSandbox

    sample = Path(importlib.util.find_spec("sandbox.canvas.samples").origin).parent / "demo" / "users.csv"  # type: ignore[union-attr, arg-type]
    seconds: list[float] = []
    states: list[str] = []
    with CanvasSandbox() as sb, tempfile.TemporaryDirectory(prefix="bench-canvas-") as tmp:
        os.environ.update(
            {
                "CANVAS_BASE_URL": sb.base_url,
                "CANVAS_ACCOUNT_ID": sb.account_id,
                "CANVAS_ACCESS_TOKEN": sb.token,
                "STATE_DIR": str(Path(tmp) / "state"),
            }
        )
        for n in range(count):
            source = Path(tmp) / f"users-{n:03d}.csv"
            shutil.copyfile(sample, source)
            started = time.monotonic()
            state = canvas_sis_import(source=str(source), poll_interval=poll_interval, return_state=True)
            seconds.append(time.monotonic() - started)
            states.append(state.type.value)
    return _summary("canvas", seconds, states, poll_interval=poll_interval, file=sample.name)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.flow_driver")
    parser.add_argument("kind", choices=["canvas"])
    parser.add_argument("--count", type=int, default=10)
    parser.add_argument("--poll-interval", type=float, default=0.1)
    args = parser.parse_args()
    print(json.dumps(canvas(args.count, args.poll_interval)))


if __name__ == "__main__":
    main()
