"""Kill-and-rerun loop shared by the crash suites.

Each kill point is either armed inside the flow process (`common.crashpoints`, for windows that
last microseconds) or triggered from outside by an observation (a sandbox counter moving, a temp
file appearing at the destination) while a fault knob slows that phase down enough to land in it.
Every kill is followed by a normal re-run in this process and the full invariant check.
"""

from __future__ import annotations

import random
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tests.reliability.harness import (
    REPO,
    FinalNameWatcher,
    Rig,
    Zygote,
    assert_invariants,
    is_temp,
    kill,
    run_in_process,
    subprocess_env,
    wait_until,
)

PHASES = ("listing", "download", "upload", "rename", "ledger")


@dataclass
class KillPoint:
    phase: str
    label: str
    crashpoint: str | None = None  # "name[@n]" armed inside the flow process
    trigger: Callable[[dict[str, int]], bool] | None = None  # observation -> kill now
    setup: Callable[[], None] | None = None
    teardown: Callable[[], None] | None = None
    sizes: tuple[int, ...] = (2_000, 2_000, 2_000)
    # True: no clean re-run after this kill; the next (armed) run must settle what it left, as a
    # real scheduler's next run would. Halves the cost of the many kills after rename and put.
    chain: bool = False


@dataclass
class KillLog:
    hits: list[tuple[str, str]] = field(default_factory=list)
    misses: list[tuple[str, str, int]] = field(default_factory=list)

    def by_phase(self) -> Counter[str]:
        return Counter(phase for phase, _ in self.hits)

    def summary(self) -> str:
        return f"{len(self.hits)} kills {dict(self.by_phase())}; not reached: {self.misses}"


def counters(rig: Rig) -> dict[str, int]:
    snap = rig.sandbox.snapshot()
    return {
        "list_exports": snap["counters"].get("list_exports", 0),
        "s3_gets": sum(snap["s3_gets"].values()),
    }


def sftp_temp_exists(root: Path) -> bool:
    if not root.exists():
        return False
    return any(is_temp(p.relative_to(root).as_posix()) for p in root.rglob("*") if p.is_file())


def run_kill_loop(rig: Rig, zygote: Zygote, points: list[KillPoint], work: Path, *, seed: int = 1) -> KillLog:
    """Kill at every point in turn, re-run normally after each, check invariants after each re-run."""
    log = KillLog()
    rng = random.Random(seed)
    products = ("prospect", "aos")
    with FinalNameWatcher(rig.sandbox, [v.root for v in rig.views if v.root is not None]) as watcher:
        for n, point in enumerate(points):
            for i, size in enumerate(point.sizes):
                rig.add_export(products[(n + i) % 2], size=size)
            if point.setup:
                point.setup()
            base = counters(rig)
            extra = {"ENCOURA_SLATE_CRASHPOINT": point.crashpoint} if point.crashpoint else {}
            out = work / f"kill-{n:03d}"
            out.mkdir(parents=True)
            pid = zygote.spawn(rig.full_env(**extra), [], out)
            try:
                if point.trigger is not None:
                    trigger = point.trigger

                    def fire(
                        trigger: Callable[[dict[str, int]], bool] = trigger, pid: int = pid, base: dict = base
                    ) -> bool:
                        return zygote.poll(pid) is not None or trigger(base)

                    wait_until(fire, timeout=60)
                    time.sleep(rng.uniform(0, 0.05))  # spread the kill inside the phase
                    kill(pid)
                code = zygote.wait(pid)
            finally:
                kill(pid)
                if point.teardown:
                    point.teardown()
            if code == -9:
                log.hits.append((point.phase, point.label))
            else:
                log.misses.append((point.phase, point.label, code))
                if code not in (0, 1):
                    tail = (out / "stderr.txt").read_text(errors="replace")[-3000:]
                    raise AssertionError(f"flow process at {point.label} exited {code}:\n{tail}")
            if point.chain and n < len(points) - 1 and points[n + 1].crashpoint:
                continue
            state = run_in_process(rig.full_env())
            assert state.is_completed(), f"re-run after kill at {point.label}: {state.message}"
            assert_invariants(rig)
        watcher.assert_clean()
        assert watcher.seen, "the watcher never saw a delivered file"
    return log


def timed_cli_kills(rig: Rig, fractions: list[float], work: Path) -> int:
    """Kill a plain `python -m flows.encoura_export` (the way a scheduler starts it) at fractions of
    the time an unkilled run of the same size takes, so the kills spread over start-up, listing
    and transfer whatever the machine's speed."""

    def add_batch() -> None:
        for i in range(3):
            rig.add_export(("prospect", "aos")[i % 2], size=400_000)

    rig.sandbox.configure(s3_chunk_delay_seconds=0.02)  # transfers long enough to be hit
    add_batch()
    started = time.monotonic()
    normal = subprocess.run(
        [sys.executable, "-m", "flows.encoura_export"],
        cwd=str(REPO),
        env=subprocess_env(rig.full_env()),
        capture_output=True,
        text=True,
        timeout=180,
    )
    full = time.monotonic() - started
    assert normal.returncode == 0, normal.stderr[-3000:]
    assert_invariants(rig)
    hits = 0
    for n, fraction in enumerate(fractions):
        add_batch()
        out = work / f"cli-kill-{n}"
        out.mkdir(parents=True)
        with (out / "stdout.txt").open("w") as so, (out / "stderr.txt").open("w") as se:
            proc = subprocess.Popen(
                [sys.executable, "-m", "flows.encoura_export"],
                cwd=str(REPO),
                env=subprocess_env(rig.full_env()),
                stdout=so,
                stderr=se,
            )
            try:
                proc.wait(timeout=fraction * full)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                hits += 1
        state = run_in_process(rig.full_env())
        assert state.is_completed(), f"re-run after a kill at {fraction:.0%} of a run: {state.message}"
        assert_invariants(rig)
    rig.sandbox.configure(s3_chunk_delay_seconds=0.0)
    return hits

