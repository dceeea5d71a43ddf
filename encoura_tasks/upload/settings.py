"""Upload settings (UPLOAD_*): which files go to Encoura's upload API, as what product, and where they go after.

The source is an fsspec URL with a glob in its last part(s), read with exactly the same credential
and host-key handling as a destination (`destinations.DestinationConfig`), so an SFTP source can
never be opened without host-key checking.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, ClassVar, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import NoDecode, SettingsConfigDict

from common.errors import ConfigError
from common.redaction import redact_url
from common.settings_base import TomlFileSettings
from common.settings_errors import config_error_from_validation
from destinations import DestinationConfig

ProductType = Literal["enrollment", "affinity", "ematch"]
PRODUCT_TYPES: tuple[str, ...] = ("enrollment", "affinity", "ematch")
ENV_PREFIX = "UPLOAD_"
SOURCE_SETTING = "UPLOAD_SOURCE"
_GLOB_CHARS = frozenset("*?[")


def has_glob(text: str) -> bool:
    return any(c in _GLOB_CHARS for c in text)


@dataclass(frozen=True)
class SourceSpec:
    """UPLOAD_SOURCE split into the folder we connect to and the pattern we match beneath it.

    `folder_url` has no glob characters (it becomes the storage root); `pattern` is relative to it,
    e.g. `enrollment_*.csv` or `*/enrollment.csv`.
    """

    folder_url: str
    pattern: str


def split_source(url: str) -> SourceSpec:
    """`sftp://u@h/outgoing/enrollment_*.csv` -> (`sftp://u@h/outgoing`, `enrollment_*.csv`).

    Without a glob the URL names one file. The split happens at the first path segment holding a
    glob character, so only the matching part of the tree is ever listed.
    """
    parts = urlsplit(url) if "://" in url else None
    path = parts.path if parts is not None else url
    segments = path.split("/")
    first_glob = next((i for i, seg in enumerate(segments) if has_glob(seg)), len(segments) - 1)
    folder = "/".join(segments[:first_glob]) or "/"
    pattern = "/".join(segments[first_glob:])
    folder_url = urlunsplit((parts.scheme, parts.netloc, folder, parts.query, "")) if parts is not None else folder
    return SourceSpec(folder_url=folder_url, pattern=pattern)


def _check_relative_dir(value: str, setting: str) -> str:
    value = value.strip().strip("/") if value.strip() not in ("", "/") else ""
    if not value:
        raise ValueError(f"is empty; give a folder relative to the source folder, e.g. {setting}")
    pure = PurePosixPath(value)
    if value.startswith("/") or ".." in pure.parts or "\\" in value:
        raise ValueError("must be a folder relative to the source files' folder (no '..', not absolute)")
    if has_glob(value):
        raise ValueError("must not contain glob characters (* ? [)")
    return value


_SOURCE_FIELDS = ("password", "client_key", "passphrase", "known_hosts", "host_key", "storage_options")
DEFAULT_SOURCE_NAME = "default"


class SourceFolderRules(BaseModel):
    """The checks UPLOAD_* and every UPLOAD_SOURCES__<NAME>__* share, written once: the product type is
    read case-insensitively, and processed/ and failed/ are distinct folders below the source folder.

    Validators only (`check_fields=False`): each settings class keeps its own fields, in its own
    order, since some checks read fields validated before them."""

    archive_setting: ClassVar[str]

    @field_validator("product_type", mode="before", check_fields=False)
    @classmethod
    def _normalise_product_type(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("archive_dir", check_fields=False)
    @classmethod
    def _check_archive(cls, value: str) -> str:
        return _check_relative_dir(value, "processed")

    @field_validator("failed_dir", check_fields=False)
    @classmethod
    def _check_failed(cls, value: str, info: ValidationInfo) -> str:
        value = _check_relative_dir(value, "failed")
        if value == info.data.get("archive_dir"):
            raise ValueError(f"must differ from {cls.archive_setting} (failed files must not look processed)")
        return value


class NamedUploadSource(SourceFolderRules):
    """One entry of `UPLOAD_SOURCES__<NAME>__*`: the same fields as the single-source UPLOAD_SOURCE_*,
    so a second folder (another share, another SFTP account) is added without a second deployment.
    Credentials are per source: one source's password never reaches another's host."""

    model_config = ConfigDict(extra="forbid")

    url: str
    product_type: ProductType
    password: SecretStr | None = None
    client_key: Path | None = None
    passphrase: SecretStr | None = None
    known_hosts: Path | None = None
    host_key: str | None = None
    storage_options: Annotated[dict[str, Any] | str, NoDecode] = Field(default_factory=dict, repr=False)
    archive_dir: str = "processed"
    failed_dir: str = "failed"
    description: str | None = Field(default=None, max_length=1000)

    archive_setting: ClassVar[str] = "__ARCHIVE_DIR"  # as named in messages ("__" becomes the source's prefix)

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        return _check_source_url(value)


def _check_source_url(value: str) -> str:
    value = value.strip()
    if not value:
        raise ValueError(
            "is empty; give an fsspec URL with a glob, e.g. sftp://user@host/outgoing/enrollment_*.csv "
            "or file:///mnt/share/encoura/*.csv"
        )
    spec = split_source(value)
    if not spec.pattern or spec.pattern.endswith("/"):
        raise ValueError("must end with a file name or a glob such as *.csv, not a folder")
    return value


class UploadSettings(TomlFileSettings, SourceFolderRules):
    archive_setting: ClassVar[str] = "UPLOAD_ARCHIVE_DIR"
    toml_table = ("upload",)  # [upload] in the ENCOURA_SLATE_CONFIG file: source, product_type, ...
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_file=".env", extra="ignore", env_nested_delimiter="__", case_sensitive=False
    )

    # The single-source settings (UPLOAD_SOURCE, UPLOAD_PRODUCT_TYPE, ...) are the source named `default`;
    # UPLOAD_SOURCES__<NAME>__* add more. `name` is set on the per-source copies `all_sources()` returns.
    name: str = DEFAULT_SOURCE_NAME
    sources: dict[str, NamedUploadSource] = Field(default_factory=dict)  # before `source`: its check reads this
    source: str | None = Field(default=None, validate_default=True)
    source_password: SecretStr | None = None
    source_client_key: Path | None = None
    source_passphrase: SecretStr | None = None
    source_known_hosts: Path | None = None
    source_host_key: str | None = None
    # NoDecode: a malformed JSON value must become a named ConfigError, not a pydantic-settings crash.
    source_storage_options: Annotated[dict[str, Any] | str, NoDecode] = Field(default_factory=dict, repr=False)
    product_type: ProductType | None = Field(default=None, validate_default=True)
    archive_dir: str = "processed"
    failed_dir: str = "failed"
    data_source: str = Field(default="API", min_length=1, max_length=200)
    description: str = Field(default="", max_length=1000)
    poll_interval_seconds: float = Field(default=15.0, gt=0, le=3600)
    poll_max_interval_seconds: float = Field(default=300.0, gt=0, le=3600)
    poll_timeout_seconds: float = Field(default=3600.0, gt=0)

    @field_validator("product_type")
    @classmethod
    def _product_type_for_source(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None and info.data.get("source") is not None:
            raise ValueError("is not set; one of enrollment, affinity, ematch")
        return value

    @field_validator("source")
    @classmethod
    def _check_source(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            if "sources" in info.data and not info.data["sources"]:  # absent from data: its own error is shown
                raise ValueError(
                    "is not set (nor any UPLOAD_SOURCES__<NAME>__URL); give an fsspec URL with a glob, "
                    "e.g. sftp://user@host/outgoing/enrollment_*.csv"
                )
            return None
        return _check_source_url(value)

    @field_validator("sources")
    @classmethod
    def _names(cls, value: dict[str, NamedUploadSource]) -> dict[str, NamedUploadSource]:
        for name in value:
            if not name.replace("_", "").replace("-", "").isalnum():
                raise ValueError(f"source name {name!r} must be letters, digits, '-' or '_'")
            if name.lower() == DEFAULT_SOURCE_NAME:
                raise ValueError("the name 'default' is taken by UPLOAD_SOURCE; pick another name")
        return value

    @model_validator(mode="after")
    def _cap_not_below_interval(self) -> UploadSettings:
        if self.poll_max_interval_seconds < self.poll_interval_seconds:
            self.poll_max_interval_seconds = self.poll_interval_seconds
        return self

    def all_sources(self) -> list[UploadSettings]:
        """One settings object per source (`default` first), each shaped like the single-source settings,
        so everything downstream (UploadSource, steps, ledger) handles one source at a time unchanged."""
        out = [self.model_copy(update={"sources": {}})] if self.source is not None else []
        for name, entry in sorted(self.sources.items()):
            update: dict[str, Any] = {
                "name": name,
                "sources": {},
                "source": entry.url,
                "product_type": entry.product_type,
                "archive_dir": entry.archive_dir,
                "failed_dir": entry.failed_dir,
                **{f"source_{field}": getattr(entry, field) for field in _SOURCE_FIELDS},
            }
            if entry.description is not None:
                update["description"] = entry.description
            out.append(self.model_copy(update=update))
        return out

    @property
    def spec(self) -> SourceSpec:
        if self.source is None:
            raise ConfigError("UPLOAD_SOURCE: is not set (named sources are read with all_sources())")
        return split_source(self.source)

    def describe_source(self) -> str:
        if self.source is None:
            return ", ".join(f"{s.name}: {s.describe_source()}" for s in self.all_sources())
        return redact_url(self.source)

    def source_config(self) -> DestinationConfig:
        """The source folder as a DestinationConfig: same credentials, same host-key rules."""
        return build_source_config(self)


def _source_problem(loc: tuple[Any, ...], msg: str, source_name: str = DEFAULT_SOURCE_NAME) -> str:
    field = str(loc[0]) if loc else ""
    if source_name != DEFAULT_SOURCE_NAME:
        prefix = f"UPLOAD_SOURCES__{source_name.upper()}__"
        name = f"{prefix}{(field or 'url').upper()}"
        msg = msg.replace("__", prefix)
    else:
        name = SOURCE_SETTING if field in ("url", "") else f"{SOURCE_SETTING}_{field.upper()}"
        # DestinationConfig speaks of `__PASSWORD` etc. (its own env suffixes); name ours instead.
        msg = msg.replace("__", f"{SOURCE_SETTING}_")
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    return f"{name}: {msg}"


def build_source_config(settings: UploadSettings) -> DestinationConfig:
    try:
        return DestinationConfig(
            url=settings.spec.folder_url,
            password=settings.source_password,
            client_key=settings.source_client_key,
            passphrase=settings.source_passphrase,
            known_hosts=settings.source_known_hosts,
            host_key=settings.source_host_key,
            storage_options=settings.source_storage_options,  # type: ignore[arg-type] - parsed there
        )
    except ValidationError as exc:
        problems = [
            _source_problem(tuple(e["loc"]), e["msg"], settings.name)
            for e in exc.errors(include_input=False, include_url=False)
        ]
        raise ConfigError(problems) from None


def load_upload_settings(**overrides: object) -> tuple[UploadSettings, DestinationConfig]:
    """The first source (`default` when UPLOAD_SOURCE is set) and its DestinationConfig: for callers
    that check one source; the flow uses `load_upload_sources()`."""
    return load_upload_sources(**overrides)[0]


def load_upload_sources(**overrides: object) -> list[tuple[UploadSettings, DestinationConfig]]:
    """Every source with its DestinationConfig; every problem of every source in one ConfigError."""
    try:
        settings = UploadSettings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise config_error_from_validation(exc, env_prefix=ENV_PREFIX) from None
    out, problems = [], []
    for one in settings.all_sources():
        try:
            out.append((one, build_source_config(one)))
        except ConfigError as exc:
            problems += exc.problems
    if problems:
        raise ConfigError(problems)
    return out
