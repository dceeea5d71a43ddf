"""`python -m flows.canvas_sis_import` as a scheduler runs it: exit codes and messages, no tracebacks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from common.cli import run_cli
from flows.canvas_sis_import import main
from sandbox.canvas import CanvasSandbox

REPO = Path(__file__).resolve().parents[2]


def in_process(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """The same entry point without a new interpreter (the env comes from the canvas_env fixture)."""
    with pytest.raises(SystemExit) as info:
        run_cli(lambda: main(list(args)))
    out, err = capsys.readouterr()
    return int(info.value.code or 0), out, err


def cli(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flows.canvas_sis_import", *args],
        env={**env, "PYTHONPATH": str(REPO)},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_sandbox_demo_imports_with_warnings(tmp_path: Path, canvas_env: dict[str, str]) -> None:
    env = {k: v for k, v in canvas_env.items() if not k.startswith("CANVAS_")}
    result = cli("--sandbox", "--poll-interval", "0.05", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "imported with 2 warning(s)" in result.stdout
    assert "Counts:" in result.stdout and "users=3" in result.stdout
    assert "errors.csv" in result.stdout
    assert "Traceback" not in result.stderr


def test_invalid_options_exit_2_before_any_request(
    tmp_path: Path, canvas_env: dict[str, str], canvas_sandbox: CanvasSandbox, clean_users_csv: Path
) -> None:
    result = cli(
        str(clean_users_csv),
        "--batch-mode",
        "--add-sis-stickiness",
        "--diffing-drop-status",
        "completed",
        env=canvas_env,
        cwd=tmp_path,
    )
    assert result.returncode == 2
    for name in ("--batch-mode-term-id", "--override-sis-stickiness", "--diffing-data-set-identifier"):
        assert name in result.stderr
    assert "Traceback" not in result.stderr
    assert canvas_sandbox.state.request_count == 0


def test_bad_input_and_missing_settings_exit_2(
    tmp_path: Path,
    canvas_env: dict[str, str],
    canvas_sandbox: CanvasSandbox,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    bogus = tmp_path / "users.csv"
    bogus.write_bytes(b"PK\x03\x04not really a csv")
    code, _, err = in_process(capsys, str(bogus))
    assert code == 2 and "named .csv but its content is zip" in err
    code, _, err = in_process(capsys, str(tmp_path / "nowhere"))
    assert code == 2 and "does not exist" in err
    code, _, err = in_process(capsys, str(bogus), "--poll-interval", "0")
    assert code == 2 and "--poll-interval" in err

    for name in ("CANVAS_BASE_URL", "CANVAS_ACCOUNT_ID", "CANVAS_ACCESS_TOKEN"):
        monkeypatch.delenv(name)
    code, _, err = in_process(capsys, str(bogus))
    assert code == 2
    assert all(n in err for n in ("CANVAS_BASE_URL", "CANVAS_ACCOUNT_ID", "CANVAS_ACCESS_TOKEN"))
    assert "Traceback" not in err
    assert canvas_sandbox.state.request_count == 0


def test_rejected_token_exits_2_without_retrying_or_leaking(
    canvas_env: dict[str, str],
    canvas_sandbox: CanvasSandbox,
    clean_users_csv: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("CANVAS_ACCESS_TOKEN", "7~wrong-token-value")
    code, out, err = in_process(capsys, str(clean_users_csv))
    assert code == 2
    assert "CANVAS_ACCESS_TOKEN was rejected" in err
    assert "wrong-token-value" not in out + err and "Traceback" not in err
    assert canvas_sandbox.state.request_count == 1


def test_non_root_account_shows_canvas_message(
    canvas_env: dict[str, str],
    canvas_sandbox: CanvasSandbox,
    clean_users_csv: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("CANVAS_ACCOUNT_ID", "2")
    code, _, err = in_process(capsys, str(clean_users_csv))
    assert code == 2
    assert "SIS imports can only be executed on root accounts" in err
    assert "CANVAS_ACCOUNT_ID" in err
    assert canvas_sandbox.state.request_count == 1


def test_failed_import_exits_1_in_a_subprocess(
    tmp_path: Path, canvas_env: dict[str, str], canvas_sandbox: CanvasSandbox, clean_users_csv: Path
) -> None:
    canvas_sandbox.state.default_scenario = "failed_with_messages"
    result = cli(str(clean_users_csv), "--poll-interval", "0.05", env=canvas_env, cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    [import_id] = canvas_sandbox.state.imports
    assert f"import {import_id} ended failed_with_messages" in result.stderr
    assert "errors.csv" in result.stderr
    assert "Traceback" not in result.stderr
    assert canvas_sandbox.token not in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("args", "scenario", "code", "expected"),
    [
        (["--no-watch"], "slow", 0, "not watching"),
        (["--timeout", "0.2"], "slow", 1, "still running"),
        (["--fail-on-warnings"], "with_warnings", 1, "--fail-on-warnings"),
    ],
)
def test_outcome_exit_codes(
    canvas_env: dict[str, str],
    canvas_sandbox: CanvasSandbox,
    clean_users_csv: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    scenario: str,
    code: int,
    expected: str,
) -> None:
    canvas_sandbox.state.default_scenario = scenario
    rc, out, err = in_process(capsys, str(clean_users_csv), "--poll-interval", "0.05", *args)
    assert rc == code, err
    assert expected in out + err
    [import_id] = canvas_sandbox.state.imports
    if "--no-watch" in args:
        assert out.splitlines()[0] == str(import_id)
    if code == 1:
        assert f"import {import_id}" in err or f"import id {import_id}" in err


def test_unknown_batch_term_404_exits_2_naming_the_setting(
    canvas_env: dict[str, str],
    canvas_sandbox: CanvasSandbox,
    clean_users_csv: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    canvas_sandbox.state.known_term_ids = {"T2026F"}
    code, _, err = in_process(capsys, str(clean_users_csv), "--batch-mode", "--batch-mode-term-id", "T1999")
    assert code == 2
    # Canvas answers 404 for a term it does not know; the message names the option to fix, not "not found".
    assert "--batch-mode-term-id" in err and "'T1999'" in err and "404" in err
    assert len(canvas_sandbox.state.submissions()) == 1 and not canvas_sandbox.state.imports
