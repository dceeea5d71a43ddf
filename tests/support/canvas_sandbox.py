"""Fixtures for the Canvas SIS import area: a real-HTTP Canvas sandbox and settings pointing at it."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from prefect.settings import PREFECT_API_URL, temporary_settings

from sandbox.canvas import CanvasSandbox
from sandbox.canvas.samples import demo_folder

FAST_POLL = 0.05


@pytest.fixture
def canvas_sandbox() -> Iterator[CanvasSandbox]:
    """A fresh sandbox per test on 127.0.0.1, OS-chosen port (xdist-safe)."""
    with CanvasSandbox() as sandbox:
        yield sandbox


@pytest.fixture
def canvas_env(
    canvas_sandbox: CanvasSandbox, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[dict[str, str]]:
    """CANVAS_* settings for the sandbox in this process (for in-process flows) and returned for
    subprocesses; state goes under tmp_path; retries back off in milliseconds."""
    env = {
        "CANVAS_BASE_URL": canvas_sandbox.base_url,
        "CANVAS_ACCOUNT_ID": canvas_sandbox.account_id,
        "CANVAS_ACCESS_TOKEN": canvas_sandbox.token,
        "CANVAS_RETRY_BACKOFF": "0.01",
        "STATE_DIR": str(tmp_path / "state"),
    }
    monkeypatch.delenv("ENCOURA_SLATE_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)  # a stray .env in the repo must not leak into tests
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    api_url = os.environ.get("PREFECT_API_URL")
    if not api_url:
        yield {**os.environ, **env}
        return
    # Prefect reads its settings from the environment once, at import; test modules import it at
    # collection, before the session server sets PREFECT_API_URL. Without this, every in-process
    # flow would start its own temporary server (~10 s each).
    with temporary_settings(updates={PREFECT_API_URL: api_url}):
        yield {**os.environ, **env}


@pytest.fixture
def sis_folder(tmp_path: Path) -> Path:
    """A copy of the demo SIS CSVs (with two data problems that Canvas reports as warnings)."""
    target = tmp_path / "sis_export"
    shutil.copytree(demo_folder(), target)
    return target


@pytest.fixture
def clean_users_csv(tmp_path: Path) -> Path:
    path = tmp_path / "users.csv"
    path.write_text(
        "user_id,login_id,first_name,last_name,email,status\r\n"
        "U100,kim.p,Kim,Park,kim@example.edu,active\r\n"
        "U101,lee.j,Lee,Jones,lee@example.edu,active\r\n",
        encoding="utf-8",
    )
    return path
