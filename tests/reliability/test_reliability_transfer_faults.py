"""Transfer faults between us and the destinations: an SFTP connection reset in the middle of a file,
permission denied on one target folder, and a destination that is down for a whole run."""

from __future__ import annotations

from pathlib import Path

import pytest

from ledger import Ledger
from tests.reliability.harness import (
    DirView,
    FinalNameWatcher,
    Rig,
    assert_invariants,
    run_cli,
    run_in_process,
    sftp_env,
)
from tests.support.fault_proxy import FaultProxy


def _roots(rig: Rig) -> list[Path]:
    return [v.root for v in rig.views if v.root is not None]


@pytest.mark.timeout(300)
@pytest.mark.parametrize("resets", [1, 3], ids=["reset-once", "reset-three-connections"])
def test_sftp_connection_reset_mid_file(rig: Rig, sftp_proxy: FaultProxy, resets: int) -> None:
    """Reset after 400 kB of a 3 x 700 kB upload. Once: the publish retries on a new connection in
    the same run. Three times: that file fails in this run and the next run delivers it."""
    for i in range(3):
        rig.add_export(("prospect", "aos")[i % 2], size=700_000)
    sftp_proxy.reset_after(400_000, connections=resets)
    with FinalNameWatcher(rig.sandbox, _roots(rig)) as watcher:
        first = run_in_process(rig.full_env())
        assert sftp_proxy.stats.resets >= 1, "the proxy never reset a connection"
        if resets == 1:
            assert first.is_completed(), first.message
        final = run_in_process(rig.full_env())
    assert final.is_completed(), final.message
    watcher.assert_clean()
    assert_invariants(rig)


@pytest.mark.timeout(300)
def test_permission_denied_on_one_folder_fails_only_those_files(rig: Rig, sftp_server) -> None:  # type: ignore[no-untyped-def]
    rig.env["DESTINATIONS__SLATE__PATH_TEMPLATE"] = "{product_key}/{filename}"
    aos = [rig.add_export("aos", size=5_000) for _ in range(2)]
    prospect = [rig.add_export("prospect", size=5_000) for _ in range(2)]
    sftp_server.deny_write.append("incoming/aos")
    with FinalNameWatcher(rig.sandbox, _roots(rig)) as watcher:
        first = run_in_process(rig.full_env())
        assert first.is_failed()
        report = first.result(raise_on_failure=False)
        rows = {r["export_uid"]: r for r in report["exports"]}
        for uid in aos:
            assert rows[uid]["status"] == "failed"
            assert "slate" in rows[uid]["error"] and "ermission" in rows[uid]["error"], rows[uid]
        for uid in prospect:
            assert rows[uid]["status"] == "delivered", rows[uid]
        ledger = Ledger(rig.ledger_url)
        try:
            for uid in aos:
                assert ledger.get_export(uid).status == "staged"  # still owed
                by_dest = {d.destination: d for d in ledger.deliveries_for(uid)}
                assert by_dest["share"].status == "delivered"  # the other destination was not held back
                assert by_dest["slate"].status == "failed" and by_dest["slate"].last_error
        finally:
            ledger.close()
        sftp_server.deny_write.clear()  # the Slate admin fixes the folder permissions
        final = run_in_process(rig.full_env())
    assert final.is_completed(), final.message
    watcher.assert_clean()
    assert_invariants(rig)


@pytest.mark.timeout(300)
def test_destination_down_for_the_whole_run(rig: Rig, sftp_server, sftp_proxy: FaultProxy) -> None:  # type: ignore[no-untyped-def]
    """Only Slate configured and unreachable: exit 1 without a traceback and without listing
    (a listing hands exports out once, and there is nowhere to put them), so every export stays
    NotDelivered at Encoura; the next run (Slate back) delivers each exactly once."""
    rig.env = sftp_env("slate", sftp_server, port=sftp_proxy.port)
    rig.views = [DirView("slate", sftp_server.root / "incoming")]
    uids = [rig.add_export(("prospect", "aos")[i % 2], size=5_000) for i in range(4)]
    sftp_proxy.refuse(True)
    down = run_cli(rig.full_env())
    assert down.returncode == 1, (down.returncode, down.stderr[-2000:])
    assert "Traceback" not in down.stderr
    assert "slate" in (down.stdout + down.stderr).lower()
    assert sftp_proxy.stats.refused >= 1
    assert "Destination slate is unreachable" in down.stdout + down.stderr
    ledger = Ledger(rig.ledger_url)
    try:
        for uid in uids:
            assert ledger.get_export(uid) is None  # never listed
            assert rig.sandbox.state.exports[uid].status == "NotDelivered"
    finally:
        ledger.close()
    sftp_proxy.refuse(False)
    with FinalNameWatcher(rig.sandbox, [sftp_server.root / "incoming"]) as watcher:
        final = run_in_process(rig.full_env())
    assert final.is_completed(), final.message
    watcher.assert_clean()
    assert_invariants(rig)
