"""Named upload sources (UPLOAD_SOURCES__<NAME>__*): one run serves a local folder and a real SFTP server,
each with its own product type, credentials and archive folder; the report names the source."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from common import exit_codes
from sandbox.encoura import SandboxServer
from tests.integration.test_upload_flow import latest_artifact, run, upload_env

CSV = b'StudentID,FirstName,LastName,ZIP\n000123,Ana,Lopez,"01234"\n000124,"Kim, Jr.",Park,"02139"\n'
EMATCH = b'StudentID,FirstName,LastName,ZIP\n000900,Lee,Kim,"60601"\n'


@pytest.fixture
def sandbox(encoura_sandbox: SandboxServer) -> SandboxServer:
    encoura_sandbox.configure(upload_status_steps=1)
    return encoura_sandbox


def _clear_upload_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.upper().startswith("UPLOAD_"):
            monkeypatch.delenv(name)


def test_two_named_sources_one_run(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path, sandbox: SandboxServer,
    sftp_server: Any,  # the repo's asyncssh server fixture
) -> None:
    _clear_upload_env(monkeypatch)
    share = tmp_path / "share" / "ematch"
    share.mkdir(parents=True)
    (share / "ematch_week.csv").write_bytes(EMATCH)
    remote = sftp_server.root / "outgoing" / "enrollment"
    remote.mkdir(parents=True)
    (remote / "enrollment_fall.csv").write_bytes(CSV)

    env = upload_env(sandbox, tmp_path / "state")
    del env["UPLOAD_PRODUCT_TYPE"]  # no single source at all: only the named ones
    env.update({
        "UPLOAD_SOURCES__ENROLLMENT__URL": sftp_server.url("/outgoing/enrollment/*.csv"),
        "UPLOAD_SOURCES__ENROLLMENT__PRODUCT_TYPE": "enrollment",
        "UPLOAD_SOURCES__ENROLLMENT__PASSWORD": sftp_server.password,
        "UPLOAD_SOURCES__ENROLLMENT__HOST_KEY": sftp_server.host_key_line,
        "UPLOAD_SOURCES__EMATCH__URL": f"{share.as_uri()}/*.csv",
        "UPLOAD_SOURCES__EMATCH__PRODUCT_TYPE": "ematch",
        "UPLOAD_SOURCES__EMATCH__ARCHIVE_DIR": "sent",
    })
    assert run(monkeypatch, env) == exit_codes.OK
    out = capsys.readouterr().out

    by_name = {u.file_name: u for u in sandbox.state.uploads.values()}
    assert by_name["enrollment_fall.csv"].product_type == "enrollment"
    assert by_name["ematch_week.csv"].product_type == "ematch"
    assert (remote / "processed" / "enrollment_fall.csv").read_bytes() == CSV  # each source its own archive
    assert (share / "sent" / "ematch_week.csv").read_bytes() == EMATCH
    assert not (remote / "enrollment_fall.csv").exists() and not (share / "ematch_week.csv").exists()

    assert "enrollment: enrollment_fall.csv" in out and "ematch: ematch_week.csv" in out
    assert sftp_server.password not in out
    rows = {row["file"]: row for row in latest_artifact("encoura-upload-files")}
    assert rows["enrollment_fall.csv"]["source"] == "enrollment"
    assert rows["ematch_week.csv"]["source"] == "ematch"


def test_same_file_from_two_sources_is_sent_once(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path, sandbox: SandboxServer
) -> None:
    """Same name, same bytes, same product type from two folders is one upload to Encoura (the ledger key
    is content + name + product type, not the folder): sending it twice would duplicate the records."""
    _clear_upload_env(monkeypatch)
    env = upload_env(sandbox, tmp_path / "state")
    for name in ("a", "b"):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "enrollment.csv").write_bytes(CSV)
        env[f"UPLOAD_SOURCES__{name.upper()}__URL"] = f"{folder.as_uri()}/*.csv"
        env[f"UPLOAD_SOURCES__{name.upper()}__PRODUCT_TYPE"] = "enrollment"
    del env["UPLOAD_PRODUCT_TYPE"]
    assert run(monkeypatch, env) == exit_codes.OK
    assert len(sandbox.state.uploads_received) == 1
    out = capsys.readouterr().out
    assert "a: enrollment.csv" in out and "b: enrollment.csv" in out
    rows = {row["source"]: row for row in latest_artifact("encoura-upload-files")}
    assert rows["a"]["status"] == "done" and rows["b"]["status"] == "already_uploaded"
    assert (tmp_path / "a" / "processed" / "enrollment.csv").exists()
    assert (tmp_path / "b" / "enrollment.csv").exists()  # the duplicate is reported, not sent, left in place


def test_single_source_env_still_works_as_default(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path, sandbox: SandboxServer
) -> None:
    _clear_upload_env(monkeypatch)
    folder = tmp_path / "outgoing"
    folder.mkdir()
    (folder / "enrollment_old.csv").write_bytes(CSV)
    env = upload_env(sandbox, tmp_path / "state", UPLOAD_SOURCE=f"{folder.as_uri()}/enrollment_*")
    assert run(monkeypatch, env) == exit_codes.OK
    assert (folder / "processed" / "enrollment_old.csv").read_bytes() == CSV
    assert "default: enrollment_old.csv" in capsys.readouterr().out
    assert latest_artifact("encoura-upload-files")[0]["source"] == "default"
