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


def _lines_naming(output: str, *words: str) -> list[str]:
    return [line for line in output.splitlines() if all(w in line for w in words)]


def test_missing_root_folder_exits_2_before_listing(rig: Rig, sftp_server) -> None:  # type: ignore[no-untyped-def]
    """A typo in the destination's folder (`/incoming/Encora`) is a settings error: the run stops
    before listing (exit 2), in one line naming the folder and the host, and creates nothing, even
    though the other destination (the share) is fine. Folders from PATH_TEMPLATE are still made."""
    uid = rig.add_export("prospect", size=2_000)
    share = next(v.root for v in rig.views if v.name == "share")
    typo = sftp_env("slate", sftp_server, path="incoming/Encora")
    rig.env = {**rig.env, **typo, "DESTINATIONS__SLATE__PATH_TEMPLATE": "{product_key}/{filename}"}
    before = counters(rig)["list_exports"]
    result = run_cli(rig.full_env())
    output = result.stdout + result.stderr
    assert result.returncode == 2, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    assert _lines_naming(result.stderr, "'/incoming/Encora'", "127.0.0.1", "DESTINATIONS__SLATE__URL"), output[-3000:]
    assert counters(rig)["list_exports"] == before, "the run listed although a destination is misconfigured"
    assert rig.sandbox.state.exports[uid].status == "NotDelivered"
    assert not (sftp_server.root / "incoming" / "Encora").exists(), "the mistyped folder was created"
    assert not [p for p in share.rglob("*") if p.is_file()]

    # Folder fixed: the run lists and delivers, making the PATH_TEMPLATE subfolder below the root.
    (sftp_server.root / "incoming" / "Encora").mkdir()
    result = run_cli(rig.full_env())
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    delivered = [p for p in (sftp_server.root / "incoming" / "Encora").rglob("*") if p.is_file()]
    assert [p.parent.name for p in delivered] == ["prospect"]


def test_changed_host_key_at_a_destination_exits_2_before_listing(rig: Rig, sftp_server) -> None:  # type: ignore[no-untyped-def]
    """A host key that differs from the pinned one is the settings' problem (HOST_KEY / KNOWN_HOSTS),
    not an outage: exit 2 before listing, one line naming the host and the setting."""
    import asyncssh

    uid = rig.add_export("prospect", size=2_000)
    other = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode().split()
    rig.env = {**rig.env, "DESTINATIONS__SLATE__HOST_KEY": f"{other[0]} {other[1]}"}
    before = counters(rig)["list_exports"]
    result = run_cli(rig.full_env())
    output = result.stdout + result.stderr
    assert result.returncode == 2, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    assert _lines_naming(result.stderr, "127.0.0.1", "DESTINATIONS__SLATE__HOST_KEY"), output[-3000:]
    assert counters(rig)["list_exports"] == before, "the run listed although a host key is wrong"
    assert rig.sandbox.state.exports[uid].status == "NotDelivered"
