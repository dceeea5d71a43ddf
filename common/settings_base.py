"""What every settings class shares: env, `.env`, and one optional TOML file for the whole project.

The TOML file (named by ENCOURA_SLATE_CONFIG) has one table per settings group (`[encoura]`,
`[upload]`, `[canvas]`; run settings such as `state_dir` and `[destinations.<name>]` at the top
level) and ranks below environment variables and `.env`, so a deployment can override any of it.
"""

from __future__ import annotations

import ipaddress
import json
import os
from pathlib import Path
from typing import ClassVar

from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, TomlConfigSettingsSource

from common.errors import ConfigError

CONFIG_FILE_ENV = "ENCOURA_SLATE_CONFIG"


def is_loopback_host(host: str | None) -> bool:
    """Plain http is tolerated only here: the sandboxes on this machine, never a real service."""
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def split_list(value: object) -> object:
    """Accept a JSON list or a comma separated string, as users write both in .env files."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            return json.loads(text)
        return [part.strip() for part in text.split(",") if part.strip()]
    return value


class TomlFileSettings(BaseSettings):
    """Base settings class: init > env > .env > TOML table `toml_table` of ENCOURA_SLATE_CONFIG."""

    toml_table: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings, dotenv_settings]
        config_file = os.environ.get(CONFIG_FILE_ENV)
        if config_file:
            path = Path(config_file)
            if not path.is_file():
                raise ConfigError(f"{CONFIG_FILE_ENV}: config file {path} does not exist")
            try:
                sources.append(
                    TomlConfigSettingsSource(settings_cls, toml_file=path, toml_table_header=cls.toml_table or None)
                )
            except ValueError as exc:  # tomllib.TOMLDecodeError is a ValueError
                raise ConfigError(f"{CONFIG_FILE_ENV}: {path} is not valid TOML ({exc})") from None
        return (*sources, file_secret_settings)
