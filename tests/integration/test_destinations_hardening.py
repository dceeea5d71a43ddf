"""The hardened destination layer on real peers: host keys for every URL form, rename that never
replaces (two racers for one name on every backend), S3 never deleting what it did not write, and
the root-folder rule."""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import asyncssh
import fsspec
import pytest
from fsspec.implementations.local import LocalFileSystem
from pydantic import ValidationError

from bench.proxy import LatencyProxy
from common.errors import ConfigError
from destinations import (
    DestinationConfig,
    HostKeyError,
    HostKeyRequired,
    PublishError,
    Receipt,
    SlateSFTPFileSystem,
    check_root,
    filesystem_for,
    move_noreplace,
    open_destination,
    reachable,
)
from tests.support.sftp_server import SFTPTestServer

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def no_default_known_hosts(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A HOME without ~/.ssh/known_hosts, so nothing is trusted unless pinned."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))


def _staged(tmp_path: Path, name: str, data: bytes) -> tuple[Path, str, int]:
    path = tmp_path / "staging" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path, hashlib.sha256(data).hexdigest(), len(data)


def _sftp_config(server: SFTPTestServer, path: str = "/incoming", **overrides: Any) -> DestinationConfig:
    fields: dict[str, Any] = {"url": server.url(path), "password": server.password, "host_key": server.host_key_line}
    fields.update(overrides)
    return DestinationConfig(**fields)


# ----------------------------------------------------------------------------- host keys, every URL form
def test_sftp_and_ssh_protocols_resolve_to_the_hardened_filesystem() -> None:
    assert fsspec.get_filesystem_class("sftp") is SlateSFTPFileSystem
    assert fsspec.get_filesystem_class("ssh") is SlateSFTPFileSystem


@pytest.mark.usefixtures("no_default_known_hosts")
@pytest.mark.parametrize("form", ["filesystem", "open", "chained"])
def test_every_url_form_refuses_to_connect_without_host_keys(sftp_server: SFTPTestServer, form: str) -> None:
    (sftp_server.root / "x.csv").write_bytes(b"secret rows")
    before = sftp_server.connections_opened
    with pytest.raises(HostKeyRequired, match="refusing to connect"):
        if form == "filesystem":
            fsspec.filesystem(
                "sftp", host=sftp_server.host, port=sftp_server.port, username="slate",
                password=sftp_server.password, skip_instance_cache=True,
            )
        elif form == "open":
            with fsspec.open(sftp_server.url("/x.csv"), password=sftp_server.password) as fh:
                fh.read()
        else:
            chained = f"simplecache::{sftp_server.url('/x.csv')}"
            with fsspec.open(chained, sftp={"password": sftp_server.password}) as fh:
                fh.read()
    assert sftp_server.connections_opened == before  # refused before any connection was made


@pytest.mark.usefixtures("no_default_known_hosts")
def test_chained_url_with_a_pinned_key_is_verified_and_reads(sftp_server: SFTPTestServer) -> None:
    (sftp_server.root / "x.csv").write_bytes(b"rows")
    url = f"simplecache::{sftp_server.url('/x.csv')}"
    opts = {"password": sftp_server.password, "host_key": sftp_server.host_key_line, "skip_instance_cache": True}
    with fsspec.open(url, sftp=opts) as fh:
        assert fh.read() == b"rows"
    other = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode().strip()
    with pytest.raises(asyncssh.HostKeyNotVerifiable), fsspec.open(url, sftp={**opts, "host_key": other}) as fh:
        fh.read()


@pytest.mark.usefixtures("no_default_known_hosts")
def test_chained_destination_url_goes_through_our_host_key_checks(sftp_server: SFTPTestServer) -> None:
    (sftp_server.root / "outbox").mkdir()
    (sftp_server.root / "outbox" / "a.csv").write_bytes(b"a")
    config = _sftp_config(sftp_server, url=f"simplecache::{sftp_server.url('/outbox')}")
    fs, root = filesystem_for(config, name="source")
    assert fs.cat_file(f"{root}/a.csv") == b"a"
    other = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode().strip()
    with pytest.raises(HostKeyError, match="not trusted"):
        filesystem_for(_sftp_config(sftp_server, url=f"simplecache::{sftp_server.url('/outbox')}", host_key=other))
    # Without any host key setting a chained sftp URL is refused at validation, like a plain one.
    with pytest.raises(ValidationError, match="host key verification needs"):
        DestinationConfig(url=f"simplecache::{sftp_server.url('/outbox')}", password="x")


@pytest.mark.parametrize(
    "url",
    [
        "sftp://slate:hunter2secret@h.example/incoming",
        "simplecache::sftp://slate:hunter2secret@h.example/incoming",
        "file:///tmp/x::sftp://slate:hunter2secret@h.example/incoming",
    ],
)
def test_password_in_any_url_segment_is_refused_and_never_echoed(url: str) -> None:
    with pytest.raises(ValidationError) as info:
        DestinationConfig(url=url, host_key="SHA256:" + "A" * 43)
    assert "contains a password" in str(info.value)
    assert "hunter2secret" not in str(info.value)


def test_password_in_a_raw_fsspec_sftp_url_is_refused_and_never_echoed() -> None:
    with pytest.raises(ValueError, match="must not contain a password") as info:
        fsspec.open("simplecache::sftp://slate:hunter2secret@127.0.0.1:1/x").open()
    assert "hunter2secret" not in str(info.value)


@pytest.mark.usefixtures("no_default_known_hosts")
@pytest.mark.parametrize("algo", ["sha256", "md5"])
def test_fingerprint_pin_right_connects_wrong_is_refused(sftp_server: SFTPTestServer, algo: str) -> None:
    (sftp_server.root / "incoming").mkdir()
    key = asyncssh.import_public_key(sftp_server.host_key_line)
    right = key.get_fingerprint(algo)
    with open_destination("slate", _sftp_config(sftp_server, host_key=right)) as dest:
        assert reachable(dest) is None
    wrong_key = asyncssh.generate_private_key("ssh-ed25519")
    wrong = wrong_key.get_fingerprint(algo)
    with open_destination("slate", _sftp_config(sftp_server, host_key=wrong)) as dest, pytest.raises(
        HostKeyError
    ) as info:
        dest.connect_check()
    message = str(info.value)
    assert key.get_fingerprint("sha256") in message and key.get_fingerprint("md5")[4:] in message


def test_technolutions_style_md5_line_is_accepted_as_a_pin(sftp_server: SFTPTestServer) -> None:
    md5 = asyncssh.import_public_key(sftp_server.host_key_line).get_fingerprint("md5")[4:]
    (sftp_server.root / "incoming").mkdir()
    with open_destination("slate", _sftp_config(sftp_server, host_key=f"ssh-ed25519 256 {md5}")) as dest:
        assert reachable(dest) is None


# ----------------------------------------------------------------------------- never replace: racers
def _race(publishers: list[Callable[[], Receipt]]) -> list[Receipt | BaseException]:
    results: list[Receipt | BaseException] = [RuntimeError("not run")] * len(publishers)

    def run(i: int) -> None:
        try:
            results[i] = publishers[i]()
        except BaseException as exc:  # reported by the assertions
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(publishers))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


def _gate(dest: Any, method: str, barrier: threading.Barrier) -> None:
    """Hold each racer just before its decisive step until both are there (the race window, forced)."""
    real = getattr(dest, method)

    def gated(*args: Any, **kwargs: Any) -> Any:
        barrier.wait(30)
        return real(*args, **kwargs)

    setattr(dest, method, gated)


@pytest.mark.parametrize("backend", ["local", "sftp", "sftp-posix-only", "s3"])
def test_two_racers_for_one_name_end_with_one_file_and_one_already_present(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    local, sha, size = _staged(tmp_path, "a.csv", b"the same export\n")
    if backend == "local":
        root = tmp_path / "share"
        root.mkdir()
        configs = [DestinationConfig(url=root.as_uri())] * 2
        listing: Callable[[], list[str]] = lambda: sorted(p.name for p in root.iterdir())  # noqa: E731
    elif backend.startswith("sftp"):
        make = request.getfixturevalue("make_sftp_server")
        server = make(plain_rename=backend == "sftp")
        (server.root / "incoming").mkdir()
        configs = [_sftp_config(server)] * 2
        listing = lambda: sorted(p.name for p in (server.root / "incoming").iterdir())  # noqa: E731
    else:
        s3 = request.getfixturevalue("s3_server")
        configs = [s3.config("race")] * 2
        listing = lambda: [k.removeprefix("race/") for k in s3.keys("race/")]  # noqa: E731
    dests = [open_destination(f"r{i}", c) for i, c in enumerate(configs)]
    barrier = threading.Barrier(2)
    for dest in dests:
        _gate(dest, "put" if dest.atomic_put else "rename_noreplace", barrier)
    try:
        results = _race([lambda d=d: d.publish(local, "a.csv", sha256=sha, size=size) for d in dests])
    finally:
        for dest in dests:
            dest.close()
    receipts = [r for r in results if isinstance(r, Receipt)]
    assert len(receipts) == 2, results
    assert sorted(r.already_present for r in receipts) == [False, True]
    assert listing() == ["a.csv"]


@pytest.mark.parametrize("fs_kind", ["local", "sftp-posix-only"])
def test_move_noreplace_over_a_filesystem_lets_exactly_one_racer_win(
    fs_kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if fs_kind == "local":
        fs: fsspec.AbstractFileSystem = LocalFileSystem()
        base = str(tmp_path / "d")
        fs.makedirs(base)
    else:
        server = request.getfixturevalue("make_sftp_server")(plain_rename=False)
        (server.root / "d").mkdir()
        fs, _ = filesystem_for(_sftp_config(server, path="/d"))
        base = "/d"
    fs.pipe_file(f"{base}/one", b"1")
    fs.pipe_file(f"{base}/two", b"2")
    barrier = threading.Barrier(2)

    def mover(src: str) -> Any:
        def go() -> Any:
            barrier.wait(30)
            move_noreplace(fs, f"{base}/{src}", f"{base}/final")
            return src

        return go

    results = _race([mover("one"), mover("two")])  # type: ignore[list-item]
    winners = [r for r in results if isinstance(r, str)]
    losers = [r for r in results if isinstance(r, FileExistsError)]
    assert len(winners) == 1 and len(losers) == 1, results
    loser = "two" if winners[0] == "one" else "one"
    fs.invalidate_cache()
    assert fs.cat_file(f"{base}/final") == (b"1" if winners[0] == "one" else b"2")
    assert fs.cat_file(f"{base}/{loser}")  # the loser's source is left alone
    assert not [p for p in fs.ls(base, detail=False) if ".~claim." in p]  # guards removed


# ----------------------------------------------------------------------------- S3 never deletes others' objects
def test_s3_failed_put_never_deletes_an_object_it_did_not_write(s3_server: Any, tmp_path: Path) -> None:
    local, sha, size = _staged(tmp_path, "a.csv", b"ours\n")
    dest = open_destination("s3", s3_server.config("keep"))
    real_put = dest.put

    def lost_response(local_path: Path, path: str, **kwargs: Any) -> None:
        dest.fs.pipe_file(path, b"another writer's object")  # lands first ...
        raise ConnectionResetError("connection reset after sending")  # ... and our answer is lost

    dest.put = lost_response  # type: ignore[method-assign]
    with pytest.raises(PublishError, match="connection reset"):
        dest.publish(local, "a.csv", sha256=sha, size=size)
    assert s3_server.read("keep/a.csv") == b"another writer's object"
    dest.put = real_put  # type: ignore[method-assign]
    with pytest.raises(PublishError, match="exists with different content"):
        dest.publish(local, "a.csv", sha256=sha, size=size)
    assert s3_server.read("keep/a.csv") == b"another writer's object"


# ----------------------------------------------------------------------------- root folder rule
def test_missing_root_is_a_settings_error_naming_folder_and_host(
    sftp_server: SFTPTestServer, tmp_path: Path
) -> None:
    with open_destination("slate", _sftp_config(sftp_server, path="/incoming/Encora")) as dest:
        with pytest.raises(ConfigError) as info:
            check_root(dest)
        assert "/incoming/Encora" in str(info.value) and sftp_server.host in str(info.value)
        with pytest.raises(ConfigError):
            reachable(dest)
    assert not (sftp_server.root / "incoming" / "Encora").exists()  # never created
    local_dest = open_destination("share", DestinationConfig(url=(tmp_path / "nope").as_uri()))
    with pytest.raises(ConfigError, match=r"nope.* does not exist"):
        check_root(local_dest)


def test_existing_root_passes_and_template_subfolders_are_still_created(
    sftp_server: SFTPTestServer, tmp_path: Path
) -> None:
    (sftp_server.root / "incoming").mkdir()
    local, sha, size = _staged(tmp_path, "a.csv", b"x")
    with open_destination("slate", _sftp_config(sftp_server, path_template="{product_key}/{filename}")) as dest:
        check_root(dest)
        assert reachable(dest) is None
        dest.publish(local, "aos/2026/a.csv", sha256=sha, size=size)
    assert (sftp_server.root / "incoming" / "aos" / "2026" / "a.csv").read_bytes() == b"x"


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_unreachable_destination_is_one_line_not_an_exception() -> None:
    unused_tcp_port = _closed_port()
    config = DestinationConfig(
        url=f"sftp://slate@127.0.0.1:{unused_tcp_port}/incoming", password="x", host_key="SHA256:" + "A" * 43,
        connect_timeout=5,
    )
    with open_destination("slate", config) as dest:
        problem = reachable(dest)
    assert problem is not None and "cannot connect" in problem and f"127.0.0.1:{unused_tcp_port}" in problem
    assert "\n" not in problem


ENTRY_POINTS_TXT = """[fsspec.specs]
sftp = destinations.sftpfs:SlateSFTPFileSystem
ssh = destinations.sftpfs:SlateSFTPFileSystem
"""


def test_fsspec_specs_entry_point_hardens_sftp_without_importing_destinations(tmp_path: Path) -> None:
    """The pyproject `[project.entry-points."fsspec.specs"]` lines, as an installed distribution would
    carry them: a process that never imports `destinations` still gets the hardened class."""
    dist = tmp_path / "site" / "encoura_slate_probe-0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: encoura-slate-probe\nVersion: 0\n")
    (dist / "entry_points.txt").write_text(ENTRY_POINTS_TXT)
    code = (
        "import sys, fsspec\n"
        "cls = fsspec.get_filesystem_class('sftp')\n"
        "print(cls.__module__, cls.__name__, fsspec.get_filesystem_class('ssh').__name__)\n"
    )
    env = {**os.environ, "PYTHONPATH": f"{tmp_path / 'site'}:{Path.cwd()}"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["destinations.sftpfs", "SlateSFTPFileSystem", "SlateSFTPFileSystem"]


# ----------------------------------------------------------------------------- round trips (issue 15)
def _requests_per_file(server: SFTPTestServer, dest: Any, tmp_path: Path, *, first_attempt: bool, tag: str) -> dict:
    files = [_staged(tmp_path, f"{tag}{i}.csv", f"row,{i}\n".encode() * 100) for i in range(10)]
    server.requests.clear()
    for path, sha, size in files:
        dest.publish(path, f"aos/{path.name}", sha256=sha, size=size, first_attempt=first_attempt)
    per_file = {kind: count / len(files) for kind, count in server.requests.items()}
    print(f"SFTP requests per file (first_attempt={first_attempt}): {per_file}")  # read with pytest -s
    return per_file


def test_first_attempt_publish_costs_fewer_sftp_requests(sftp_server: SFTPTestServer, tmp_path: Path) -> None:
    """Counted at the server: on a first attempt the final name is not stat'ed before the upload, and
    the template folder is made once per connection, not once per file."""
    (sftp_server.root / "incoming").mkdir()
    config = _sftp_config(sftp_server, path_template="{product_key}/{filename}")
    with open_destination("slate", config) as dest:
        dest.connect_check()
        _requests_per_file(sftp_server, dest, tmp_path, first_attempt=True, tag="warm")  # makes aos/ once
        retry = _requests_per_file(sftp_server, dest, tmp_path, first_attempt=False, tag="r")
        first = _requests_per_file(sftp_server, dest, tmp_path, first_attempt=True, tag="f")
    non_write = lambda counts: sum(v for k, v in counts.items() if k != "write")  # noqa: E731
    assert non_write(first) == non_write(retry) - 1, (first, retry)  # one stat fewer per file
    assert "mkdir" not in first and "mkdir" not in retry  # the folder was made once, in the warm-up batch
    # open, then the write(s), an fstat (the size to verify) and the close pipelined, then rename:
    # nothing else (no separate stat of the temp file).
    assert first == {"open": 1, "write": 1, "fstat": 1, "close": 1, "rename": 1}, first


@pytest.fixture
def slow_path(sftp_server: SFTPTestServer) -> Iterator[tuple[LatencyProxy, int]]:
    """bench.proxy in front of the test server: 50 ms each way, so every client wait is seen (a wait
    is a 100 ms silence; pipelined requests leave none longer than a scheduling hiccup)."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="latency-proxy", daemon=True)
    thread.start()
    proxy = LatencyProxy((sftp_server.host, sftp_server.port), latency_ms=50, bandwidth_mbit=None)

    async def start() -> asyncio.Server:
        return await asyncio.start_server(proxy.handle, "127.0.0.1", 0)

    server = asyncio.run_coroutine_threadsafe(start(), loop).result(timeout=30)

    async def stop() -> None:
        server.close()
        others = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)

    try:
        yield proxy, server.sockets[0].getsockname()[1]
    finally:
        asyncio.run_coroutine_threadsafe(stop(), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()


@pytest.mark.parametrize("size", [20_000, 1024 * 1024])  # one write; several (within one SSH window)
def test_first_attempt_publish_waits_three_round_trips(
    sftp_server: SFTPTestServer, slow_path: tuple[LatencyProxy, int], tmp_path: Path, size: int
) -> None:
    """Issue 15's budget, counted as client waits at the proxy the benchmark uses: open, then the
    writes + fstat + close pipelined, then rename. The rename still waits for the close's answer
    (the file is complete before it gets its final name), and the intent is recorded in between."""
    proxy, port = slow_path
    (sftp_server.root / "incoming").mkdir()
    config = DestinationConfig(
        url=f"sftp://{sftp_server.username}@127.0.0.1:{port}/incoming",
        password=sftp_server.password,
        host_key=sftp_server.host_key_line,
        path_template="{product_key}/{filename}",
        keepalive_interval=0,  # a keepalive after a silence would count as a wait
    )
    events: list[str] = []
    files = [_staged(tmp_path, f"rt{i}.csv", os.urandom(size)) for i in range(5)]
    with open_destination("slate", config) as dest:
        path, sha, n = _staged(tmp_path, "warm.csv", b"warm\n")
        dest.publish(path, "aos/warm.csv", sha256=sha, size=n, first_attempt=True)  # connect, make aos/
        before = proxy.turnarounds()
        for path, sha, n in files:

            def intent(temp: str | None, final: str, path: Path = path) -> None:
                assert temp is not None and (sftp_server.root / "incoming" / temp).stat().st_size == size
                events.append(f"intent {path.name}")

            dest.publish(path, f"aos/{path.name}", sha256=sha, size=n, first_attempt=True, before_rename=intent)
        waits = proxy.turnarounds() - before
    assert events == [f"intent {p.name}" for p, _, _ in files]
    for path, sha, _ in files:
        assert hashlib.sha256((sftp_server.root / "incoming" / "aos" / path.name).read_bytes()).hexdigest() == sha
    assert waits <= 3 * len(files), f"{waits / len(files):.1f} round trips per file"


def test_a_write_failing_mid_pipeline_publishes_nothing_and_leaves_no_temp(
    sftp_server: SFTPTestServer, tmp_path: Path
) -> None:
    """The pipelined upload's error path: writes past 1 MB fail (a full disk) while later writes, the
    fstat and the close are already on their way. The publish fails with one clear error, the temp
    is removed, no final name appears, and the same connection delivers the next file."""
    (sftp_server.root / "incoming").mkdir()
    big = _staged(tmp_path, "big.csv", os.urandom(5 * 1024 * 1024))
    small = _staged(tmp_path, "small.csv", b"a,b\n1,2\n")
    with open_destination("slate", _sftp_config(sftp_server)) as dest:
        sftp_server.fail_writes_from = 1024 * 1024
        with pytest.raises(PublishError) as failed:
            dest.publish(big[0], "big.csv", sha256=big[1], size=big[2], first_attempt=True)
        sftp_server.fail_writes_from = None
        assert "No space left on device" in str(failed.value)
        assert sorted(p.name for p in (sftp_server.root / "incoming").iterdir()) == []
        receipt = dest.publish(small[0], "small.csv", sha256=small[1], size=small[2], first_attempt=True)
    assert receipt.already_present is False
    assert (sftp_server.root / "incoming" / "small.csv").read_bytes() == b"a,b\n1,2\n"
