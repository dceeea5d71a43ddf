"""Encoura connection settings (ENCOURA_*): a public contract that users' deployments rely on."""

from __future__ import annotations

from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from common.http_errors import check_ca_bundle
from common.settings_base import TomlFileSettings, is_loopback_host, split_list
from common.settings_errors import config_error_from_validation

__all__ = [
    "DEFAULT_BASE_URL",
    "PRODUCT_KEYS",
    "EncouraSettings",
    "TomlFileSettings",  # re-exported: the shared base lives in common.settings_base
    "is_loopback_host",
    "load_encoura_settings",
]

PRODUCT_KEYS = (
    "aos",
    "prospect",
    "affinity",
    "ematch",
    "score-reporter",
    "declared",
    "inquiry",
    "enrollment-marketing",
)
DEFAULT_BASE_URL = "https://api-datalab.encoura.org/v1"


class EncouraSettings(TomlFileSettings):
    toml_table = ("encoura",)

    model_config = SettingsConfigDict(
        env_prefix="ENCOURA_",
        env_file=".env",
        extra="ignore",
        env_nested_delimiter="__",
        case_sensitive=False,
        hide_input_in_errors=True,  # a raw ValidationError must never show a secret
    )

    api_key: SecretStr
    username: SecretStr
    password: SecretStr
    organization_uid: str | None = None
    base_url: str = DEFAULT_BASE_URL
    auth_scheme: Literal["Bearer", "JWT"] = "Bearer"
    product_keys: Annotated[list[str], NoDecode] = Field(default_factory=lambda: list(PRODUCT_KEYS))
    timeout_seconds: float = Field(default=60.0, gt=0)
    max_attempts: int = Field(default=6, ge=1, le=20)
    token_lifetime_seconds: float = Field(default=1200.0, gt=0)  # Encoura's is 20 minutes; refreshed at 3/4
    # Extra trusted roots for offices behind a TLS-inspecting firewall; verification itself is never off.
    ca_bundle: str | None = None

    @field_validator("ca_bundle")
    @classmethod
    def _readable_ca_bundle(cls, value: str | None) -> str | None:
        return check_ca_bundle(value)

    @field_validator("product_keys", mode="before")
    @classmethod
    def _split_product_keys(cls, value: object) -> object:
        return split_list(value)

    @field_validator("product_keys")
    @classmethod
    def _known_product_keys(cls, value: list[str]) -> list[str]:
        unknown = [k for k in value if k not in PRODUCT_KEYS]
        if unknown:
            raise ValueError(f"unknown product key(s) {unknown}; known: {', '.join(PRODUCT_KEYS)}")
        return value or list(PRODUCT_KEYS)

    @field_validator("base_url")
    @classmethod
    def _https_only(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise ValueError(f"'{value}' is not an http(s) URL")
        if parts.scheme == "http" and not is_loopback_host(parts.hostname):
            raise ValueError("must use https (plain http is only allowed for a sandbox on loopback)")
        return value.rstrip("/")

    @field_validator("organization_uid")
    @classmethod
    def _blank_is_none(cls, value: str | None) -> str | None:
        return value.strip() or None if value is not None else None


def load_encoura_settings(**overrides: object) -> EncouraSettings:
    try:
        return EncouraSettings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise config_error_from_validation(exc, env_prefix="ENCOURA_") from None
