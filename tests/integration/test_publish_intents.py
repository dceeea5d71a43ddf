"""Settling a recorded publish intent against real destinations (SFTP server, local folder, S3 on
moto): the three cases of issue 12 (temp still there, final there, both gone) and S3's put."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from destinations import DestinationConfig, PublishError, open_destination
from destinations.publish import TEMP_RE, temp_name
from tests.support.sftp_server import SFTPTestServer

DATA = b"id,zip\n1,\"01234\"\n"
SHA = hashlib.sha256(DATA).hexdigest()


@pytest.fixture(params=["sftp", "local"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[DestinationConfig, Path]:
    """(config, folder where the destination's root is on disk)."""
    if request.param == "sftp":
        server: SFTPTestServer = request.getfixturevalue("sftp_server")
        (server.root / "incoming").mkdir()
        config = DestinationConfig(url=server.url("/incoming"), password=server.password, host_key=server.host_key_line)
        return config, server.root / "incoming"
    folder = tmp_path / "share"
    folder.mkdir()
    return DestinationConfig(url=folder.as_uri()), folder


def _staged(tmp_path: Path) -> Path:
    path = tmp_path / "staging" / "f.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(DATA)
    return path


def test_before_rename_sees_the_verified_temp_and_the_final_name(target: Any, tmp_path: Path) -> None:
    config, root = target
    seen: list[tuple[str | None, str, bytes]] = []
    with open_destination("slate", config) as dest:
        dest.publish(
            _staged(tmp_path),
            "aos/f.csv",
            sha256=SHA,
            size=len(DATA),
            before_rename=lambda temp, final: seen.append((temp, final, (root / str(temp)).read_bytes())),
        )
    [(temp, final, content)] = seen
    assert final == "aos/f.csv" and content == DATA  # complete and verified before the rename
    assert temp is not None and TEMP_RE.match(temp.rpartition("/")[2]) and temp.startswith("aos/")
    assert (root / "aos" / "f.csv").read_bytes() == DATA and not (root / temp).exists()


def test_a_failing_hook_stops_the_publish_before_the_rename(target: Any, tmp_path: Path) -> None:
    config, root = target

    def refuse(temp: str | None, final: str) -> None:
        raise PublishError("slate: claim lost")

    with open_destination("slate", config) as dest, pytest.raises(PublishError, match="claim lost"):
        dest.publish(_staged(tmp_path), "f.csv", sha256=SHA, size=len(DATA), before_rename=refuse)
    assert [p.name for p in root.rglob("*") if p.is_file()] == []  # no final name, temp removed


def test_temp_still_there_is_verified_and_renamed(target: Any, tmp_path: Path) -> None:
    config, root = target
    temp = temp_name()
    (root / temp).write_bytes(DATA)
    with open_destination("slate", config) as dest:
        outcome, receipt = dest.settle_intent(_staged(tmp_path), temp, "f.csv", sha256=SHA, size=len(DATA))
    assert outcome == "renamed" and receipt is not None and not receipt.already_present
    assert (root / "f.csv").read_bytes() == DATA and not (root / temp).exists()


def test_final_there_and_identical_is_delivered(target: Any, tmp_path: Path) -> None:
    config, root = target
    (root / "f.csv").write_bytes(DATA)
    with open_destination("slate", config) as dest:
        outcome, receipt = dest.settle_intent(_staged(tmp_path), temp_name(), "f.csv", sha256=SHA, size=len(DATA))
    assert outcome == "present" and receipt is not None and receipt.already_present


def test_both_gone_after_a_verified_temp_is_taken_by_the_importer(target: Any, tmp_path: Path) -> None:
    config, root = target
    with open_destination("slate", config) as dest:
        outcome, receipt = dest.settle_intent(_staged(tmp_path), temp_name(), "f.csv", sha256=SHA, size=len(DATA))
    assert (outcome, receipt) == ("taken", None)
    assert list(root.iterdir()) == []  # nothing sent again


def test_a_temp_that_differs_is_removed_and_reported_absent(target: Any, tmp_path: Path) -> None:
    config, root = target
    temp = temp_name()
    (root / temp).write_bytes(DATA[:-3] + b"XX\n")
    with open_destination("slate", config) as dest:
        outcome, _ = dest.settle_intent(_staged(tmp_path), temp, "f.csv", sha256=SHA, size=len(DATA))
    assert outcome == "absent" and not (root / temp).exists() and not (root / "f.csv").exists()


def test_a_different_final_file_is_refused_not_overwritten(target: Any, tmp_path: Path) -> None:
    config, root = target
    (root / "f.csv").write_bytes(b"someone else's file\n")
    with open_destination("slate", config) as dest, pytest.raises(PublishError, match="different content"):
        dest.settle_intent(_staged(tmp_path), temp_name(), "f.csv", sha256=SHA, size=len(DATA))
    assert (root / "f.csv").read_bytes() == b"someone else's file\n"


def test_s3_create_only_put_is_the_intent(s3_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    config = DestinationConfig(url=s3_server.url("incoming"), storage_options=s3_server.storage_options)
    seen: list[tuple[str | None, str]] = []
    with open_destination("bucket", config) as dest:
        outcome, _ = dest.settle_intent(_staged(tmp_path), None, "f.csv", sha256=SHA, size=len(DATA))
        assert outcome == "absent"  # the put never landed: publish again
        dest.publish(
            _staged(tmp_path), "f.csv", sha256=SHA, size=len(DATA), before_rename=lambda t, f: seen.append((t, f))
        )
        assert seen == [(None, "f.csv")]
        outcome, receipt = dest.settle_intent(_staged(tmp_path), None, "f.csv", sha256=SHA, size=len(DATA))
    assert outcome == "present" and receipt is not None and receipt.already_present
