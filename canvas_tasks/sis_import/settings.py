"""Where Canvas lives and who we are to it, read once per run from env / .env / the optional TOML file."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import SettingsConfigDict

from common.errors import ConfigError
from common.http_errors import check_ca_bundle
from common.secrets import reveal
from common.settings_base import TomlFileSettings, is_loopback_host
from common.settings_errors import config_error_from_validation
from destinations.config import DestinationConfig

ENV_PREFIX = "CANVAS_"
_ACCOUNT_ID = re.compile(r"^(?:[1-9][0-9]*|self|sis_account_id:.+)$")


class CanvasSettings(TomlFileSettings):
    """Canvas connection settings. The token stays a SecretStr until the moment a request needs it."""

    toml_table = ("canvas",)  # a top-level base_url would clash with Encoura's

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_file=".env",
        extra="ignore",
        env_nested_delimiter="__",
        hide_input_in_errors=True,
    )

    base_url: str
    account_id: str
    access_token: SecretStr
    # Extra trusted roots for offices behind a TLS-inspecting firewall; verification itself is never off.
    ca_bundle: str | None = None
    retry_attempts: int = Field(default=6, ge=1, le=20)
    retry_backoff: float = Field(default=1.0, ge=0, le=120, description="seconds before the first retry")
    # STATE_DIR is shared with the other flows, hence no CANVAS_ prefix.
    state_dir: Path = Field(default=Path(".state"), validation_alias=AliasChoices("STATE_DIR", "state_dir"))

    @field_validator("base_url")
    @classmethod
    def _https_origin(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if value.endswith("/api/v1"):
            value = value[: -len("/api/v1")]
        if not re.match(r"^https?://[^/\s?#]+(/[^\s?#]*)?$", value):
            raise ValueError("must be the Canvas address, like https://school.instructure.com")
        if value.startswith("http://") and not is_loopback_host(urlsplit(value).hostname):
            raise ValueError("must use https (plain http is only allowed for a sandbox on loopback)")
        return value

    @field_validator("account_id", mode="before")
    @classmethod
    def _account_id(cls, value: object) -> str:
        text = str(value).strip()
        if not _ACCOUNT_ID.match(text):
            raise ValueError("must be the numeric id of the root account (or 'self')")
        return text

    @field_validator("ca_bundle")
    @classmethod
    def _readable_ca_bundle(cls, value: str | None) -> str | None:
        return check_ca_bundle(value)

    @field_validator("access_token")
    @classmethod
    def _token_not_blank(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().strip():
            raise ValueError("is empty")
        return value

    def token(self) -> str:
        """The plain token, resolving a `prefect-secret:<block>` reference; call only when sending."""
        value = reveal(self.access_token, setting="CANVAS_ACCESS_TOKEN")
        if not value:
            raise ConfigError("CANVAS_ACCESS_TOKEN: is empty")
        return value


def load_canvas_settings(**overrides: object) -> CanvasSettings:
    """Load settings, turning validation problems into one ConfigError that names every variable."""
    try:
        return CanvasSettings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        error = config_error_from_validation(exc, env_prefix=ENV_PREFIX)
        # state_dir is read from STATE_DIR, not CANVAS_STATE_DIR.
        error.problems = [p.replace("CANVAS_STATE_DIR", "STATE_DIR") for p in error.problems]
        raise ConfigError(error.problems) from None


class CanvasSourceSettings(TomlFileSettings):
    """Credentials for an SFTP (or other credentialed) input URL: `CANVAS_SOURCE_*`, the same fields as
    a destination's, so host keys are verified exactly as for Slate (never sshfs's unchecked default)."""

    toml_table = ("canvas", "source")
    model_config = SettingsConfigDict(
        env_prefix="CANVAS_SOURCE_", env_file=".env", extra="ignore", case_sensitive=False, hide_input_in_errors=True
    )

    password: SecretStr | None = None
    client_key: Path | None = None
    passphrase: SecretStr | None = None
    known_hosts: Path | None = None
    host_key: str | None = None
    storage_options: str | None = None


def source_config(url: str) -> DestinationConfig:
    """The DestinationConfig for reading `url` (validated: host-key checking is required for sftp)."""
    try:
        fields = CanvasSourceSettings().model_dump(exclude_none=True)
        return DestinationConfig(url=url, **fields)
    except ValidationError as exc:
        problems = []
        for err in exc.errors(include_input=False, include_url=False):
            field_name = str(err["loc"][0]) if err["loc"] else "url"
            name = "input URL" if field_name == "url" else f"CANVAS_SOURCE_{field_name.upper()}"
            problems.append(f"{name}: {err['msg'].removeprefix('Value error, ')}")
        raise ConfigError(problems) from None
