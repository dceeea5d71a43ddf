"""UPLOAD_* settings: one ConfigError naming every wrong env var, nothing echoed that could be secret."""

from __future__ import annotations

from pathlib import Path

import pytest

from common.errors import ConfigError
from common.polling import poll_until
from encoura_tasks.upload.settings import load_upload_settings, split_source

HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import os

    for name in list(os.environ):
        if name.upper().startswith(("UPLOAD_", "ENCOURA_SLATE_CONFIG")):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # no stray .env
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.ssh/known_hosts to fall back on


@pytest.mark.parametrize(
    ("url", "folder", "pattern"),
    [
        ("sftp://slate@ft.technolutions.net/outgoing/enrollment_*.csv", "sftp://slate@ft.technolutions.net/outgoing",
         "enrollment_*.csv"),
        ("file:///mnt/share/encoura/*.csv", "file:///mnt/share/encoura", "*.csv"),
        ("sftp://h:2222/out/*/e.csv", "sftp://h:2222/out", "*/e.csv"),
        ("file:///mnt/share/one.csv", "file:///mnt/share", "one.csv"),
        ("/mnt/share/x_?.csv", "/mnt/share", "x_?.csv"),
    ],
)
def test_split_source(url: str, folder: str, pattern: str) -> None:
    spec = split_source(url)
    assert (spec.folder_url, spec.pattern) == (folder, pattern)


def test_defaults_and_source_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("UPLOAD_SOURCE", f"{tmp_path.as_uri()}/enrollment_*.csv")
    monkeypatch.setenv("UPLOAD_PRODUCT_TYPE", " Enrollment ")
    settings, config = load_upload_settings()
    assert settings.product_type == "enrollment"
    assert (settings.archive_dir, settings.failed_dir) == ("processed", "failed")
    assert config.url == tmp_path.as_uri()


def test_sftp_source_gets_destination_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UPLOAD_SOURCE", "sftp://slate@ft.technolutions.net/outgoing/enrollment_*.csv")
    monkeypatch.setenv("UPLOAD_SOURCE_PASSWORD", "hunter2-secret")
    monkeypatch.setenv("UPLOAD_SOURCE_HOST_KEY", HOST_KEY)
    monkeypatch.setenv("UPLOAD_PRODUCT_TYPE", "ematch")
    settings, config = load_upload_settings()
    assert config.is_sftp and config.host_key == HOST_KEY
    assert config.password is not None and config.password.get_secret_value() == "hunter2-secret"
    assert "hunter2" not in repr(settings) and "hunter2" not in repr(config)


def test_every_problem_at_once_by_env_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UPLOAD_PRODUCT_TYPE", "prospect")
    monkeypatch.setenv("UPLOAD_ARCHIVE_DIR", "../elsewhere")
    monkeypatch.setenv("UPLOAD_POLL_INTERVAL_SECONDS", "-1")
    with pytest.raises(ConfigError) as info:
        load_upload_settings()
    text = info.value.render()
    for name in ("UPLOAD_SOURCE:", "UPLOAD_PRODUCT_TYPE:", "UPLOAD_ARCHIVE_DIR:", "UPLOAD_POLL_INTERVAL_SECONDS:"):
        assert name in text, text
    assert "'enrollment', 'affinity' or 'ematch'" in text


def test_sftp_without_host_key_names_our_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UPLOAD_SOURCE", "sftp://slate@ft.technolutions.net/outgoing/*.csv")
    monkeypatch.setenv("UPLOAD_SOURCE_PASSWORD", "hunter2-secret")
    monkeypatch.setenv("UPLOAD_PRODUCT_TYPE", "enrollment")
    with pytest.raises(ConfigError) as info:
        load_upload_settings()
    text = info.value.render()
    assert "UPLOAD_SOURCE_HOST_KEY" in text and "UPLOAD_SOURCE_KNOWN_HOSTS" in text
    assert "hunter2" not in text


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"UPLOAD_SOURCE": "sftp://u:pw@h/out/*.csv"}, "UPLOAD_SOURCE: contains a password"),
        ({"UPLOAD_SOURCE_STORAGE_OPTIONS": "{not json"}, "UPLOAD_SOURCE_STORAGE_OPTIONS: is not valid JSON"),
        ({"UPLOAD_FAILED_DIR": "processed"}, "UPLOAD_FAILED_DIR: must differ from UPLOAD_ARCHIVE_DIR"),
        ({"UPLOAD_SOURCE": "nosuchproto://h/x/*.csv"}, "UPLOAD_SOURCE: uses unknown protocol"),
        ({"UPLOAD_SOURCE": "file:///mnt/share/"}, "UPLOAD_SOURCE: must end with a file name or a glob"),
    ],
)
def test_specific_problems(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, env: dict[str, str], expected: str) -> None:
    monkeypatch.setenv("UPLOAD_SOURCE", f"{tmp_path.as_uri()}/*.csv")
    monkeypatch.setenv("UPLOAD_PRODUCT_TYPE", "enrollment")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as info:
        load_upload_settings()
    assert expected in info.value.render()
    assert "pw@" not in info.value.render()


def test_backoff_doubles_and_is_capped() -> None:
    now = [0.0]
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        now[0] += seconds

    poll_until(lambda: None, done=lambda _: False, interval=1.0, max_interval=10.0, timeout=45.0,
               clock=lambda: now[0], sleep=sleep)  # fmt: skip
    assert waits == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0, 10.0]


def test_toml_upload_table_ranks_below_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = tmp_path / "encoura-slate.toml"
    config.write_text(
        f'[upload]\nsource = "{tmp_path.as_uri()}/*.csv"\nproduct_type = "affinity"\narchive_dir = "done"\n'
    )
    monkeypatch.setenv("ENCOURA_SLATE_CONFIG", str(config))
    monkeypatch.setenv("UPLOAD_ARCHIVE_DIR", "sent")
    settings, _ = load_upload_settings()
    assert (settings.product_type, settings.archive_dir) == ("affinity", "sent")
    assert settings.spec.pattern == "*.csv"


def test_named_sources_each_with_own_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from encoura_tasks.upload.settings import load_upload_sources

    monkeypatch.setenv("UPLOAD_SOURCE", f"{tmp_path.as_uri()}/old_*.csv")
    monkeypatch.setenv("UPLOAD_PRODUCT_TYPE", "affinity")
    monkeypatch.setenv("UPLOAD_SOURCE_PASSWORD", "default-secret")
    monkeypatch.setenv("UPLOAD_SOURCES__ENROLLMENT__URL", "sftp://sis@files.example.edu/outgoing/enrollment/*.csv")
    monkeypatch.setenv("UPLOAD_SOURCES__ENROLLMENT__PRODUCT_TYPE", "Enrollment")
    monkeypatch.setenv("UPLOAD_SOURCES__ENROLLMENT__PASSWORD", "sis-secret")
    monkeypatch.setenv("UPLOAD_SOURCES__ENROLLMENT__HOST_KEY", HOST_KEY)
    monkeypatch.setenv("UPLOAD_SOURCES__EMATCH__URL", f"{tmp_path.as_uri()}/ematch/*.csv")
    monkeypatch.setenv("UPLOAD_SOURCES__EMATCH__PRODUCT_TYPE", "ematch")
    monkeypatch.setenv("UPLOAD_SOURCES__EMATCH__FAILED_DIR", "rejected")
    sources = {s.name: (s, c) for s, c in load_upload_sources()}
    assert list(sources) == ["default", "ematch", "enrollment"]
    default, ematch, enrollment = sources["default"][0], sources["ematch"][0], sources["enrollment"][0]
    assert (default.product_type, ematch.product_type, enrollment.product_type) == ("affinity", "ematch", "enrollment")
    assert ematch.failed_dir == "rejected" and ematch.archive_dir == "processed"
    assert ematch.source_password is None  # never the default source's password
    assert sources["enrollment"][1].password.get_secret_value() == "sis-secret"
    assert sources["enrollment"][1].host_key == HOST_KEY
    assert enrollment.spec.pattern == "*.csv" and enrollment.spec.folder_url.endswith("/outgoing/enrollment")
    assert "secret" not in repr(enrollment) and "secret" not in default.describe_source()


def test_named_source_problems_name_their_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    from encoura_tasks.upload.settings import load_upload_sources

    monkeypatch.setenv("UPLOAD_SOURCES__EMATCH__URL", "sftp://u@h/outgoing/*.csv")  # sftp with no host key
    monkeypatch.setenv("UPLOAD_SOURCES__EMATCH__PRODUCT_TYPE", "ematch")
    with pytest.raises(ConfigError) as info:
        load_upload_sources()
    assert "UPLOAD_SOURCES__EMATCH__" in info.value.render()
    monkeypatch.setenv("UPLOAD_SOURCES__EMATCH__PRODUCT_TYPE", "prospect")
    with pytest.raises(ConfigError) as info:
        load_upload_sources()
    text = info.value.render()
    assert "UPLOAD_SOURCES__EMATCH__PRODUCT_TYPE:" in text
    assert "UPLOAD_SOURCE:" not in text  # a wrong named source is not "no source at all"


def test_no_source_at_all_names_both_forms(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UPLOAD_PRODUCT_TYPE", "enrollment")
    with pytest.raises(ConfigError) as info:
        load_upload_settings()
    assert "UPLOAD_SOURCE:" in info.value.render() and "UPLOAD_SOURCES__<NAME>__URL" in info.value.render()
