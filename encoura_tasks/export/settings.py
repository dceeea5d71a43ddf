"""Run settings shared by the flows: where files go (DESTINATIONS__*), where state lives, how hard to push."""

from __future__ import annotations

import json
import os
from pathlib import Path

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import SettingsConfigDict, SettingsError

from common.errors import ConfigError, gather_settings
from common.secrets import reveal
from common.settings_base import TomlFileSettings
from common.settings_errors import config_error_from_validation
from destinations.config import DestinationConfig
from encoura_tasks.api.settings import EncouraSettings, load_encoura_settings


class RunSettings(TomlFileSettings):
    model_config = SettingsConfigDict(
        env_file=".env",
        extra="ignore",
        env_nested_delimiter="__",
        case_sensitive=False,
        hide_input_in_errors=True,  # storage options and passwords must never show in a raw ValidationError
    )

    destinations: dict[str, DestinationConfig] = Field(default_factory=dict)
    state_dir: Path = Path(".state")
    # A secret: a PostgreSQL URL carries its password. May be `prefect-secret:<block>`.
    ledger_url: SecretStr | None = None
    # Student records kept under STATE_DIR (staged copies of exports that keep failing, Canvas error CSVs).
    state_retention_days: float = Field(default=30.0, gt=0)
    max_parallel_files: int = Field(default=8, ge=1, le=64)
    task_retries: int = Field(default=3, ge=0, le=10)
    task_retry_delay_seconds: float = Field(default=10.0, ge=0)
    claim_ttl_seconds: float = Field(default=600.0, gt=0)

    @field_validator("destinations")
    @classmethod
    def _names(cls, value: dict[str, DestinationConfig]) -> dict[str, DestinationConfig]:
        for name in value:
            if not name.replace("_", "").replace("-", "").isalnum():
                raise ValueError(f"destination name {name!r} must be letters, digits, '-' or '_'")
        return value

    @property
    def resolved_ledger_url(self) -> str:
        """The URL to connect with (revealed here, at run time, in the process that connects)."""
        url = reveal(self.ledger_url, setting="LEDGER_URL")
        if url:
            return url
        return f"sqlite:///{(self.state_dir / 'ledger.sqlite3').resolve()}"

    @property
    def staging_dir(self) -> Path:
        return self.state_dir / "staging"


def load_run_settings(**overrides: object) -> RunSettings:
    try:
        return RunSettings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise config_error_from_validation(exc) from None
    except SettingsError as exc:
        # pydantic-settings decodes nested JSON values (…__STORAGE_OPTIONS) itself and raises
        # SettingsError, not ValidationError, naming only the top field: name the variable.
        raise ConfigError(_undecodable_settings(exc)) from None


def _undecodable_settings(exc: SettingsError) -> list[str]:
    problems = []
    for name, value in sorted(os.environ.items()):
        if not (name.upper().startswith("DESTINATIONS__") and name.upper().endswith("__STORAGE_OPTIONS")):
            continue
        try:
            json.loads(value) if value.strip() else None
        except json.JSONDecodeError as err:
            problems.append(f"{name.upper()}: is not valid JSON ({err.msg} at position {err.pos})")
    return problems or [f"DESTINATIONS__<NAME>__*: a value could not be decoded ({exc})"]


def load_export_settings(*, require_destinations: bool = True) -> tuple[EncouraSettings, RunSettings]:
    """Both groups at once, so one message lists every problem before anything touches the network."""
    encoura, run = gather_settings(
        load_encoura_settings, load_run_settings_with_destinations if require_destinations else load_run_settings
    )
    return encoura, run


def load_run_settings_with_destinations() -> RunSettings:
    run = load_run_settings()
    if not run.destinations:
        raise ConfigError(
            "DESTINATIONS__<NAME>__URL: no destination is configured; set at least one, e.g. "
            "DESTINATIONS__SLATE__URL=sftp://user@ft.technolutions.net/incoming/Encoura"
        )
    return run
