"""Upload recovery and edge paths over real HTTP: a real SIGKILL mid-poll, a record created but never sent,
exit code 2, an untrusted host key, S3 and no-posix-rename SFTP sources.

Split from test_upload_flow.py so `pytest -n 2 --dist loadfile` runs the two halves in parallel.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from common import exit_codes
from ledger import ClaimOwner, Ledger
from sandbox.encoura import SandboxServer
from tests.integration.test_upload_flow import CSV, Source, run, sandbox, source, upload_env

__all__ = ["sandbox", "source"]  # fixtures shared with test_upload_flow.py


REPO = Path(__file__).resolve().parents[2]


def start_cli(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    """`python -m flows.encoura_upload` with exactly this environment (plus PATH and the session's Prefect)."""
    keep = {k: v for k, v in os.environ.items() if k.startswith(("PREFECT_", "PATH", "HOME", "LANG"))}
    return subprocess.Popen(
        [sys.executable, "-m", "flows.encoura_upload", *args],
        cwd=REPO,
        env={**keep, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_killed_after_the_upload_arrived_rerun_archives_without_sending_again(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, sandbox: SandboxServer, source: Source
) -> None:
    data = source.put("enrollment_big.csv", CSV * 50)
    sandbox.configure(upload_status_steps=1_000_000)  # Encoura keeps "analyzing" until we say otherwise
    env = {**upload_env(sandbox, tmp_path / "state", UPLOAD_POLL_TIMEOUT_SECONDS="300"), **source.env}
    proc = start_cli(env)
    try:
        deadline = time.monotonic() + 120
        while not sandbox.state.uploads_received:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the upload never arrived"
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)  # between "received by storage" and "done"
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    assert source.files() == {"enrollment_big.csv": data}  # nothing moved before Encoura confirmed

    sandbox.configure(upload_status_steps=1)
    assert run(monkeypatch, env) == exit_codes.OK
    assert len(sandbox.state.uploads_received) == 1
    assert sandbox.state.counters["upload_create"] == 1
    assert source.files() == {"processed/enrollment_big.csv": data}


def test_bad_settings_exit_2_with_every_problem_and_no_network(tmp_path: Path, encoura_sandbox: SandboxServer) -> None:
    env = {
        **encoura_sandbox.env(),
        "STATE_DIR": str(tmp_path / "state"),
        "UPLOAD_SOURCE": "sftp://slate@127.0.0.1:1/outgoing/*.csv",
        "UPLOAD_SOURCE_PASSWORD": "pw-not-shown-123",
        "UPLOAD_PRODUCT_TYPE": "prospects",
        "UPLOAD_POLL_TIMEOUT_SECONDS": "soon",
        "ENCOURA_BASE_URL": "ftp://nowhere",
    }
    proc = start_cli(env)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == exit_codes.CONFIG_ERROR, (out, err)
    for name in ("UPLOAD_PRODUCT_TYPE", "UPLOAD_POLL_TIMEOUT_SECONDS", "ENCOURA_BASE_URL"):
        assert name in err, err
    assert "Traceback" not in err and "pw-not-shown-123" not in out + err
    assert sum(encoura_sandbox.state.counters.values()) == 0


def test_record_created_but_bytes_never_sent_is_sent_once_with_a_new_record(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, sandbox: SandboxServer
) -> None:
    """The state a kill between `POST /files/upload` and the presigned POST leaves behind."""
    from tests.support.encoura_sandbox import sandbox_client

    folder = tmp_path / "outgoing"
    folder.mkdir()
    data = CSV
    (folder / "enrollment_x.csv").write_bytes(data)
    with sandbox_client(sandbox) as api:
        # Another name than the file's: the sandbox derives S3 keys from name + second, and two records
        # with one key in the same second would be indistinguishable to it.
        orphan = api.post("files/upload", json={"fileName": "earlier-try.csv", "productType": "enrollment"}).json()
    (tmp_path / "state").mkdir()
    ledger = Ledger(f"sqlite:///{(tmp_path / 'state').resolve()}/ledger.sqlite3")
    owner = ClaimOwner("elsewhere", 1, "dead-run")
    row = ledger.claim_upload(
        source=f"{folder.as_uri()}/enrollment_x.csv", name="enrollment_x.csv",
        sha256=hashlib.sha256(data).hexdigest(), size=len(data), product_type="enrollment",
        me=owner,
    )
    assert row is not None
    ledger.update_upload(row.id, status="sending", encoura_file_id=orphan["id"])
    ledger.release_upload(row.id, owner)
    ledger.close()

    env = {**upload_env(sandbox, tmp_path / "state"), "UPLOAD_SOURCE": f"{folder.as_uri()}/*.csv"}
    assert run(monkeypatch, env) == exit_codes.OK
    assert len(sandbox.state.uploads_received) == 1
    assert sandbox.state.uploads_received[0].upload_id != orphan["id"]
    assert sandbox.state.uploads_received[0].file_bytes == data
    assert [p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()] == [
        "processed/enrollment_x.csv"
    ]


def test_untrusted_sftp_host_key_stops_before_any_upload(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path, sandbox: SandboxServer,
    sftp_server,
) -> None:
    import asyncssh

    (sftp_server.root / "outgoing").mkdir()
    (sftp_server.root / "outgoing" / "enrollment_a.csv").write_bytes(CSV)
    other = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode().strip()
    env = {
        **upload_env(sandbox, tmp_path / "state"),
        "UPLOAD_SOURCE": sftp_server.url("/outgoing/*.csv"),
        "UPLOAD_SOURCE_PASSWORD": sftp_server.password,
        "UPLOAD_SOURCE_HOST_KEY": other,
    }
    # A host key that does not match is a settings problem (pin or known_hosts): exit 2, one clear line.
    assert run(monkeypatch, env) == exit_codes.CONFIG_ERROR
    captured = capsys.readouterr()
    assert "host key" in captured.err and "UPLOAD_SOURCE_HOST_KEY" in captured.err
    assert sftp_server.password not in captured.out + captured.err
    assert sandbox.state.counters["upload_create"] == 0
    assert (sftp_server.root / "outgoing" / "enrollment_a.csv").read_bytes() == CSV


def test_s3_source_is_archived_by_verified_copy(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, sandbox: SandboxServer, s3_server
) -> None:
    """Object stores cannot rename: the file is copied into processed/, checked, and only then removed."""
    ok, bad = CSV, CSV.replace(b"Ana", b"Bo")
    s3_server.client().put_object(Bucket=s3_server.bucket, Key="outgoing/enrollment_ok.csv", Body=ok)
    s3_server.client().put_object(Bucket=s3_server.bucket, Key="outgoing/enrollment_fail.csv", Body=bad)
    env = {
        **upload_env(sandbox, tmp_path / "state"),
        "UPLOAD_SOURCE": s3_server.url("outgoing/enrollment_*.csv"),
        "UPLOAD_SOURCE_STORAGE_OPTIONS": json.dumps(s3_server.storage_options),
    }
    assert run(monkeypatch, env) == exit_codes.WORK_FAILED  # the failing one
    keys = s3_server.keys("outgoing/")
    assert sorted(keys) == [
        "outgoing/failed/enrollment_fail.csv", "outgoing/failed/enrollment_fail.csv.error.txt",
        "outgoing/processed/enrollment_ok.csv",
    ]
    assert s3_server.read("outgoing/processed/enrollment_ok.csv") == ok
    assert s3_server.read("outgoing/failed/enrollment_fail.csv") == bad
    assert sorted(r.file_bytes for r in sandbox.state.uploads_received) == sorted([ok, bad])


def test_sftp_without_posix_rename_still_moves_without_overwriting(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, sandbox: SandboxServer, sftp_server
) -> None:
    """Servers lacking posix-rename@openssh.com get the plain SFTP rename, which never replaces a file."""
    sftp_server.posix_rename = False
    outgoing = sftp_server.root / "outgoing"
    (outgoing / "processed").mkdir(parents=True)
    (outgoing / "processed" / "enrollment_a.csv").write_bytes(b"yesterday's file\n")
    (outgoing / "enrollment_a.csv").write_bytes(CSV)
    env = {
        **upload_env(sandbox, tmp_path / "state"),
        "UPLOAD_SOURCE": sftp_server.url("/outgoing/*.csv"),
        "UPLOAD_SOURCE_PASSWORD": sftp_server.password,
        "UPLOAD_SOURCE_HOST_KEY": sftp_server.host_key_line,
    }
    assert run(monkeypatch, env) == exit_codes.OK
    digest = hashlib.sha256(CSV).hexdigest()[:12]
    assert sorted(p.relative_to(outgoing).as_posix() for p in outgoing.rglob("*") if p.is_file()) == [
        "processed/enrollment_a.csv", f"processed/enrollment_a.{digest}.csv"
    ]
    assert (outgoing / "processed" / "enrollment_a.csv").read_bytes() == b"yesterday's file\n"
    assert (outgoing / "processed" / f"enrollment_a.{digest}.csv").read_bytes() == CSV


def test_sent_file_removed_from_the_source_is_still_followed_to_its_end(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path, sandbox: SandboxServer
) -> None:
    folder = tmp_path / "outgoing"
    folder.mkdir()
    (folder / "enrollment_gone.csv").write_bytes(CSV)
    sandbox.configure(upload_status_steps=100_000)
    env = {**upload_env(sandbox, tmp_path / "state", UPLOAD_POLL_TIMEOUT_SECONDS="0.2"),
           "UPLOAD_SOURCE": f"{folder.as_uri()}/*.csv"}
    assert run(monkeypatch, env) == exit_codes.WORK_FAILED  # timed out while Encoura was analyzing
    (folder / "enrollment_gone.csv").unlink()  # someone else removed it meanwhile
    sandbox.configure(upload_status_steps=1)
    capsys.readouterr()
    assert run(monkeypatch, {**env, "UPLOAD_POLL_TIMEOUT_SECONDS": "20"}) == exit_codes.OK
    out = capsys.readouterr().out
    assert "[            done] default: enrollment_gone.csv" in out and "no longer there" in out
    assert len(sandbox.state.uploads_received) == 1
    # Settled: a third run has nothing left to do for it.
    assert run(monkeypatch, env) == exit_codes.OK
    assert "No files to upload." in capsys.readouterr().out


def test_overlapping_run_leaves_a_file_in_flight_to_the_run_sending_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path, sandbox: SandboxServer
) -> None:
    folder = tmp_path / "outgoing"
    folder.mkdir()
    (folder / "enrollment_busy.csv").write_bytes(CSV)
    sandbox.configure(upload_status_steps=1_000_000)
    env = {**upload_env(sandbox, tmp_path / "state", UPLOAD_POLL_TIMEOUT_SECONDS="300"),
           "UPLOAD_SOURCE": f"{folder.as_uri()}/*.csv"}
    first = start_cli(env)
    try:
        deadline = time.monotonic() + 120
        while not sandbox.state.uploads_received:
            assert first.poll() is None, first.communicate()
            assert time.monotonic() < deadline, "the upload never arrived"
            time.sleep(0.02)
        capsys.readouterr()
        assert run(monkeypatch, env) == exit_codes.OK  # a scheduled run overlapping a manual one
        assert "another run is uploading this file right now" in capsys.readouterr().out
        assert len(sandbox.state.uploads_received) == 1
        assert sandbox.state.counters["upload_create"] == 1
    finally:
        first.kill()
        first.communicate()


def _dead_pid() -> int:
    """A pid on this host that no process has any more: a claim holder that looks like a frozen or
    killed worker, so another run may take its claim over at once (no waiting out a lease)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{(tmp_path / 'state').resolve()}/ledger.sqlite3"
    return str(request.getfixturevalue("postgres_url"))


@pytest.mark.parametrize("when", ["before the record is created", "while polling"])
def test_a_run_that_lost_its_upload_claim_stops_before_its_next_post_move_or_record(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, sandbox: SandboxServer, ledger_url: str, when: str
) -> None:
    """Upload fencing: run A stalls, run B takes the upload's claim over; when A goes on, it neither
    creates an Encoura record (POST), nor records a status, nor archives the file: `claim_lost`."""
    import socket

    from encoura_tasks.upload import steps
    from encoura_tasks.upload.runtime import upload_runtime

    folder = tmp_path / "outgoing"
    folder.mkdir()
    (folder / "enrollment_fenced.csv").write_bytes(CSV)
    env = {**upload_env(sandbox, tmp_path / "state"), "UPLOAD_SOURCE": f"{folder.as_uri()}/*.csv",
           "LEDGER_URL": ledger_url}  # fmt: skip
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    frozen = ClaimOwner(socket.gethostname(), _dead_pid(), "frozen-run")
    other_run = ClaimOwner.current("taking-over-run")
    with upload_runtime(dry_run=False) as run:
        rt = run.runtimes[0]
        rt.owner = frozen  # run A
        rt.api.login()
        (item,) = rt.source.list_files()
        staged, size, digest = steps.stage(rt, item)

        def take_over(*_: object) -> None:
            taken = rt.ledger.claim_upload(
                source=rt.source.location(item.relative), name=item.name, sha256=digest, size=size,
                product_type="enrollment", me=other_run,
            )
            assert taken is not None, "run B could not take the upload over"

        row = rt.ledger.claim_upload(
            source=rt.source.location(item.relative), name=item.name, sha256=digest, size=size,
            product_type="enrollment", me=frozen,
        )
        assert row is not None
        outcome = steps.UploadOutcome(file=item.relative, size=size)
        if when == "before the record is created":
            take_over()
            steps.drive(rt, row, item, staged, outcome)
        else:  # after A recorded its first Encoura status; the next status write must be refused
            seen: list[str] = []

            def on_status(status: str) -> None:
                if not seen:
                    take_over()
                seen.append(status)

            steps.drive(rt, row, item, staged, outcome, on_status=on_status)
            assert len(seen) == 1, f"run A recorded statuses after losing its claim: {seen}"
        after = rt.ledger.find_upload(sha256=digest, name=item.name, product_type="enrollment")

    assert outcome.status == "claim_lost", (outcome.status, outcome.error)
    assert outcome.is_problem and "lost its claim" in (outcome.error or "")
    assert [p.name for p in folder.iterdir()] == ["enrollment_fenced.csv"], "run A moved the source file"
    assert after is not None and after.status != "archived"
    if when == "before the record is created":
        assert sandbox.state.counters["upload_create"] == 0, "run A created an Encoura record after losing its claim"
        assert after.status == "new" and after.encoura_file_id is None
    else:
        assert sandbox.state.counters["upload_create"] == 1
        assert after.status not in ("done", "archived")
