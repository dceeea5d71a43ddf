"""Where Canvas lives and who we are to it, read once per run from env / .env / the optional TOML file."""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, InitSettingsSource, PydanticBaseSettingsSource, SettingsConfigDict

from common.errors import ConfigError
from common.secrets import reveal
from common.settings_errors import config_error_from_validation

ENV_PREFIX = "CANVAS_"
CONFIG_FILE_ENV = "ENCOURA_SLATE_CONFIG"
_ACCOUNT_ID = re.compile(r"^(?:[1-9][0-9]*|self|sis_account_id:.+)$")


class CanvasSettings(BaseSettings):
    """Canvas connection settings. The token stays a SecretStr until the moment a request needs it."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_file=".env",
        extra="ignore",
        env_nested_delimiter="__",
    )

    base_url: str
    account_id: str
    access_token: SecretStr
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
        return value

    @field_validator("account_id", mode="before")
    @classmethod
    def _account_id(cls, value: object) -> str:
        text = str(value).strip()
        if not _ACCOUNT_ID.match(text):
            raise ValueError("must be the numeric id of the root account (or 'self')")
        return text

    @field_validator("access_token")
    @classmethod
    def _token_not_blank(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().strip():
            raise ValueError("is empty")
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings, dotenv_settings, file_secret_settings]
        table = _toml_canvas_table()
        if table:
            # Lowest priority: env vars and .env override the shared config file.
            sources.append(InitSettingsSource(settings_cls, init_kwargs=table))
        return tuple(sources)

    def token(self) -> str:
        """The plain token, resolving a `prefect-secret:<block>` reference; call only when sending."""
        value = reveal(self.access_token, setting="CANVAS_ACCESS_TOKEN")
        if not value:
            raise ConfigError("CANVAS_ACCESS_TOKEN: is empty")
        return value


def _toml_canvas_table() -> dict[str, object]:
    """The `[canvas]` table of the shared TOML config file (ENCOURA_SLATE_CONFIG), if there is one."""
    toml_path = os.environ.get(CONFIG_FILE_ENV)
    if not toml_path:
        return {}
    try:
        with open(toml_path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{CONFIG_FILE_ENV}: file {toml_path!r} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{CONFIG_FILE_ENV}: {toml_path!r} is not valid TOML ({exc})") from None
    table = data.get("canvas", {})
    return dict(table) if isinstance(table, dict) else {}


def load_canvas_settings(**overrides: object) -> CanvasSettings:
    """Load settings, turning validation problems into one ConfigError that names every variable."""
    try:
        return CanvasSettings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        error = config_error_from_validation(exc, env_prefix=ENV_PREFIX)
        # state_dir is read from STATE_DIR, not CANVAS_STATE_DIR.
        error.problems = [p.replace("CANVAS_STATE_DIR", "STATE_DIR") for p in error.problems]
        raise ConfigError(error.problems) from None
