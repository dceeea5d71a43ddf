"""A Canvas input folder on SFTP is read through the destinations layer: host keys verified, credentials
from CANVAS_SOURCE_* settings (plain fsspec would silently skip host-key checking)."""

from __future__ import annotations

import io
import shutil
import zipfile
from pathlib import Path

import pytest

from common.errors import ConfigError
from flows.canvas_sis_import import canvas_sis_import
from sandbox.canvas import CanvasSandbox
from tests.support.canvas_sandbox import FAST_POLL


def test_sftp_folder_is_zipped_and_submitted(
    canvas_env: dict[str, str], canvas_sandbox: CanvasSandbox, sis_folder: Path, sftp_server, monkeypatch
) -> None:
    shutil.copytree(sis_folder, sftp_server.root / "outgoing" / "sis")
    monkeypatch.setenv("CANVAS_SOURCE_PASSWORD", sftp_server.password)
    monkeypatch.setenv("CANVAS_SOURCE_HOST_KEY", sftp_server.host_key_line)
    state = canvas_sis_import(sftp_server.url("/outgoing/sis"), poll_interval=FAST_POLL, timeout=30, return_state=True)
    assert state.result(raise_on_failure=False).exit_code == 0
    [sent] = canvas_sandbox.state.submissions()
    with zipfile.ZipFile(io.BytesIO(sent.files["attachment"][2])) as zf:
        assert {n: zf.read(n) for n in zf.namelist()} == {p.name: p.read_bytes() for p in sis_folder.iterdir()}


def test_sftp_source_without_host_key_setting_is_refused(
    canvas_env: dict[str, str], canvas_sandbox: CanvasSandbox, sftp_server, monkeypatch, tmp_path: Path
) -> None:
    from canvas_tasks.sis_import.packaging import check_input

    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.ssh/known_hosts to fall back on
    monkeypatch.setenv("CANVAS_SOURCE_PASSWORD", sftp_server.password)
    with pytest.raises(ConfigError, match=r"CANVAS_SOURCE_HOST_KEY|host key verification"):
        check_input(sftp_server.url("/outgoing/sis"), tmp_path / "staging")
    assert sftp_server.connections_opened == 0
    assert canvas_sandbox.state.submissions() == []
