"""No listing without a receiver: listing hands each export out once, so when no destination can
receive at the start, the run must not list. It exits 1 with one line per destination."""

from __future__ import annotations

from pathlib import Path

from tests.reliability.crashkit import counters
from tests.reliability.harness import Rig, assert_invariants, local_env, run_cli, sftp_env
from tests.support.prefect_server import free_port


def test_no_destination_reachable_means_nothing_is_listed(rig: Rig, sftp_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    uid = rig.add_export("prospect", size=2_000)
    rig.env = {  # nothing listens on either port
        **sftp_env("slate", sftp_server, port=free_port()),
        **sftp_env("backup", sftp_server, port=free_port()),
    }
    before = counters(rig)["list_exports"]
    result = run_cli(rig.full_env())
    output = result.stdout + result.stderr
    assert result.returncode == 1, output[-3000:]
    assert counters(rig)["list_exports"] == before, "the run listed although nothing could receive"
    assert rig.sandbox.state.exports[uid].status == "NotDelivered"
    assert "Destination backup is unreachable" in output, output[-3000:]
    assert "Destination slate is unreachable" in output, output[-3000:]
    assert "nothing was listed" in output

    # One receiver is enough: the run lists and delivers there; the staged copy waits for slate,
    # private to the worker's user (student records at rest).
    share = tmp_path / "share"
    share.mkdir(exist_ok=True)
    rig.env = {**sftp_env("slate", sftp_server, port=free_port()), **local_env("share", share)}
    result = run_cli(rig.full_env())
    assert result.returncode == 1, (result.stdout + result.stderr)[-3000:]
    assert rig.sandbox.state.exports[uid].status == "Delivered"
    assert len([p for p in share.rglob("*") if p.is_file()]) == 1
    staged = [p for p in (rig.state_dir / "staging").rglob("*") if p.is_file()]
    assert len(staged) == 1 and staged[0].stat().st_mode & 0o777 == 0o600
    assert staged[0].parent.stat().st_mode & 0o777 == 0o700
    assert rig.state_dir.stat().st_mode & 0o777 == 0o700
    assert (rig.state_dir / "ledger.sqlite3").stat().st_mode & 0o777 == 0o600

    # And with every receiver back, the rest is delivered, exactly once.
    rig.env = {**sftp_env("slate", sftp_server), **local_env("share", share)}
    assert run_cli(rig.full_env()).returncode == 0
    assert_invariants(rig)
