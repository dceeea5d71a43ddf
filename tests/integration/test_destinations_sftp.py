"""SFTP specifics against a real asyncssh server: host keys, auth kinds, rename fallback,
permission errors, connection reuse and reconnect."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncssh
import pytest
from fsspec.asyn import sync
from fsspec.callbacks import Callback

from destinations import (
    DestinationConfig,
    DestinationUnavailable,
    HostKeyError,
    PublishError,
    close_filesystem,
    filesystem_for,
    open_destination,
)
from destinations.publish import TEMP_RE
from tests.support.sftp_server import SFTPTestServer


def _staged(tmp_path: Path, name: str, data: bytes) -> tuple[Path, str, int]:
    path = tmp_path / "staging" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path, hashlib.sha256(data).hexdigest(), len(data)


def _fingerprint(key_line: str) -> str:
    return asyncssh.import_public_key(key_line).get_fingerprint("sha256")


def _config(server: SFTPTestServer, **overrides: Any) -> DestinationConfig:
    values: dict[str, Any] = {"url": server.url("/"), "password": server.password, "host_key": server.host_key_line}
    values.update(overrides)
    return DestinationConfig(**values)


def _publish_one(server: SFTPTestServer, tmp_path: Path, config: DestinationConfig, rel: str = "a.csv") -> None:
    local, sha, size = _staged(tmp_path, "a.csv", b"a,b\n0012,3\n")
    with open_destination("slate", config) as dest:
        dest.publish(local, rel, sha256=sha, size=size)
    assert (server.root / rel).read_bytes() == b"a,b\n0012,3\n"


# ---- host keys --------------------------------------------------------------------------------
def test_known_hosts_file_is_accepted(sftp_server: SFTPTestServer, tmp_path: Path) -> None:
    known = sftp_server.write_known_hosts(tmp_path / "known_hosts")
    _publish_one(sftp_server, tmp_path, _config(sftp_server, host_key=None, known_hosts=known))


def test_pinned_key_with_host_prefix_as_ssh_keyscan_prints_it(sftp_server: SFTPTestServer, tmp_path: Path) -> None:
    _publish_one(sftp_server, tmp_path, _config(sftp_server, host_key=sftp_server.known_hosts_line))


def test_unknown_host_key_is_refused_with_fingerprint(sftp_server: SFTPTestServer, tmp_path: Path) -> None:
    other = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode().strip()
    known = sftp_server.write_known_hosts(tmp_path / "known_hosts", f"some.other.host {other}")
    local, sha, size = _staged(tmp_path, "a.csv", b"x")
    dest = open_destination("slate", _config(sftp_server, host_key=None, known_hosts=known))
    with dest, pytest.raises(HostKeyError) as info:
        dest.publish(local, "a.csv", sha256=sha, size=size)
    message = str(info.value)
    assert f"127.0.0.1:{sftp_server.port}" in message
    assert _fingerprint(sftp_server.host_key_line) in message
    assert list(sftp_server.root.iterdir()) == []


def test_changed_pinned_key_is_refused_with_fingerprint(sftp_server: SFTPTestServer, tmp_path: Path) -> None:
    pinned = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode().strip()
    dest = open_destination("slate", _config(sftp_server, host_key=pinned))
    with dest, pytest.raises(HostKeyError, match="not trusted") as info:
        dest.probe()
    assert _fingerprint(sftp_server.host_key_line) in str(info.value)
    assert isinstance(info.value, DestinationUnavailable)


def test_host_key_error_from_filesystem_for(sftp_server: SFTPTestServer) -> None:
    pinned = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode().strip()
    with pytest.raises(HostKeyError, match="UPLOAD_SOURCE_HOST_KEY"):
        filesystem_for(_config(sftp_server, host_key=pinned), name="upload source", setting_prefix="UPLOAD_SOURCE_")


# ---- authentication ---------------------------------------------------------------------------
def test_key_auth(sftp_server: SFTPTestServer, tmp_path: Path) -> None:
    _publish_one(sftp_server, tmp_path, _config(sftp_server, password=None, client_key=sftp_server.client_key_path))


def test_encrypted_key_auth(sftp_server: SFTPTestServer, tmp_path: Path) -> None:
    config = _config(
        sftp_server,
        password=None,
        client_key=sftp_server.encrypted_client_key_path,
        passphrase=sftp_server.key_passphrase,
    )
    _publish_one(sftp_server, tmp_path, config)


def test_wrong_passphrase_is_a_clear_error(sftp_server: SFTPTestServer) -> None:
    config = _config(sftp_server, password=None, client_key=sftp_server.encrypted_client_key_path, passphrase="nope")
    with open_destination("slate", config) as dest, pytest.raises(DestinationUnavailable) as info:
        dest.probe()
    assert "DESTINATIONS__SLATE__PASSPHRASE" in str(info.value)
    assert "nope" not in str(info.value)


def test_wrong_password_is_unavailable_without_echoing_it(sftp_server: SFTPTestServer) -> None:
    dest = open_destination("slate", _config(sftp_server, password="hunter2-wrong"))
    with dest, pytest.raises(DestinationUnavailable, match="authentication failed") as info:
        dest.probe()
    assert "hunter2" not in str(info.value)
    assert "DESTINATIONS__SLATE__PASSWORD" in str(info.value)


def test_server_down_is_unavailable(sftp_server: SFTPTestServer) -> None:
    config = _config(sftp_server, connect_timeout=5)
    sftp_server.stop()
    with open_destination("slate", config) as dest, pytest.raises(DestinationUnavailable, match="cannot connect"):
        dest.probe()


# ---- rename, permissions ----------------------------------------------------------------------
def test_without_posix_rename_publishes_are_still_atomic_and_never_overwrite(
    make_sftp_server: Callable[..., SFTPTestServer], tmp_path: Path
) -> None:
    sftp_server = make_sftp_server(posix_rename=False)
    local, sha, size = _staged(tmp_path, "a.csv", b"one\n")
    other, sha2, size2 = _staged(tmp_path, "b.csv", b"two!\n")
    with open_destination("slate", _config(sftp_server)) as dest:
        dest.publish(local, "in/a.csv", sha256=sha, size=size)
        # The server's plain rename refuses to replace; we never fall back to overwrite.
        with pytest.raises(PublishError, match="exists with different content"):
            dest.publish(other, "in/a.csv", sha256=sha2, size=size2)
        fs = dest.sftp_fs()

        async def try_posix_rename() -> None:
            async with fs.client.start_sftp_client() as sftp:
                await sftp.posix_rename(dest.full_path("in/a.csv"), dest.full_path("in/c.csv"))

        with pytest.raises(asyncssh.SFTPOpUnsupported):
            sync(fs.loop, try_posix_rename)
    assert sorted(p.name for p in (sftp_server.root / "in").iterdir()) == ["a.csv"]
    assert (sftp_server.root / "in" / "a.csv").read_bytes() == b"one\n"


def test_permission_denied_fails_only_that_delivery(
    make_sftp_server: Callable[..., SFTPTestServer], tmp_path: Path
) -> None:
    sftp_server = make_sftp_server(deny_write=["locked"])
    (sftp_server.root / "locked").mkdir()
    local, sha, size = _staged(tmp_path, "a.csv", b"data\n")
    with open_destination("slate", _config(sftp_server)) as dest:
        with pytest.raises(PublishError, match=r"slate: locked/a\.csv: .*[Pp]ermission denied") as info:
            dest.publish(local, "locked/a.csv", sha256=sha, size=size)
        assert not isinstance(info.value, DestinationUnavailable)
        assert dest.publish(local, "open/a.csv", sha256=sha, size=size).size == size
    assert (sftp_server.root / "open" / "a.csv").read_bytes() == b"data\n"
    assert list((sftp_server.root / "locked").iterdir()) == []
    assert sftp_server.connections_opened == 1


# ---- connections ------------------------------------------------------------------------------
def test_one_connection_reused_for_many_files_across_threads(sftp_server: SFTPTestServer, tmp_path: Path) -> None:
    staged = [_staged(tmp_path, f"f{i}.csv", f"{i}\n".encode() * 500) for i in range(12)]
    errors: list[BaseException] = []
    with open_destination("slate", _config(sftp_server, max_concurrency=4)) as dest:

        def run(item: tuple[Path, str, int]) -> None:
            try:
                dest.publish(item[0], f"out/{item[0].name}", sha256=item[1], size=item[2])
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=run, args=(item,)) for item in staged]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert dest.sweep(older_than=0) == []
    assert errors == []
    assert sftp_server.connections_opened == 1
    assert {p.name for p in (sftp_server.root / "out").iterdir()} == {p.name for p, _, _ in staged}


def test_dropped_connection_mid_file_reconnects_and_retries_once(sftp_server: SFTPTestServer, tmp_path: Path) -> None:
    data = bytes(range(256)) * 8000  # ~2 MB: several SFTP write blocks
    local, sha, size = _staged(tmp_path, "big.csv", data)

    class DropOnce(Callback):
        dropped = False

        def call(self, *args: Any, **kwargs: Any) -> None:
            if self.value > 0 and not DropOnce.dropped:
                DropOnce.dropped = True
                sftp_server.drop_connections()

    with open_destination("slate", _config(sftp_server)) as dest:
        receipt = dest.publish(local, "big.csv", sha256=sha, size=size, callback=DropOnce())
        assert DropOnce.dropped
        assert not receipt.already_present
    assert (sftp_server.root / "big.csv").read_bytes() == data
    # The first attempt's temp, stranded by the drop, was removed over the new connection.
    assert [p.name for p in sftp_server.root.iterdir()] == ["big.csv"]
    assert sftp_server.connections_opened == 2


def test_crash_after_rename_is_already_present_on_rerun(sftp_server: SFTPTestServer, tmp_path: Path) -> None:
    """The file landed but the run died before recording it: the next run must not deliver it twice."""
    local, sha, size = _staged(tmp_path, "a.csv", b"1,2,3\n")
    (sftp_server.root / "a.csv").write_bytes(b"1,2,3\n")
    with open_destination("slate", _config(sftp_server)) as dest:
        receipt = dest.publish(local, "a.csv", sha256=sha, size=size)
    assert receipt.already_present and receipt.sha256 == sha
    assert not any(TEMP_RE.match(p.name) for p in sftp_server.root.iterdir())


def test_filesystem_for_reads_sources_with_the_same_checks(sftp_server: SFTPTestServer) -> None:
    (sftp_server.root / "outbox").mkdir()
    (sftp_server.root / "outbox" / "x.csv").write_bytes(b"x\n")
    fs, root = filesystem_for(_config(sftp_server, url=sftp_server.url("/outbox")), name="source")
    try:
        assert root == "/outbox"
        assert fs.glob(f"{root}/*.csv") == ["/outbox/x.csv"]
        assert fs.cat_file("/outbox/x.csv") == b"x\n"
    finally:
        close_filesystem(fs)


def test_server_gone_mid_run_is_unavailable_after_one_reconnect(sftp_server: SFTPTestServer, tmp_path: Path) -> None:
    local, sha, size = _staged(tmp_path, "a.csv", b"abc")
    with open_destination("slate", _config(sftp_server, connect_timeout=5)) as dest:
        dest.publish(local, "a.csv", sha256=sha, size=size)
        sftp_server.stop()
        with pytest.raises(DestinationUnavailable, match=r"slate: cannot connect to 127\.0\.0\.1"):
            dest.publish(local, "b.csv", sha256=sha, size=size)
    assert sftp_server.connections_opened == 1


def test_env_helper_round_trips_through_settings(sftp_server: SFTPTestServer, monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic_settings import BaseSettings, SettingsConfigDict

    class Settings(BaseSettings):
        model_config = SettingsConfigDict(env_nested_delimiter="__", extra="ignore")
        destinations: dict[str, DestinationConfig] = {}

    for key, value in sftp_server.env("slate", "/incoming", max_concurrency="2").items():
        monkeypatch.setenv(key, value)
    (sftp_server.root / "incoming").mkdir()
    with open_destination("slate", Settings().destinations["slate"]) as dest:
        dest.probe()
        assert dest.config.max_concurrency == 2
