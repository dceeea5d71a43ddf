"""URL -> destination class, entry-point plugins, and the generic fsspec path (memory://)."""

from __future__ import annotations

import hashlib
import sys
import uuid
from pathlib import Path

import pytest

from destinations import DestinationConfig, PublishError, open_destination
from destinations.fsspec_dest import FsspecDestination
from destinations.local import LocalDestination
from destinations.s3 import S3Destination
from destinations.sftp import SFTPDestination

PLUGIN_SOURCE = '''
import fsspec
from destinations.fsspec_dest import FsspecDestination

class FakeDestination(FsspecDestination):
    """Lands files in an in-memory filesystem under /fake/<host>."""

    def _connect(self):
        host = self.config.url.split("://", 1)[1].split("/", 1)[0]
        fs = fsspec.filesystem("memory", skip_instance_cache=True)
        fs.makedirs(f"/fake/{host}", exist_ok=True)  # the root folder must exist (it is never created)
        return fs, f"/fake/{host}"
'''


@pytest.fixture
def fake_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """An installed-looking distribution registering scheme `fakeproto` through the entry point."""
    module = f"fake_dest_plugin_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{module}.py").write_text(PLUGIN_SOURCE)
    dist = tmp_path / "fake_dest_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: fake-dest-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(f"[encoura_slate.destinations]\nfakeproto = {module}:FakeDestination\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield module
    sys.modules.pop(module, None)


def test_plugin_registered_through_entry_point_is_picked_up_by_url(fake_plugin: str, tmp_path: Path) -> None:
    config = DestinationConfig(url="fakeproto://box-1/incoming", path_template="{product_key}/{filename}")
    dest = open_destination("fake", config)
    assert type(dest).__name__ == "FakeDestination" and type(dest).__module__ == fake_plugin
    local = tmp_path / "a.csv"
    local.write_bytes(b"1,2\n")
    receipt = dest.publish(local, "aos/a.csv", sha256=hashlib.sha256(b"1,2\n").hexdigest(), size=4)
    assert dest.fs.cat_file("/fake/box-1/aos/a.csv") == b"1,2\n"
    assert receipt.final_path == "fakeproto://box-1/incoming/aos/a.csv"


def test_unknown_scheme_without_plugin_is_a_config_error() -> None:
    with pytest.raises(ValueError, match="unknown protocol 'fakeproto'"):
        DestinationConfig(url="fakeproto://box-1/incoming")


@pytest.mark.parametrize(
    ("url", "cls"),
    [
        ("sftp://u@h/x", SFTPDestination),
        ("file:///tmp/x", LocalDestination),
        ("/tmp/x", LocalDestination),
        ("s3://bucket/x", S3Destination),
        ("memory://x", FsspecDestination),
    ],
)
def test_builtin_classes(url: str, cls: type, tmp_path: Path) -> None:
    extra = {"host_key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"}
    config = DestinationConfig(url=url, **(extra if url.startswith("sftp") else {}))
    dest = open_destination("d", config)  # no network I/O happens here
    assert type(dest) is cls


def test_generic_fsspec_destination_publishes_atomically_and_never_overwrites(tmp_path: Path) -> None:
    root = f"memory://generic-{uuid.uuid4().hex[:8]}/in"
    dest = open_destination("mem", DestinationConfig(url=root, path_template="{product_key}/{filename}"))
    dest.fs.makedirs(dest.root, exist_ok=True)  # the root folder must exist (it is never created)
    local = tmp_path / "a.csv"
    local.write_bytes(b"abc")
    sha = hashlib.sha256(b"abc").hexdigest()
    first = dest.publish(local, "aos/a.csv", sha256=sha, size=3)
    again = dest.publish(local, "aos/a.csv", sha256=sha, size=3)
    assert not first.already_present and again.already_present and again.sha256 == sha
    assert dest.exists("aos/a.csv") == 3 and dest.exists("aos/b.csv") is None
    local.write_bytes(b"abd")
    with pytest.raises(PublishError, match="exists with different content"):
        dest.publish(local, "aos/a.csv", sha256=hashlib.sha256(b"abd").hexdigest(), size=3)
    assert dest.fs.cat_file(dest.full_path("aos/a.csv")) == b"abc"
    leftover = dest.full_path("aos/.~inflight.1000000000.1-abcdef01.part")
    dest.fs.pipe_file(leftover, b"partial")
    assert dest.sweep() == ["aos/.~inflight.1000000000.1-abcdef01.part"]
    assert dest.fs.find(dest.root) == [dest.full_path("aos/a.csv")]


@pytest.mark.parametrize("rel", ["../x.csv", "/x.csv", "a/../../x.csv", ""])
def test_publish_refuses_escaping_relative_paths(rel: str, tmp_path: Path) -> None:
    dest = open_destination("loc", DestinationConfig(url=(tmp_path / "root").as_uri()))
    local = tmp_path / "a.csv"
    local.write_bytes(b"abc")
    with pytest.raises(PublishError, match="relative path"):
        dest.publish(local, rel, sha256="0" * 64, size=3)
    assert not (tmp_path / "x.csv").exists()


def test_errors_survive_pickling_for_prefect() -> None:
    import pickle

    from destinations import HostKeyError

    error = HostKeyError("slate: host key of h:22 is not trusted", destination="slate", relative_path="a.csv")
    copy = pickle.loads(pickle.dumps(error))  # noqa: S301 - our own bytes
    assert type(copy) is HostKeyError and str(copy) == str(error)
    assert copy.destination == "slate" and copy.relative_path == "a.csv"


def test_error_messages_redact_urls() -> None:
    error = PublishError("failed at https://bucket.s3.amazonaws.com/k?X-Amz-Signature=abc")
    assert "X-Amz-Signature" not in str(error)
