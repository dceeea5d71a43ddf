"""`python -m flows.check`: one table, one row per peer, each failure with its own fix; exit 0/1/2.

Real peers on loopback: the Encoura sandbox, an asyncssh SFTP server (wrong pinned key, wrong
password, a folder the account may not write), a local folder, and the Canvas sandbox.
"""

from __future__ import annotations

import os
from pathlib import Path

import asyncssh
import pytest

from common import exit_codes
from common.cli import run_cli
from flows import check
from sandbox.canvas import CanvasSandbox
from sandbox.encoura import SandboxServer
from tests.support.sftp_server import SFTPTestServer


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    for key in list(os.environ):
        if key.upper().startswith(("DESTINATIONS__", "ENCOURA_", "CANVAS_", "UPLOAD_", "LEDGER_URL", "STATE_DIR")):
            monkeypatch.delenv(key, raising=False)
    monkeypatch.chdir(tmp_path)  # no stray .env
    monkeypatch.setenv("STATE_DIR", str(tmp_path / "state"))
    return monkeypatch


def _sftp(env: pytest.MonkeyPatch, name: str, server: SFTPTestServer, path: str, **fields: str) -> None:
    env.setenv(f"DESTINATIONS__{name}__URL", server.url(path))
    env.setenv(f"DESTINATIONS__{name}__PASSWORD", fields.get("password", server.password))
    env.setenv(f"DESTINATIONS__{name}__HOST_KEY", fields.get("host_key", server.host_key_line))


def _run(capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    with pytest.raises(SystemExit) as info:
        run_cli(lambda: check.main([]))
    captured = capsys.readouterr()
    return int(info.value.code or 0), captured.out + captured.err


def _row(output: str, check_name: str) -> str:
    """The table lines of one row (its detail and FIX line), for assertions about that row only."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(check_name))
    rest = [lines[start]]
    for line in lines[start + 1 :]:
        if line and not line.startswith(" "):
            break
        rest.append(line)
    return "\n".join(rest)


def test_everything_reachable_exits_0(
    clean_env: pytest.MonkeyPatch,
    encoura_sandbox: SandboxServer,
    sftp_server: SFTPTestServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for key, value in encoura_sandbox.env().items():
        clean_env.setenv(key, value)
    (sftp_server.root / "incoming").mkdir()
    _sftp(clean_env, "SLATE", sftp_server, "/incoming")
    (tmp_path / "share").mkdir(exist_ok=True)  # a destination's root folder must exist
    clean_env.setenv("DESTINATIONS__SHARE__URL", (tmp_path / "share").as_uri())
    outgoing = tmp_path / "outgoing"
    outgoing.mkdir()
    (outgoing / "enrollment_2026.csv").write_text('"id","name"\n"1","A"\n')
    clean_env.setenv("UPLOAD_SOURCE", outgoing.as_uri() + "/*.csv")
    clean_env.setenv("UPLOAD_PRODUCT_TYPE", "enrollment")
    clean_env.setenv("CANVAS_SIS_SOURCE", str(tmp_path / "sis"))  # not a Canvas setup by itself
    code, out = _run(capsys)
    assert code == exit_codes.OK, out
    assert "FAILED" not in out and "Canvas" not in out
    assert "1 file(s) waiting" in _row(out, "Upload source")
    assert [p.name for p in outgoing.iterdir()] == ["enrollment_2026.csv"], "nothing moved, probe removed"
    assert encoura_sandbox.credentials["organization_uid"] in _row(out, "Encoura login")
    assert "Destination slate" in out and "Destination share" in out
    assert list((sftp_server.root / "incoming").iterdir()) == [], "the probe file is removed"
    assert sftp_server.password not in out


def test_wrong_host_key_wrong_password_unwritable_folder_each_reported_with_its_fix(
    clean_env: pytest.MonkeyPatch,
    encoura_sandbox: SandboxServer,
    sftp_server: SFTPTestServer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for key, value in encoura_sandbox.env().items():
        clean_env.setenv(key, value)
    (sftp_server.root / "incoming").mkdir()
    (sftp_server.root / "locked").mkdir()
    sftp_server.deny_write = ["locked"]
    other_key = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode().strip()
    _sftp(clean_env, "GOOD", sftp_server, "/incoming")
    _sftp(clean_env, "WRONGKEY", sftp_server, "/incoming", host_key=other_key)
    _sftp(clean_env, "BADPW", sftp_server, "/incoming", password="not the password")
    _sftp(clean_env, "LOCKED", sftp_server, "/locked")

    code, out = _run(capsys)

    assert code == exit_codes.CONFIG_ERROR, out
    assert sum("  FAILED  " in line for line in out.splitlines()) == 3, out
    assert "OK" in _row(out, "Destination good")
    wrong_key = _row(out, "Destination wrongkey")
    assert "FAILED" in wrong_key and "fingerprint" in wrong_key and "DESTINATIONS__WRONGKEY__HOST_KEY" in wrong_key
    bad_pw = _row(out, "Destination badpw")
    assert "FAILED" in bad_pw and "authentication failed" in bad_pw and "DESTINATIONS__BADPW__PASSWORD" in bad_pw
    locked = _row(out, "Destination locked")
    assert "FAILED" in locked and "write access" in locked and "DESTINATIONS__LOCKED__URL" in locked
    assert "not the password" not in out and sftp_server.password not in out
    assert "Traceback" not in out


def test_wrong_encoura_password_and_canvas_token(
    clean_env: pytest.MonkeyPatch,
    encoura_sandbox: SandboxServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    request: pytest.FixtureRequest,
) -> None:
    for key, value in encoura_sandbox.env().items():
        clean_env.setenv(key, value)
    clean_env.setenv("ENCOURA_PASSWORD", "wrong-password-123")
    (tmp_path / "share").mkdir(exist_ok=True)  # a destination's root folder must exist
    clean_env.setenv("DESTINATIONS__SHARE__URL", (tmp_path / "share").as_uri())
    code, out = _run(capsys)
    assert code == exit_codes.CONFIG_ERROR
    encoura = _row(out, "Encoura login")
    assert "FAILED" in encoura and "ENCOURA_PASSWORD" in encoura
    assert "wrong-password-123" not in out
    assert "OK" in _row(out, "Destination share")


def test_bad_settings_exit_2_before_any_network_call(
    clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    clean_env.setenv("ENCOURA_BASE_URL", "https://api-datalab.encoura.org/v1")
    clean_env.setenv("DESTINATIONS__SLATE__URL", "sftp://user@ft.technolutions.net/incoming")
    clean_env.setenv("DESTINATIONS__SLATE__HOST_KEY", "not a key")
    code, out = _run(capsys)
    assert code == exit_codes.CONFIG_ERROR
    assert "ENCOURA_API_KEY" in out and "DESTINATIONS__SLATE__HOST_KEY" in out
    assert "Traceback" not in out and "Check " not in out


def test_canvas_token_checked_when_configured(
    clean_env: pytest.MonkeyPatch,
    encoura_sandbox: SandboxServer,
    canvas_sandbox: CanvasSandbox,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for key, value in encoura_sandbox.env().items():
        clean_env.setenv(key, value)
    (tmp_path / "share").mkdir(exist_ok=True)  # a destination's root folder must exist
    clean_env.setenv("DESTINATIONS__SHARE__URL", (tmp_path / "share").as_uri())
    clean_env.setenv("CANVAS_BASE_URL", canvas_sandbox.base_url)
    clean_env.setenv("CANVAS_ACCOUNT_ID", canvas_sandbox.account_id)
    clean_env.setenv("CANVAS_ACCESS_TOKEN", canvas_sandbox.token)
    code, out = _run(capsys)
    assert code == exit_codes.OK, out
    assert "Sandbox University" in _row(out, "Canvas token")

    clean_env.setenv("CANVAS_ACCESS_TOKEN", "expired-token-xyz")
    code, out = _run(capsys)
    assert code == exit_codes.CONFIG_ERROR
    canvas = _row(out, "Canvas token")
    assert "FAILED" in canvas and "CANVAS_ACCESS_TOKEN" in canvas
    assert "expired-token-xyz" not in out and canvas_sandbox.token not in out


def test_whole_publish_path_rename_rights_missing_root_and_host_key_shown(
    clean_env: pytest.MonkeyPatch,
    encoura_sandbox: SandboxServer,
    make_sftp_server: object,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for key, value in encoura_sandbox.env().items():
        clean_env.setenv(key, value)
    good = make_sftp_server()  # type: ignore[operator]
    norename = make_sftp_server(deny_rename=True)  # type: ignore[operator]
    for server in (good, norename):
        (server.root / "incoming").mkdir()
    _sftp(clean_env, "GOOD", good, "/incoming")
    clean_env.setenv("DESTINATIONS__GOOD__PATH_TEMPLATE", "{product_key}/{filename}")
    _sftp(clean_env, "NORENAME", norename, "/incoming")
    _sftp(clean_env, "TYPO", good, "/incoming/Encora")

    code, out = _run(capsys)

    assert code == exit_codes.CONFIG_ERROR, out
    ok = _row(out, "Destination good")
    assert "OK" in ok and "renamed it" in ok and "made a subfolder" in ok, out
    key = asyncssh.import_public_key(good.host_key_line)
    assert good.host_key_line in ok and key.get_fingerprint("sha256") in ok and key.get_fingerprint("md5") in ok
    assert list((good.root / "incoming").iterdir()) == [], "probe file, temp and subfolder removed"
    no_rename = _row(out, "Destination norename")
    assert "FAILED" in no_rename and "rename" in no_rename and "rename rights" in no_rename, out
    assert list((norename.root / "incoming").iterdir()) == [], "the temp is removed even when rename fails"
    typo = _row(out, "Destination typo")
    assert "FAILED" in typo and "/incoming/Encora" in typo and good.host in typo, out
    assert not (good.root / "incoming" / "Encora").exists()
    assert "Traceback" not in out


@pytest.mark.parametrize("algo", ["sha256", "md5"])
def test_host_key_pinned_by_fingerprint_right_and_wrong(
    clean_env: pytest.MonkeyPatch,
    encoura_sandbox: SandboxServer,
    sftp_server: SFTPTestServer,
    capsys: pytest.CaptureFixture[str],
    algo: str,
) -> None:
    for key, value in encoura_sandbox.env().items():
        clean_env.setenv(key, value)
    (sftp_server.root / "incoming").mkdir()
    right = asyncssh.import_public_key(sftp_server.host_key_line).get_fingerprint(algo)
    wrong = asyncssh.generate_private_key("ssh-ed25519").get_fingerprint(algo)
    _sftp(clean_env, "RIGHT", sftp_server, "/incoming", host_key=right)
    _sftp(clean_env, "WRONG", sftp_server, "/incoming", host_key=wrong)

    code, out = _run(capsys)

    assert code == exit_codes.CONFIG_ERROR, out
    assert "OK" in _row(out, "Destination right"), out
    wrong_row = _row(out, "Destination wrong")
    assert "FAILED" in wrong_row and "not trusted" in wrong_row and "DESTINATIONS__WRONG__HOST_KEY" in wrong_row
    seen = asyncssh.import_public_key(sftp_server.host_key_line).get_fingerprint("sha256")
    assert seen in wrong_row


def test_named_upload_sources_are_each_checked(
    clean_env: pytest.MonkeyPatch,
    encoura_sandbox: SandboxServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """UPLOAD_SOURCES__<NAME>__* alone is an upload setup: every source is probed, a bad one fails by name."""
    for key, value in encoura_sandbox.env().items():
        clean_env.setenv(key, value)
    good = tmp_path / "enrollment"
    good.mkdir()
    (good / "a.csv").write_text('"id"\n"1"\n')
    clean_env.setenv("UPLOAD_SOURCES__ENROLLMENT__URL", good.as_uri() + "/*.csv")
    clean_env.setenv("UPLOAD_SOURCES__ENROLLMENT__PRODUCT_TYPE", "enrollment")
    clean_env.setenv("UPLOAD_SOURCES__EMATCH__URL", (tmp_path / "missing").as_uri() + "/*.csv")
    clean_env.setenv("UPLOAD_SOURCES__EMATCH__PRODUCT_TYPE", "ematch")
    code, out = _run(capsys)
    assert code != exit_codes.OK
    assert "1 file(s) waiting" in out and str(good.as_uri()) in out
    assert "missing" in out and "FAILED" in out
