"""Behaviour every destination kind must share, asserted identically on a local folder, a real SFTP
server and a real S3 API (dlt style: one set of assertions, several backends)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fsspec.callbacks import Callback

from destinations import (
    Destination,
    DestinationConfig,
    PathContext,
    PublishError,
    open_destination,
    render_path,
)
from destinations.publish import TEMP_RE

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Target:
    kind: str
    config: Callable[..., DestinationConfig]  # (**overrides) -> config
    files: Callable[[], dict[str, bytes]]  # relative path -> content, everything under the root

    def open(self, name: str = "t", **overrides: Any) -> Destination:
        return open_destination(name, self.config(**overrides))


def _walk(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.fixture(params=["local", "sftp", "s3"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Target]:
    if request.param == "local":
        root = tmp_path / "share" / "incoming"
        root.mkdir(parents=True)  # the root folder must exist (never created); subfolders are
        yield Target(
            "local",
            lambda **kw: DestinationConfig(url=root.as_uri(), **kw),
            lambda: _walk(root) if root.exists() else {},
        )
    elif request.param == "sftp":
        server = request.getfixturevalue("sftp_server")
        (server.root / "incoming").mkdir()
        yield Target(
            "sftp",
            lambda **kw: DestinationConfig(
                url=server.url("/incoming"), password=server.password, host_key=server.host_key_line, **kw
            ),
            lambda: _walk(server.root / "incoming"),
        )
    else:
        s3 = request.getfixturevalue("s3_server")
        yield Target(
            "s3",
            lambda **kw: s3.config("incoming", **kw),
            lambda: {k.removeprefix("incoming/"): s3.read(k) for k in s3.keys("incoming/")},
        )


def _staged(tmp_path: Path, name: str, data: bytes) -> tuple[Path, str, int]:
    path = tmp_path / "staging" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path, hashlib.sha256(data).hexdigest(), len(data)


# Binary-ish payload with leading zeros and CR/LF: arrival must be byte-identical.
PAYLOAD = b"id,zip\r\n" + b"".join(b"%06d,00501\r\n" % i for i in range(40_000)) + bytes(range(256))


def test_file_arrives_byte_identical_under_rendered_path(target: Target, tmp_path: Path) -> None:
    template = "{product_key}/Encoura_{product_key}_{date:%Y%m%d}_{filename}"
    local, sha, size = _staged(tmp_path, "ACT-Org-20240102-0304.csv", PAYLOAD)
    from datetime import UTC, datetime

    ctx = PathContext(filename=local.name, product_key="score-reporter", date=datetime(2024, 1, 2, tzinfo=UTC))
    rel = render_path(template, ctx)
    with target.open(path_template=template) as dest:
        receipt = dest.publish(local, rel, sha256=sha, size=size)
    assert rel == "score-reporter/Encoura_score-reporter_20240102_ACT-Org-20240102-0304.csv"
    assert target.files() == {rel: PAYLOAD}
    assert receipt.relative_path == rel and receipt.size == size and not receipt.already_present
    assert receipt.final_path.endswith(rel) and "password" not in receipt.final_path


@pytest.mark.parametrize("template", ["../{filename}", "/abs/{filename}", "{product}/{filename}", "a/../../{filename}"])
def test_bad_template_is_refused_before_any_transfer(target: Target, template: str) -> None:
    with pytest.raises(ValueError, match="path_template"):
        target.config(path_template=template)
    assert target.files() == {}


def test_failure_mid_upload_leaves_nothing_under_final_name(target: Target, tmp_path: Path) -> None:
    local, sha, size = _staged(tmp_path, "big.csv", PAYLOAD * 3)

    class Boom(Callback):
        def call(self, *args: Any, **kwargs: Any) -> None:
            if self.value > 0:
                raise RuntimeError("simulated failure after some bytes")

    with target.open() as dest:
        if target.kind == "s3":
            # s3fs reports progress only after the single PUT completed: the object is whole. A failed
            # put never deletes what is under the final key (it may be another writer's); the content is
            # compared instead, and identical content is delivered (already present: whose it is is unknown).
            receipt = dest.publish(local, "big.csv", sha256=sha, size=size, callback=Boom())
            assert receipt.already_present and target.files() == {"big.csv": PAYLOAD * 3}
            return
        with pytest.raises(PublishError, match=r"t: big\.csv: .*simulated failure"):
            dest.publish(local, "big.csv", sha256=sha, size=size, callback=Boom())
        assert dest.exists("big.csv") is None
        assert target.files() == {}  # the temp was cleaned up too
        # ... and the destination is still usable for the retry
        assert dest.publish(local, "big.csv", sha256=sha, size=size).size == size
    assert target.files() == {"big.csv": PAYLOAD * 3}


KILL_SCRIPT = """
import hashlib, os, sys, json
from pathlib import Path
from fsspec.callbacks import Callback
from destinations import DestinationConfig, open_destination

class KillAfterSomeBytes(Callback):
    def call(self, *args, **kwargs):
        if self.value > 0:
            os._exit(137)  # like SIGKILL: no cleanup code runs

config = DestinationConfig.model_validate_json(sys.argv[1])
local = Path(sys.argv[2])
data = local.read_bytes()
dest = open_destination("t", config)
dest.publish(local, "killed.csv", sha256=hashlib.sha256(data).hexdigest(), size=len(data),
             callback=KillAfterSomeBytes())
"""


def test_killed_transfer_leaves_only_a_temp_that_sweep_removes(target: Target, tmp_path: Path) -> None:
    if target.kind == "s3":
        pytest.skip(
            "S3 has no temp: see test_destinations_s3.py::test_sweep_aborts_only_stale_incomplete_multipart_uploads"
        )
    local, sha, size = _staged(tmp_path, "killed.csv", PAYLOAD * 8)
    config = target.config()
    dumped = config.model_dump_json(context=None, round_trip=True)
    secrets = {"password": config.password.get_secret_value()} if config.password else {}
    import json

    payload = json.loads(dumped) | secrets
    proc = subprocess.run(
        [sys.executable, "-c", KILL_SCRIPT, json.dumps(payload), str(local)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 137, proc.stderr
    leftovers = target.files()
    assert "killed.csv" not in leftovers
    assert len(leftovers) == 1 and TEMP_RE.match(next(iter(leftovers)).rpartition("/")[2])
    with target.open() as dest:
        assert dest.sweep() == []  # a fresh temp may belong to a run still in progress
        assert dest.sweep(older_than=0) == list(leftovers)
        assert target.files() == {}
        assert dest.publish(local, "killed.csv", sha256=sha, size=size).already_present is False
    assert target.files() == {"killed.csv": PAYLOAD * 8}


def test_existing_same_content_is_already_present(target: Target, tmp_path: Path) -> None:
    local, sha, size = _staged(tmp_path, "a.csv", b"x,y\n1,2\n")
    with target.open() as dest:
        first = dest.publish(local, "a.csv", sha256=sha, size=size)
        again = dest.publish(local, "a.csv", sha256=sha, size=size)
    assert not first.already_present and again.already_present
    assert target.files() == {"a.csv": b"x,y\n1,2\n"}


@pytest.mark.parametrize("other", [b"x,y\n1,3\n", b"different length\n"])
def test_existing_different_content_is_refused_and_untouched(target: Target, tmp_path: Path, other: bytes) -> None:
    original, sha0, size0 = _staged(tmp_path, "orig.csv", b"x,y\n1,2\n")
    changed, sha1, size1 = _staged(tmp_path, "changed.csv", other)
    with target.open() as dest:
        dest.publish(original, "a.csv", sha256=sha0, size=size0)
        with pytest.raises(PublishError, match=r"a\.csv.*exists with different content; not overwritten") as info:
            dest.publish(changed, "a.csv", sha256=sha1, size=size1)
    assert info.value.destination == "t" and info.value.relative_path == "a.csv"
    assert target.files() == {"a.csv": b"x,y\n1,2\n"}


def test_concurrent_publishes_respect_max_concurrency(target: Target, tmp_path: Path) -> None:
    limit, count = 2, 8
    dest = target.open(max_concurrency=limit)
    lock = threading.Lock()
    active = peak = 0
    # All `limit` slots must be usable at once (the barrier only opens when `limit` uploads are in
    # flight together) and never more (peak).
    barrier = threading.Barrier(limit, timeout=20)
    real_put = dest.put

    def counting_put(*args: Any, **kwargs: Any) -> None:
        nonlocal active, peak
        with lock:
            active += 1
            peak = max(peak, active)
        try:
            barrier.wait()
            real_put(*args, **kwargs)
        finally:
            with lock:
                active -= 1

    dest.put = counting_put  # type: ignore[method-assign]
    staged = [_staged(tmp_path, f"f{i}.csv", f"row,{i}\n".encode() * 1000) for i in range(count)]
    errors: list[BaseException] = []

    def run(item: tuple[Path, str, int]) -> None:
        try:
            dest.publish(item[0], item[0].name, sha256=item[1], size=item[2])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(item,)) for item in staged]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    dest.close()
    assert errors == []
    assert peak == limit
    assert target.files() == {p.name: p.read_bytes() for p, _, _ in staged}


def test_probe_leaves_nothing_behind(target: Target) -> None:
    with target.open() as dest:
        dest.probe()
    assert target.files() == {}


def test_staged_file_not_matching_claimed_size_is_refused(target: Target, tmp_path: Path) -> None:
    local, sha, _ = _staged(tmp_path, "a.csv", b"abc")
    with target.open() as dest, pytest.raises(PublishError, match="has 3 bytes, expected 4"):
        dest.publish(local, "a.csv", sha256=sha, size=4)
    assert target.files() == {}


def test_receipt_and_errors_never_contain_secrets(target: Target, tmp_path: Path) -> None:
    local, sha, size = _staged(tmp_path, "a.csv", b"abc")
    with target.open() as dest:
        receipt = dest.publish(local, "a.csv", sha256=sha, size=size)
        text = f"{receipt} {dest.describe()} {dest!r} {dest.config!r}"
    for secret in ("correct horse", "testing-secret-key"):
        assert secret not in text
    assert os.path.basename(receipt.final_path) == "a.csv"


def test_first_attempt_skips_the_pre_upload_stat_and_stays_exactly_once(target: Target, tmp_path: Path) -> None:
    local, sha, size = _staged(tmp_path, "a.csv", b"abc")
    other, sha2, size2 = _staged(tmp_path, "b.csv", b"abd")
    with target.open() as dest:
        events: list[str] = []
        real_size_of, real_put = dest.size_of, dest.put

        def counting_size_of(path: str) -> int | None:
            events.append(f"stat {path}")
            return real_size_of(path)

        def recording_put(local_path: Path, path: str, **kwargs: Any) -> None:
            events.append("put")
            real_put(local_path, path, **kwargs)

        dest.size_of = counting_size_of  # type: ignore[method-assign]
        dest.put = recording_put  # type: ignore[method-assign]
        first = dest.publish(local, "a.csv", sha256=sha, size=size, first_attempt=True)
        assert not first.already_present
        assert events[0] == "put", f"no stat before the upload on a first attempt: {events}"
        # Told "first attempt" although the name is taken: the never-replacing step still decides.
        again = dest.publish(local, "a.csv", sha256=sha, size=size, first_attempt=True)
        assert again.already_present
        with pytest.raises(PublishError, match="exists with different content"):
            dest.publish(other, "a.csv", sha256=sha2, size=size2, first_attempt=True)
    assert target.files() == {"a.csv": b"abc"}
