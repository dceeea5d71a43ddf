"""Local folder / mounted share specifics."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from destinations import DestinationConfig, DestinationUnavailable, PublishError, open_destination


def test_unwritable_folder_fails_only_that_delivery(tmp_path: Path) -> None:
    """Tests run as root, so chmod cannot deny writes: a file squatting on the folder name does."""
    root = tmp_path / "share"
    root.mkdir()
    (root / "locked").write_text("not a folder")
    local = tmp_path / "a.csv"
    local.write_bytes(b"abc")
    sha = hashlib.sha256(b"abc").hexdigest()
    with open_destination("share", DestinationConfig(url=root.as_uri())) as dest:
        with pytest.raises(PublishError, match=r"share: locked/a\.csv") as info:
            dest.publish(local, "locked/a.csv", sha256=sha, size=3)
        assert not isinstance(info.value, DestinationUnavailable)
        assert dest.publish(local, "open/a.csv", sha256=sha, size=3).sha256 == sha
    assert (root / "open" / "a.csv").read_bytes() == b"abc"


def test_sweep_walk_is_bounded_by_template_depth_and_skips_fresh_temps(tmp_path: Path) -> None:
    root = tmp_path / "share"
    (root / "aos" / "deeper").mkdir(parents=True)
    old = ".~inflight.1000000000.1-abcdef01.part"
    (root / "aos" / old).write_bytes(b"partial")
    (root / "aos" / "deeper" / old).write_bytes(b"not ours to reach")
    (root / "aos" / ".~inflight-lookalike.part").write_bytes(b"not our pattern")
    config = DestinationConfig(url=root.as_uri(), path_template="{product_key}/{filename}")
    with open_destination("share", config) as dest:
        assert dest.sweep() == [f"aos/{old}"]
    assert sorted(p.name for p in (root / "aos").iterdir()) == [".~inflight-lookalike.part", "deeper"]
