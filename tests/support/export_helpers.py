"""Helpers for tests that run the real export flow against the sandbox and real destinations."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]

# Fast but realistic: no waiting between Prefect task retries in tests.
FAST_ENV = {
    "TASK_RETRY_DELAY_SECONDS": "0",
    "ENCOURA_TIMEOUT_SECONDS": "10",
    "PREFECT_LOGGING_LEVEL": "INFO",
}


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def files_under(root: Path) -> dict[str, bytes]:
    """Every regular file under root (relative posix path -> bytes), temp names included."""
    if not root.exists():
        return {}
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def sftp_destination_env(name: str, server: Any, path: str = "/incoming", *, create: bool = True) -> dict[str, str]:
    """Env for an SFTP destination on the test server; its root folder is made first (`create`), as
    an operator would: a missing root is a settings error the run refuses (exit 2)."""
    if create:
        (server.root / path.strip("/")).mkdir(parents=True, exist_ok=True)
    prefix = f"DESTINATIONS__{name.upper()}__"
    return {
        prefix + "URL": server.url(path),
        prefix + "PASSWORD": server.password,
        prefix + "HOST_KEY": server.host_key_line,
    }


def local_destination_env(
    name: str, folder: Path, template: str | None = None, *, create: bool = True
) -> dict[str, str]:
    """Env for a local-folder destination; the folder is made first unless something (a test's
    deliberate file, say) is already there, or `create=False` (a missing root is refused, exit 2)."""
    if create and not folder.exists():
        folder.mkdir(parents=True)
    prefix = f"DESTINATIONS__{name.upper()}__"
    env = {prefix + "URL": folder.as_uri()}
    if template:
        env[prefix + "PATH_TEMPLATE"] = template
    return env


@contextmanager
def environment(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> Iterator[None]:
    for key in [k for k in os.environ if k.upper().startswith(("DESTINATIONS__", "ENCOURA_", "UPLOAD_", "CANVAS_"))]:
        monkeypatch.delenv(key)
    for key, value in {**FAST_ENV, **env}.items():
        monkeypatch.setenv(key, value)
    yield


def run_export_in_process(monkeypatch: pytest.MonkeyPatch, env: dict[str, str], **params: Any) -> Any:
    """Run the flow in this process against the session Prefect server; returns the final State."""
    from flows.encoura_export import encoura_export

    with environment(monkeypatch, env):
        return encoura_export(return_state=True, **params)


def run_export_cli(env: dict[str, str], *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """`python -m flows.encoura_export` in a subprocess with exactly this environment (plus PATH/Prefect)."""
    keep = {k: v for k, v in os.environ.items() if k.startswith(("PREFECT_", "PATH", "HOME", "LANG", "PYTHON"))}
    return subprocess.run(
        [sys.executable, "-m", "flows.encoura_export", *args],
        cwd=env.get("CWD", str(REPO)),
        env={**keep, **FAST_ENV, **{k: v for k, v in env.items() if k != "CWD"}},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
