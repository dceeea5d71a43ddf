"""DestinationConfig validation: clear, field-named, never echoing secrets."""

from __future__ import annotations

from pathlib import Path

import asyncssh
import pytest
from pydantic import ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from common.settings_errors import config_error_from_validation
from destinations import DestinationConfig

HOST_KEY = "ssh-ed25519 " + asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode().split()[1]


@pytest.fixture(autouse=True)
def _no_user_known_hosts(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    return home


def _errors(**values: object) -> list[tuple[tuple[object, ...], str]]:
    with pytest.raises(ValidationError) as info:
        DestinationConfig(**values)  # type: ignore[arg-type]
    return [(e["loc"], e["msg"]) for e in info.value.errors(include_input=False)]


def test_minimal_configs() -> None:
    assert DestinationConfig(url="file:///mnt/share").max_concurrency == 8
    assert DestinationConfig(url="/mnt/share").protocol == "file"
    assert DestinationConfig(url="s3://bucket/prefix").protocol == "s3"
    assert DestinationConfig(url="memory://x").protocol == "memory"
    sftp = DestinationConfig(url="sftp://u@ft.technolutions.net/incoming", host_key=HOST_KEY)
    assert sftp.is_sftp and sftp.known_hosts is None


def test_unknown_protocol_names_the_problem() -> None:
    [(loc, msg)] = _errors(url="nosuchproto://x/y")
    assert loc == ("url",) and "unknown protocol 'nosuchproto'" in msg and "encoura_slate.destinations" in msg


def test_password_in_url_is_refused_and_not_echoed() -> None:
    [(loc, msg)] = _errors(url="sftp://u:s3cr3t@host/incoming", host_key=HOST_KEY)
    assert loc == ("url",) and "__PASSWORD" in msg and "s3cr3t" not in msg


def test_sftp_without_host_keys_is_an_error() -> None:
    [(loc, msg)] = _errors(url="sftp://u@host/incoming")
    assert loc == ("host_key",)
    assert "host key verification needs __KNOWN_HOSTS or __HOST_KEY" in msg


def test_sftp_falls_back_to_user_known_hosts(_no_user_known_hosts: Path) -> None:
    ssh = _no_user_known_hosts / ".ssh"
    ssh.mkdir()
    (ssh / "known_hosts").write_text(f"host {HOST_KEY}\n")
    config = DestinationConfig(url="sftp://u@host/incoming")
    assert config.known_hosts == ssh / "known_hosts"


def test_unreadable_files_name_the_field(tmp_path: Path) -> None:
    errors = _errors(url="sftp://u@host/x", client_key=tmp_path / "missing_key", known_hosts=tmp_path / "missing_kh")
    locs = {loc for loc, _ in errors}
    assert {("client_key",), ("known_hosts",)} <= locs
    assert all("does not exist" in msg for loc, msg in errors if loc != ("host_key",))


@pytest.mark.parametrize("bad", ["ssh-ed25519 notbase64!!", "garbage", "host ssh-ed25519"])
def test_bad_pinned_key(bad: str) -> None:
    [(loc, msg)] = _errors(url="sftp://u@host/x", host_key=bad)
    assert loc == ("host_key",) and "key" in msg


def test_pinned_key_accepts_keyscan_lines() -> None:
    DestinationConfig(url="sftp://u@host/x", host_key=f"[ft.technolutions.net]:22 {HOST_KEY}\n# comment\n{HOST_KEY}")


def test_bad_template_names_the_field() -> None:
    [(loc, msg)] = _errors(url="file:///x", path_template="../{filename}")
    assert loc == ("path_template",) and ".." in msg


def test_storage_options_json_and_limits() -> None:
    config = DestinationConfig(url="s3://b/p", storage_options='{"anon": true}')  # type: ignore[arg-type]
    assert config.storage_options == {"anon": True}
    [(loc, msg)] = _errors(url="s3://b/p", storage_options="{not json")
    assert loc == ("storage_options",) and "not valid JSON" in msg
    [(loc, _)] = _errors(url="s3://b/p", max_concurrency=0)
    assert loc == ("max_concurrency",)


def test_passphrase_needs_a_key() -> None:
    [(_, msg)] = _errors(url="file:///x", passphrase="secret-pass")
    assert "__CLIENT_KEY" in msg and "secret-pass" not in msg


def test_repr_hides_secrets() -> None:
    config = DestinationConfig(url="s3://b/p", password="pw-value", storage_options={"secret": "aws-secret-value"})
    assert "pw-value" not in repr(config) and "aws-secret-value" not in repr(config)


def test_env_settings_map_to_destination_env_names(monkeypatch: pytest.MonkeyPatch) -> None:
    """The lead's settings hold `destinations: dict[str, DestinationConfig]`; errors name env vars."""

    class Settings(BaseSettings):
        model_config = SettingsConfigDict(env_nested_delimiter="__", extra="ignore")
        destinations: dict[str, DestinationConfig] = {}

    monkeypatch.setenv("DESTINATIONS__SLATE__URL", "sftp://u@host/incoming")
    monkeypatch.setenv("DESTINATIONS__SLATE__HOST_KEY", HOST_KEY)
    monkeypatch.setenv("DESTINATIONS__SLATE__PASSWORD", "pw-from-env")
    monkeypatch.setenv("DESTINATIONS__SLATE__STORAGE_OPTIONS", '{"max_sessions": 6}')
    monkeypatch.setenv("DESTINATIONS__SLATE__MAX_CONCURRENCY", "2")
    settings = Settings()
    slate = settings.destinations["slate"]
    assert slate.max_concurrency == 2 and slate.storage_options == {"max_sessions": 6}
    assert slate.password is not None and slate.password.get_secret_value() == "pw-from-env"

    monkeypatch.setenv("DESTINATIONS__SLATE__PATH_TEMPLATE", "/abs/{filename}")
    with pytest.raises(ValidationError) as info:
        Settings()
    error = config_error_from_validation(info.value)
    assert error.problems[0].startswith("DESTINATIONS__SLATE__PATH_TEMPLATE: ")
    assert "pw-from-env" not in error.render()


def test_raw_validation_error_text_hides_inputs() -> None:
    with pytest.raises(ValidationError) as info:
        DestinationConfig(url="s3://b/p", storage_options='{"secret": "TOPSECRET"', bogus="BOGUS")  # type: ignore[call-arg]
    assert "TOPSECRET" not in str(info.value) and "BOGUS" not in str(info.value)


def test_host_key_accepts_key_lines_and_sha256_md5_fingerprints() -> None:
    import asyncssh

    from destinations.hostkeys import parse_pinned_key

    key = asyncssh.generate_private_key("ssh-ed25519")
    line = key.export_public_key().decode().strip()
    sha, md5 = key.get_fingerprint("sha256"), key.get_fingerprint("md5")
    for pin in (line, f"[h]:22 {line}", sha, md5, md5.removeprefix("MD5:"), f"ssh-rsa 2048 {md5[4:]}"):
        assert parse_pinned_key(pin).matches(key), pin
    other = asyncssh.generate_private_key("ssh-ed25519")
    assert not parse_pinned_key(sha).matches(other)
    assert not parse_pinned_key(md5.upper().replace("MD5:", "md5:")).matches(other)
    assert parse_pinned_key(md5.upper().replace("MD5:", "md5:")).matches(key)  # case of hex pairs ignored


@pytest.mark.parametrize("bad", ["SHA256:tooshort", "MD5:aa:bb", "hello world", "ssh-ed25519 notbase64!"])
def test_host_key_that_is_neither_key_nor_fingerprint_is_a_settings_error(bad: str) -> None:
    with pytest.raises(ValidationError, match="host_key"):
        DestinationConfig(url="sftp://u@h/x", host_key=bad)


def test_technolutions_md5_line_asks_the_server_for_its_rsa_key() -> None:
    """Technolutions pins an RSA key by MD5: a server holding several keys must present the RSA one."""
    from destinations.hostkeys import host_key_options

    options = host_key_options(None, "ssh-rsa 2048 35:7a:60:48:cf:4f:bc:d1:f1:4e:92:dc:ea:02:18:3b")
    assert options["server_host_key_algs"] == ["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"]
    assert options["known_hosts"] == ([], [], [])  # checking stays on: only the pin is trusted
    assert "server_host_key_algs" not in host_key_options(None, "SHA256:" + "A" * 43)
