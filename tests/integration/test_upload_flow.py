"""The upload flow end to end over real HTTP (sandbox), with sources in a local folder and on a real SFTP server.

Same assertions for both sources (dlt style). The sandbox picks each file's fate from its name:
"fail" -> failure with an error text, "mapping" -> fields_mapping_required, "cancel" -> mapping,
then canceled on a later check.
"""

from __future__ import annotations

import hashlib
import io
import json
import mimetypes
import os
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from common import exit_codes
from ledger import Ledger
from sandbox.encoura import SandboxServer

CSV = b'StudentID,FirstName,LastName,ZIP\n000123,Ana,Lopez,"01234"\n000124,"Kim, Jr.",Park,"02139"\n'


@dataclass
class Source:
    kind: str
    folder: Path  # where the files really are (the SFTP server's disk for sftp)
    env: dict[str, str]
    secret: str | None = None

    def put(self, name: str, data: bytes) -> bytes:
        path = self.folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return data

    def files(self) -> dict[str, bytes]:
        return {p.relative_to(self.folder).as_posix(): p.read_bytes() for p in self.folder.rglob("*") if p.is_file()}


@pytest.fixture(params=["local", "sftp"])
def source(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Source]:
    if request.param == "local":
        folder = tmp_path / "share" / "outgoing"
        folder.mkdir(parents=True)
        yield Source("local", folder, {"UPLOAD_SOURCE": f"{folder.as_uri()}/enrollment_*"})
    else:
        server = request.getfixturevalue("sftp_server")
        folder = server.root / "outgoing"
        folder.mkdir()
        yield Source(
            "sftp",
            folder,
            {
                "UPLOAD_SOURCE": server.url("/outgoing/enrollment_*"),
                "UPLOAD_SOURCE_PASSWORD": server.password,
                "UPLOAD_SOURCE_HOST_KEY": server.host_key_line,
            },
            secret=server.password,
        )


def upload_env(sb: SandboxServer, state_dir: Path, **extra: str) -> dict[str, str]:
    return {
        **sb.env(),
        "STATE_DIR": str(state_dir),
        "UPLOAD_PRODUCT_TYPE": "enrollment",
        "UPLOAD_POLL_INTERVAL_SECONDS": "0.05",
        "UPLOAD_POLL_MAX_INTERVAL_SECONDS": "0.2",
        "UPLOAD_POLL_TIMEOUT_SECONDS": "20",
        "TASK_RETRIES": "0",
        **extra,
    }


def run(monkeypatch: pytest.MonkeyPatch, env: dict[str, str], *args: str) -> int:
    # Imported here, not at collection: Prefect reads PREFECT_API_URL (set by the session fixture) on import.
    from flows.encoura_upload import main

    monkeypatch.delenv("UPLOAD_SOURCE_HOST_KEY", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return main(list(args))


@pytest.fixture
def sandbox(encoura_sandbox: SandboxServer) -> SandboxServer:
    encoura_sandbox.configure(upload_status_steps=1)
    return encoura_sandbox


def latest_artifact(key: str) -> Any:
    """The newest artifact with this key on the session's Prefect server (tests in a worker run one at a time)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactCollectionFilter, ArtifactCollectionFilterKey

    with get_client(sync_client=True) as client:
        found = client.read_latest_artifacts(
            artifact_filter=ArtifactCollectionFilter(key=ArtifactCollectionFilterKey(any_=[key]))
        )
    assert found, f"no artifact {key!r}"
    data = found[0].data
    return json.loads(data) if isinstance(data, str) and data.startswith(("[", "{")) else data


def _xlsx() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        archive.writestr("[Content_Types].xml", b"<Types/>")
        archive.writestr("xl/workbook.xml", b"<workbook/>")
    return buf.getvalue()


def test_each_final_status_and_exact_multipart(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path, sandbox: SandboxServer,
    source: Source,
) -> None:
    sent = {
        "enrollment_ok.csv": source.put("enrollment_ok.csv", CSV),
        "enrollment_book.xlsx": source.put("enrollment_book.xlsx", _xlsx()),
        "enrollment_fail.csv": source.put("enrollment_fail.csv", CSV.replace(b"Ana", b"Bo")),
        "enrollment_mapping.csv": source.put("enrollment_mapping.csv", CSV.replace(b"Ana", b"Cy")),
        "enrollment_cancel.csv": source.put("enrollment_cancel.csv", CSV.replace(b"Ana", b"Di")),
    }
    env = {**upload_env(sandbox, tmp_path / "state"), **source.env}
    assert run(monkeypatch, env) == exit_codes.WORK_FAILED
    out = capsys.readouterr()

    # The multipart form: every presigned field in the order the API gave them, the file last, bytes identical.
    received = sandbox.state.uploads_received
    assert sorted(r.file_name or "" for r in received) == sorted(sent)
    for r in received:
        record = sandbox.state.uploads[r.upload_id]
        assert r.field_order == list(record.fields)
        assert r.fields == record.fields
        assert r.file_bytes == sent[r.file_name or ""]
        assert r.file_content_type == mimetypes.guess_type(r.file_name or "")[0]
        assert record.product_type == "enrollment" and record.data_source == "API"
    assert sandbox.state.counters["upload_create"] == len(sent)

    failed_id = next(r.upload_id for r in received if r.file_name == "enrollment_fail.csv")
    failure_error = sandbox.state.uploads[failed_id].to_json("failure")["error"]
    assert failure_error
    files = source.files()
    assert files["processed/enrollment_ok.csv"] == sent["enrollment_ok.csv"]
    assert files["processed/enrollment_book.xlsx"] == sent["enrollment_book.xlsx"]
    assert files["failed/enrollment_fail.csv"] == sent["enrollment_fail.csv"]
    assert failure_error in files["failed/enrollment_fail.csv.error.txt"].decode()
    assert files["enrollment_mapping.csv"] == sent["enrollment_mapping.csv"]  # left for a person
    assert files["enrollment_cancel.csv"] == sent["enrollment_cancel.csv"]  # waiting for mapping, too
    assert not [name for name in files if Path(name).name.startswith(".")]  # no temp files left behind
    assert "needs a person: map the fields once in the Encoura Data Center" in out.out
    assert f"Encoura: {failure_error}" in out.out
    if source.secret:
        assert source.secret not in out.out + out.err
    for r in received:
        for secret_field in ("x-amz-signature", "x-amz-security-token", "policy"):
            assert r.fields[secret_field] not in out.out + out.err

    table = {row["file"]: row for row in latest_artifact("encoura-upload-files")}
    assert {name: row["status"] for name, row in table.items()} == {
        "enrollment_ok.csv": "done", "enrollment_book.xlsx": "done", "enrollment_fail.csv": "failure",
        "enrollment_mapping.csv": "needs_person", "enrollment_cancel.csv": "needs_person",
    }
    assert table["enrollment_ok.csv"]["bytes"] == str(len(CSV))
    assert table["enrollment_ok.csv"]["encoura_file_id"] in sandbox.state.uploads
    assert failure_error in table["enrollment_fail.csv"]["error"]
    artifacts_text = json.dumps(table) + json.dumps(latest_artifact("encoura-upload-summary"))
    for r in received:
        assert r.fields["x-amz-signature"] not in artifacts_text
    if source.secret:
        assert source.secret not in artifacts_text

    # Second run: nothing is sent again; the person canceled the second mapping file meanwhile.
    assert run(monkeypatch, env) == exit_codes.WORK_FAILED
    out = capsys.readouterr()
    assert len(sandbox.state.uploads_received) == len(sent)
    assert sandbox.state.counters["upload_create"] == len(sent)
    files = source.files()
    assert files["failed/enrollment_cancel.csv"] == sent["enrollment_cancel.csv"]
    assert "canceled" in files["failed/enrollment_cancel.csv.error.txt"].decode()
    assert "enrollment_mapping.csv" in files  # still there, still reported
    assert "needs_person" in out.out and "canceled" in out.out


def test_wrong_credentials_one_clear_error_one_login_attempt(tmp_path: Path, sandbox: SandboxServer) -> None:
    """The upload starts with the same `encoura-login` task as the export: refused once, exit 2, nothing sent.

    Run as a user runs it (a subprocess), so the console output checked is exactly what they see."""
    folder = tmp_path / "share" / "outgoing"
    folder.mkdir(parents=True)
    (folder / "enrollment_ok.csv").write_bytes(CSV)
    env = {
        **upload_env(sandbox, tmp_path / "state"),
        "UPLOAD_SOURCE": f"{folder.as_uri()}/enrollment_*",
        "ENCOURA_PASSWORD": "wrong-password",
    }
    keep = {k: v for k, v in os.environ.items() if k.startswith(("PREFECT_", "PATH", "HOME", "LANG"))}
    done = subprocess.run(
        [sys.executable, "-m", "flows.encoura_upload"],
        cwd=Path(__file__).resolve().parents[2],
        env={**keep, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == exit_codes.CONFIG_ERROR, done.stderr
    assert "Encoura refused the login" in done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert "wrong-password" not in done.stdout + done.stderr
    assert sandbox.state.login_attempts == 1
    assert sandbox.state.counters["upload_create"] == 0
    assert (folder / "enrollment_ok.csv").read_bytes() == CSV  # not moved


def test_invalid_files_refused_before_any_upload_call(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path, sandbox: SandboxServer,
    source: Source,
) -> None:
    bad = {
        "enrollment_scan.pdf": b"%PDF-1.4 not a csv",
        "enrollment_empty.csv": b"",
        "enrollment_latin1.csv": "id,name\n1,José\n".encode("latin-1"),
        "enrollment_utf16.csv": "id,name\n1,Ana\n".encode("utf-16"),
        "enrollment_ragged.csv": b"id,name,zip\n1,Ana,01234\n2,Kim\n",
        "enrollment_noheader.csv": b"000123,Ana,01234\n000124,Kim,02139\n",
    }
    for name, data in bad.items():
        source.put(name, data)
    env = {**upload_env(sandbox, tmp_path / "state"), **source.env}
    assert run(monkeypatch, env) == exit_codes.WORK_FAILED
    out = capsys.readouterr().out
    counters = sandbox.state.counters
    assert counters["upload_create"] == 0 and counters["s3_upload"] == 0 and counters["file_status"] == 0
    assert source.files() == bad  # nothing moved, nothing changed
    for name, reason in [
        ("enrollment_scan.pdf", ".pdf is not accepted for enrollment uploads"),
        ("enrollment_empty.csv", "is empty (0 bytes)"),
        ("enrollment_latin1.csv", "is not UTF-8 (looks like Windows-1252/latin-1)"),
        ("enrollment_utf16.csv", "is not UTF-8: it is UTF-16 LE"),
        ("enrollment_ragged.csv", "line 3 has 2"),
        ("enrollment_noheader.csv", "has no header row"),
    ]:
        lines = [line for line in out.splitlines() if f"!! {name} " in line]
        assert lines and reason in lines[0], out


def test_poll_time_limit_then_rerun_resumes_without_sending_again(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path, sandbox: SandboxServer,
    source: Source,
) -> None:
    data = source.put("enrollment_slow.csv", CSV)
    sandbox.configure(upload_status_steps=100_000)  # stays "analyzing"
    env = {**upload_env(sandbox, tmp_path / "state", UPLOAD_POLL_TIMEOUT_SECONDS="0.3"), **source.env}
    assert run(monkeypatch, env) == exit_codes.WORK_FAILED
    assert "timed_out" in capsys.readouterr().out
    assert source.files() == {"enrollment_slow.csv": data}
    assert len(sandbox.state.uploads_received) == 1

    sandbox.configure(upload_status_steps=1)
    assert run(monkeypatch, {**env, "UPLOAD_POLL_TIMEOUT_SECONDS": "20"}) == exit_codes.OK
    assert len(sandbox.state.uploads_received) == 1
    assert sandbox.state.counters["upload_create"] == 1
    assert source.files() == {"processed/enrollment_slow.csv": data}
    rows = Ledger(f"sqlite:///{tmp_path / 'state' / 'ledger.sqlite3'}").unfinished_uploads()
    assert [(r.status, r.archived_to) for r in rows] == []


def test_same_name_next_day_is_sent_and_archived_under_a_unique_name(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, sandbox: SandboxServer, source: Source
) -> None:
    env = {**upload_env(sandbox, tmp_path / "state"), **source.env}
    first = source.put("enrollment_daily.csv", CSV)
    assert run(monkeypatch, env) == exit_codes.OK
    second = source.put("enrollment_daily.csv", CSV + b'000125,Eve,Ong,"10001"\n')
    assert run(monkeypatch, env) == exit_codes.OK
    third = source.put("enrollment_daily.csv", first)  # identical to the first: recognised, not sent again
    assert run(monkeypatch, env) == exit_codes.OK
    files = source.files()
    digest = hashlib.sha256(second).hexdigest()[:12]
    assert files == {
        "processed/enrollment_daily.csv": first,
        f"processed/enrollment_daily.{digest}.csv": second,
        "enrollment_daily.csv": third,
    }
    assert len(sandbox.state.uploads_received) == 2


def test_dry_run_sends_and_moves_nothing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path, sandbox: SandboxServer
) -> None:
    folder = tmp_path / "outgoing"
    folder.mkdir()
    (folder / "enrollment_a.csv").write_bytes(CSV)
    env = {**upload_env(sandbox, tmp_path / "state"), "UPLOAD_SOURCE": f"{folder.as_uri()}/*.csv"}
    assert run(monkeypatch, env, "--dry-run") == exit_codes.OK
    assert "would_upload" in capsys.readouterr().out
    assert sum(sandbox.state.counters.values()) == 0
    assert [p.name for p in folder.iterdir()] == ["enrollment_a.csv"]
