"""Student records at rest: private folders, retention of what keeps failing, LEDGER_URL a secret."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from encoura_tasks.export.settings import RunSettings
from encoura_tasks.export.steps import ExportRuntime, make_private_dir, remove_expired_state, secure_state_dir
from ledger import ClaimOwner, Ledger


def test_state_dir_is_created_private_and_an_open_one_is_tightened(tmp_path: Path) -> None:
    secure_state_dir(tmp_path / "state")
    assert (tmp_path / "state").stat().st_mode & 0o777 == 0o700
    loose = tmp_path / "loose"
    loose.mkdir(mode=0o755)
    os.chmod(loose, 0o755)  # noqa: S103 - the loose folder this test tightens
    make_private_dir(loose)
    assert loose.stat().st_mode & 0o777 == 0o700


def _runtime(tmp_path: Path) -> ExportRuntime:
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.sqlite3'}")
    return ExportRuntime(
        client=None,  # type: ignore[arg-type]  # retention never talks to Encoura
        ledger=ledger,
        destinations={},
        settings=RunSettings(state_dir=tmp_path),
        owner=ClaimOwner.current("run-x"),
    )


def _age(path: Path, days: float) -> None:
    then = time.time() - days * 86400
    os.utime(path, (then, then))


def test_old_staged_copies_of_failing_exports_and_canvas_error_csvs_are_removed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rt = _runtime(tmp_path)
    rt.ledger.record_listed([("old", "aos"), ("new", "aos")])
    for uid, days in (("old", 31), ("new", 2)):
        folder = rt.staging_folder(uid)
        folder.mkdir(parents=True)
        (folder / "f.csv").write_text("x")
        _age(folder, days)
    canvas = tmp_path / "canvas"
    for import_id, days in (("101", 40), ("102", 1)):
        (canvas / import_id).mkdir(parents=True)
        (canvas / import_id / "errors.csv").write_text("row,error\n")
        _age(canvas / import_id / "errors.csv", days)
    with caplog.at_level("INFO"):
        removed = remove_expired_state(rt, tmp_path, 30)
    assert not rt.staging_folder("old").exists() and rt.staging_folder("new").exists()
    assert not (canvas / "101" / "errors.csv").exists() and (canvas / "102" / "errors.csv").exists()
    assert len(removed) == 2
    assert "older than STATE_RETENTION_DAYS=30" in caplog.text
    rt.ledger.close()


def test_ledger_url_is_a_secret(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    url = "postgresql+psycopg://ledger:hunter2-secret@db.example.edu/ledger"
    monkeypatch.setenv("LEDGER_URL", url)
    monkeypatch.setenv("STATE_RETENTION_DAYS", "7")
    settings = RunSettings(_env_file=None)  # type: ignore[call-arg]
    assert "hunter2" not in repr(settings) and "hunter2" not in str(settings.model_dump())
    assert settings.resolved_ledger_url == url
    assert settings.state_retention_days == 7
    monkeypatch.delenv("LEDGER_URL")
    monkeypatch.setenv("STATE_DIR", str(tmp_path))
    assert RunSettings(_env_file=None).resolved_ledger_url.endswith("ledger.sqlite3")  # type: ignore[call-arg]


def test_ledger_url_may_name_a_prefect_secret_block(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEDGER_URL", "prefect-secret:")
    from common.errors import ConfigError

    with pytest.raises(ConfigError, match="LEDGER_URL: 'prefect-secret:' must be followed by a Secret block name"):
        RunSettings(_env_file=None).resolved_ledger_url  # type: ignore[call-arg]  # noqa: B018
