"""Settings name the variable to fix and never show the token."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from canvas_tasks.api.auth import CanvasTokenAuth
from canvas_tasks.api.client import CanvasSisClient
from canvas_tasks.sis_import.settings import load_canvas_settings
from common.errors import ConfigError


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("CANVAS_BASE_URL", "CANVAS_ACCOUNT_ID", "CANVAS_ACCESS_TOKEN", "ENCOURA_SLATE_CONFIG", "STATE_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


def test_missing_settings_are_all_named(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError) as info:
        load_canvas_settings()
    text = info.value.render()
    for name in ("CANVAS_BASE_URL", "CANVAS_ACCOUNT_ID", "CANVAS_ACCESS_TOKEN"):
        assert name in text


def test_invalid_values_are_named_and_not_echoed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CANVAS_BASE_URL", "school.instructure.com")
    monkeypatch.setenv("CANVAS_ACCOUNT_ID", "abc")
    monkeypatch.setenv("CANVAS_ACCESS_TOKEN", "1~supersecret")
    with pytest.raises(ConfigError) as info:
        load_canvas_settings()
    text = info.value.render()
    assert "CANVAS_BASE_URL" in text and "CANVAS_ACCOUNT_ID" in text
    assert "supersecret" not in text


def test_token_never_in_reprs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CANVAS_BASE_URL", "https://school.instructure.com/api/v1/")
    monkeypatch.setenv("CANVAS_ACCOUNT_ID", "1")
    monkeypatch.setenv("CANVAS_ACCESS_TOKEN", "1~supersecret")
    settings = load_canvas_settings()
    assert settings.base_url == "https://school.instructure.com"
    assert "supersecret" not in repr(settings) and "supersecret" not in str(settings.model_dump())
    assert settings.token() == "1~supersecret"
    client = CanvasSisClient(settings.base_url, settings.account_id, settings.token)
    assert "supersecret" not in repr(client) and "supersecret" not in repr(client._http.auth)
    client.close()


def test_toml_canvas_table_is_below_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[canvas]\nbase_url = "https://toml.example.edu"\naccount_id = "3"\naccess_token = "t"\n')
    monkeypatch.setenv("ENCOURA_SLATE_CONFIG", str(config))
    monkeypatch.setenv("CANVAS_ACCOUNT_ID", "1")
    settings = load_canvas_settings()
    assert (settings.base_url, settings.account_id) == ("https://toml.example.edu", "1")


def test_bearer_only_sent_to_the_canvas_origin() -> None:
    auth = CanvasTokenAuth(lambda: "tok", "https://school.instructure.com")
    same = next(auth.auth_flow(httpx.Request("GET", "https://school.instructure.com/api/v1/x")))
    other = next(auth.auth_flow(httpx.Request("GET", "https://files.example.com/errors.csv?sig=1")))
    assert same.headers["Authorization"] == "Bearer tok"
    assert "Authorization" not in other.headers
