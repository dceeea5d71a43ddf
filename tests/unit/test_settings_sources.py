"""Settings come from env, .env and one TOML file; every problem is listed at once by its variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from common.errors import ConfigError
from encoura_tasks.export.settings import load_export_settings

ENV_PREFIXES = ("ENCOURA_", "DESTINATIONS__", "STATE_DIR", "LEDGER_URL")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import os

    for key in list(os.environ):
        if key.upper().startswith(ENV_PREFIXES):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)  # no stray .env


def test_toml_file_tables_rank_below_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = tmp_path / "encoura-slate.toml"
    config.write_text(
        """
state_dir = "/srv/encoura/state"

[encoura]
api_key = "from-file"
username = "svc@college.edu"
password = "file-password"
product_keys = ["prospect", "score-reporter"]

[destinations.slate]
url = "file:///srv/slate"
path_template = "{product_key}/{filename}"
"""
    )
    monkeypatch.setenv("ENCOURA_SLATE_CONFIG", str(config))
    monkeypatch.setenv("ENCOURA_PASSWORD", "env-password")
    encoura, run = load_export_settings()
    assert encoura.api_key.get_secret_value() == "from-file"
    assert encoura.password.get_secret_value() == "env-password"  # env wins over the file
    assert encoura.product_keys == ["prospect", "score-reporter"]
    assert run.state_dir == Path("/srv/encoura/state")
    assert run.destinations["slate"].path_template == "{product_key}/{filename}"
    assert "env-password" not in repr(encoura) and "from-file" not in repr(encoura)


def test_dotenv_file_is_read(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(
        "ENCOURA_API_KEY=k\nENCOURA_USERNAME=u\nENCOURA_PASSWORD=p\nENCOURA_PRODUCT_KEYS=prospect, inquiry\n"
        "DESTINATIONS__SHARE__URL=file:///tmp/share\n"
    )
    encoura, run = load_export_settings()
    assert encoura.product_keys == ["prospect", "inquiry"]
    assert list(run.destinations) == ["share"]


def test_every_problem_named_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENCOURA_BASE_URL", "http://api.example.com/v1")
    monkeypatch.setenv("ENCOURA_AUTH_SCHEME", "Basic")
    monkeypatch.setenv("ENCOURA_PRODUCT_KEYS", "prospect,bogus")
    monkeypatch.setenv("DESTINATIONS__SLATE__URL", "sftp://user:hunter2@ft.example.com/incoming")
    monkeypatch.setenv(
        "DESTINATIONS__SLATE__HOST_KEY",
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl",
    )
    monkeypatch.setenv("DESTINATIONS__SHARE__URL", "nosuchproto://x")
    monkeypatch.setenv("DESTINATIONS__SHARE__PATH_TEMPLATE", "/abs/{filename}")
    with pytest.raises(ConfigError) as info:
        load_export_settings()
    text = str(info.value)
    for name in (
        "ENCOURA_API_KEY",
        "ENCOURA_USERNAME",
        "ENCOURA_PASSWORD",
        "ENCOURA_BASE_URL",
        "ENCOURA_AUTH_SCHEME",
        "ENCOURA_PRODUCT_KEYS",
        "DESTINATIONS__SLATE__URL",
        "DESTINATIONS__SHARE__URL",
        "DESTINATIONS__SHARE__PATH_TEMPLATE",
    ):
        assert name in text, name
    assert "hunter2" not in text


def test_missing_config_file_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ENCOURA_SLATE_CONFIG", str(tmp_path / "nope.toml"))
    with pytest.raises(ConfigError, match="ENCOURA_SLATE_CONFIG"):
        load_export_settings()
