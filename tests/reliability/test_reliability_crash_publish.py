"""SIGKILL during upload, rename, create-only put and the delivery bookkeeping, with Slate's importer
taking delivered files away at random moments; each kill followed by a normal re-run.

The danger here is a file visible under its final name while incomplete (Slate would import half a
file), or renamed into place and then sent again because the ledger did not know and the importer
had already taken it away (so "already there, identical" cannot see it): the watcher checks the
first while the kills happen; assert_invariants checks the second after every re-run, counting
every arrival at the importer (processed/ overwrites same names, the count does not).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.reliability.crashkit import KillPoint, run_kill_loop, sftp_temp_exists
from tests.reliability.harness import Rig, S3View, Zygote, s3_env
from tests.support.fault_proxy import FaultProxy

PUBLISH_PHASES = ("upload", "rename", "ledger")
# Both windows in which the file is visible and the ledger does not know yet (issue 12): at least
# 25 kills each per CI run.
AFTER_RENAME = 25
AFTER_PUT = 25
SMALL = (2_000, 2_000)  # two exports: four renames (SFTP, share) and two puts (S3) per run


def _points(rig: Rig, proxy: FaultProxy) -> list[KillPoint]:
    slate_root = next(v.root for v in rig.views if v.name == "slate")
    assert slate_root is not None
    mid_upload = KillPoint(
        "upload",
        "mid-upload (SFTP temp file growing)",
        trigger=lambda base: sftp_temp_exists(slate_root),
        setup=lambda: proxy.throttle(0.01),
        teardown=proxy.clear,
        sizes=(640_000, 2_000),
    )
    points: list[KillPoint] = [mid_upload] * 2
    for n in (1, 4):
        points.append(KillPoint("rename", f"publish.before_rename@{n}", crashpoint=f"publish.before_rename@{n}"))
    for n in (1, 3):
        points.append(KillPoint("ledger", f"ledger.record_intent@{n}", crashpoint=f"ledger.record_intent@{n}"))
    for i in range(AFTER_RENAME):
        n = 1 + i % 4
        points.append(
            KillPoint(
                "rename", f"publish.after_rename@{n}", crashpoint=f"publish.after_rename@{n}", sizes=SMALL, chain=True
            )
        )
    for i in range(AFTER_PUT):
        n = 1 + i % 2
        points.append(
            KillPoint("put", f"publish.after_put@{n}", crashpoint=f"publish.after_put@{n}", sizes=SMALL, chain=True)
        )
    for n in (1, 4):
        points.append(KillPoint("ledger", f"ledger.mark_delivered@{n}", crashpoint=f"ledger.mark_delivered@{n}"))
    for n in (2,):
        points.append(
            KillPoint("ledger", f"ledger.mark_export_delivered@{n}", crashpoint=f"ledger.mark_export_delivered@{n}")
        )
    return points[::2] + points[1::2]


@pytest.mark.timeout(900)
def test_kills_while_publishing_with_the_importer_on_never_deliver_twice_nor_lose(
    rig: Rig, zygote: Zygote, sftp_proxy: FaultProxy, slate_importer, s3_server, tmp_path: Path  # type: ignore[no-untyped-def]
) -> None:
    rig.env.update(s3_env("bucket", s3_server, "incoming"))
    rig.views.append(S3View("bucket", s3_server, "incoming"))
    log = run_kill_loop(rig, zygote, _points(rig, sftp_proxy), tmp_path / "runs", seed=2)
    print(log.summary(), f"importer took {sum(slate_importer.arrivals.values())} file(s)")
    assert set(PUBLISH_PHASES) <= set(log.by_phase()), log.summary()
    hits = [label.split("@")[0] for _, label in log.hits]
    assert hits.count("publish.after_rename") >= AFTER_RENAME, log.summary()
    assert hits.count("publish.after_put") >= AFTER_PUT, log.summary()
    assert not [m for m in log.misses if "@" in m[1]], log.summary()
    assert slate_importer.arrivals, "the importer never took a file"
    assert max(slate_importer.arrivals.values()) == 1, "a file reached Slate's importer twice"
