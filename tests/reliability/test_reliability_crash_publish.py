"""SIGKILL during upload, rename and the delivery bookkeeping; each kill followed by a normal re-run.

The danger here is a file visible under its final name while incomplete (Slate would import half a
file), or renamed into place and then sent again (the ledger did not know): the watcher checks the
first while the kills happen, assert_invariants the second after every re-run.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.reliability.crashkit import KillPoint, run_kill_loop, sftp_temp_exists
from tests.reliability.harness import Rig, Zygote
from tests.support.fault_proxy import FaultProxy

PUBLISH_PHASES = ("upload", "rename", "ledger")


def _points(rig: Rig, proxy: FaultProxy) -> list[KillPoint]:
    slate_root = next(v.root for v in rig.views if v.name == "slate")
    assert slate_root is not None
    mid_upload = KillPoint(
        "upload",
        "mid-upload (SFTP temp file growing)",
        trigger=lambda base: sftp_temp_exists(slate_root),
        setup=lambda: proxy.throttle(0.01),
        teardown=proxy.clear,
        sizes=(640_000, 640_000, 2_000),
    )
    points: list[KillPoint] = [mid_upload] * 6
    for n in (1, 2, 3, 4, 6, 5):
        points.append(KillPoint("rename", f"publish.before_rename@{n}", crashpoint=f"publish.before_rename@{n}"))
    for n in (1, 2, 3, 5, 6):
        points.append(KillPoint("rename", f"publish.after_rename@{n}", crashpoint=f"publish.after_rename@{n}"))
    for n in (1, 2, 4, 5, 6, 3):
        points.append(KillPoint("ledger", f"ledger.mark_delivered@{n}", crashpoint=f"ledger.mark_delivered@{n}"))
    for n in (1, 2, 3, 2):
        points.append(
            KillPoint("ledger", f"ledger.mark_export_delivered@{n}", crashpoint=f"ledger.mark_export_delivered@{n}")
        )
    return points[::2] + points[1::2]


@pytest.mark.timeout(600)
def test_kills_while_publishing_never_show_half_files_nor_deliver_twice(
    rig: Rig, zygote: Zygote, sftp_proxy: FaultProxy, tmp_path: Path
) -> None:
    log = run_kill_loop(rig, zygote, _points(rig, sftp_proxy), tmp_path / "runs", seed=2)
    print(log.summary())
    assert set(PUBLISH_PHASES) <= set(log.by_phase()), log.summary()
    assert len(log.hits) >= 25, log.summary()  # 27 points (see the fetch suite for why not all)
    assert not [m for m in log.misses if "@" in m[1]], log.summary()
