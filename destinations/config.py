"""Settings for one destination (`DESTINATIONS__<NAME>__*`), checked before anything is transferred.

Validation errors name the field (the lead maps the loc to the env var) and never echo values:
URLs may carry user names, and storage options may carry keys.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import fsspec
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationInfo, field_validator, model_validator

from destinations.hostkeys import default_known_hosts, parse_pinned_key
from destinations.templates import validate_template

SFTP_PROTOCOLS = frozenset({"sftp", "ssh"})
ENTRY_POINT_GROUP = "encoura_slate.destinations"
DEFAULT_SWEEP_GRACE_SECONDS = 3600.0


def plugin_protocols() -> dict[str, Any]:
    """Entry points registered by installed distributions, keyed by URL scheme."""
    from importlib.metadata import entry_points

    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def url_protocol(url: str) -> str:
    """The URL scheme ('file' for a bare path), lower-cased; first of a chained `a::b` URL."""
    return url_protocols(url)[0]


def url_protocols(url: str) -> list[str]:
    """The scheme of every segment of a (possibly chained, `a::b::c`) URL, outermost first.

    fsspec also accepts a bare protocol name as a segment (`simplecache::sftp://...`): that counts too.
    """
    out = []
    for segment in url.split("::"):
        if "://" in segment:
            out.append(segment.split("://", 1)[0].lower())
        elif segment and segment.isidentifier() and segment.lower() in fsspec.available_protocols():
            out.append(segment.lower())
        else:
            out.append("file")
    return out


def uses_sftp(url: str) -> bool:
    """True when any segment of the URL is sftp:// or ssh:// (so it must go through host-key checks)."""
    return any(protocol in SFTP_PROTOCOLS for protocol in url_protocols(url))


def sftp_segment(url: str) -> str | None:
    """The sftp:// or ssh:// segment of a chained URL (what the SSH connection is made to), if any."""
    for segment, protocol in zip(url.split("::"), url_protocols(url), strict=True):
        if protocol in SFTP_PROTOCOLS:
            return segment
    return None


def check_url_segments(url: str) -> None:
    """Every segment parses, and none carries a password (never echoed: the message names no value)."""
    for number, segment in enumerate(url.split("::"), start=1):
        if "://" not in segment:
            continue
        try:
            parts = urlsplit(segment)
            _ = parts.port  # raises on a non-numeric port
        except ValueError:
            raise ValueError(f"segment {number} is not a valid URL (check the host and port)") from None
        if parts.password is not None:
            raise ValueError(
                "contains a password"
                + (f" (in segment {number} of the chained URL)" if "::" in url else "")
                + "; put it in __PASSWORD (or a Prefect Secret block) instead"
            )


def reveal_options(options: dict[str, Any], setting: str) -> dict[str, Any]:
    """Storage option values may name Prefect Secret blocks too (`prefect-secret:<block>`)."""
    from common.secrets import reveal

    out: dict[str, Any] = {}
    for key, value in options.items():
        if isinstance(value, dict):
            out[key] = reveal_options(value, f"{setting}.{key}")
        elif isinstance(value, str):
            out[key] = reveal(SecretStr(value), setting=f"{setting}.{key}")
        else:
            out[key] = value
    return out


def _known_protocols() -> set[str]:
    return set(fsspec.available_protocols()) | set(plugin_protocols())


def _default_known_hosts() -> Path | None:
    return default_known_hosts()


class DestinationConfig(BaseModel):
    """One entry of `DESTINATIONS__<NAME>__*`."""

    # hide_input_in_errors: a raw ValidationError printed anywhere must not show a password or S3 key.
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    url: str
    password: SecretStr | None = None
    client_key: Path | None = None
    passphrase: SecretStr | None = None
    known_hosts: Path | None = None
    host_key: str | None = Field(default=None, validate_default=True)
    path_template: str = "{filename}"
    # repr=False: storage options often hold S3 keys.
    storage_options: dict[str, Any] = Field(default_factory=dict, repr=False)
    max_concurrency: int = Field(default=8, ge=1, le=64)
    connect_timeout: float = Field(default=30.0, gt=0)
    keepalive_interval: float = Field(default=15.0, ge=0)
    # How old a temp file must be before a run's sweep treats it as an orphan of a killed run. The
    # grace protects the in-flight temps of an overlapping run; tests that run one flow at a time
    # set 0 so that "no temp file remains after the sweep" can be checked right away.
    sweep_grace_seconds: float = Field(default=DEFAULT_SWEEP_GRACE_SECONDS, ge=0)

    @property
    def protocol(self) -> str:
        return url_protocol(self.url)

    @property
    def is_sftp(self) -> bool:
        """The URL is a plain sftp:// / ssh:// URL (a chained one with an sftp segment: `uses_sftp`)."""
        return self.protocol in SFTP_PROTOCOLS

    @property
    def uses_sftp(self) -> bool:
        return uses_sftp(self.url)

    @field_validator("url")
    @classmethod
    def _check_url(cls, url: str) -> str:
        url = url.strip()
        if not url:
            raise ValueError("is empty; give an fsspec URL such as sftp://user@host/incoming or file:///mnt/share")
        check_url_segments(url)
        parts = urlsplit(sftp_segment(url) or url.split("::", 1)[0])
        protocol = url_protocol(url)
        if protocol not in _known_protocols():
            raise ValueError(
                f"uses unknown protocol {protocol!r}; use sftp://, file://, s3:// or another fsspec protocol, "
                f"or install a plugin registering it under the {ENTRY_POINT_GROUP!r} entry-point group"
            )
        if uses_sftp(url) and not parts.hostname:
            raise ValueError("has no host; expected sftp://user@host[:port]/path")
        return url

    @field_validator("path_template")
    @classmethod
    def _check_template(cls, template: str) -> str:
        validate_template(template)
        return template

    @field_validator("client_key", "known_hosts")
    @classmethod
    def _check_readable(cls, path: Path | None, info: ValidationInfo) -> Path | None:
        if path is None:
            return None
        path = path.expanduser()
        if not path.is_file():
            raise ValueError(f"file {str(path)!r} does not exist or is not a file")
        if not os.access(path, os.R_OK):
            raise ValueError(f"file {str(path)!r} is not readable by this user")
        return path

    @field_validator("client_key")
    @classmethod
    def _check_private_key(cls, path: Path | None) -> Path | None:
        """A file that is no private key at all is a settings mistake: say so before any network call.

        An encrypted key cannot be opened without its passphrase (which may live in a Prefect
        Secret block), so that check waits until the connection is made.
        """
        if path is None:
            return None
        import asyncssh

        try:
            asyncssh.read_private_key(str(path))
        except asyncssh.KeyImportError as exc:
            if "passphrase" not in str(exc).lower():
                raise ValueError(f"file {str(path)!r} is not a private key (OpenSSH, PEM or PKCS#8 expected)") from None
        except (asyncssh.KeyEncryptionError, OSError):
            pass
        return path

    @field_validator("host_key")
    @classmethod
    def _check_host_key(cls, value: str | None, info: ValidationInfo) -> str | None:
        url = info.data.get("url")
        is_sftp = url is not None and uses_sftp(url)
        if value is not None:
            parse_pinned_key(value)  # ValueError with a clear message
            return value.strip()
        if is_sftp and info.data.get("known_hosts") is None and _default_known_hosts() is None:
            # Field order matters: url and known_hosts are validated before host_key.
            raise ValueError(
                "host key verification needs __KNOWN_HOSTS or __HOST_KEY (and ~/.ssh/known_hosts does not exist); "
                "host key checking is never disabled"
            )
        return value

    @field_validator("storage_options", mode="before")
    @classmethod
    def _parse_storage_options(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                value = json.loads(value) if value.strip() else {}
            except json.JSONDecodeError as exc:
                raise ValueError(f"is not valid JSON ({exc.msg} at position {exc.pos})") from None
        if not isinstance(value, dict):
            raise ValueError('must be a JSON object, e.g. {"client_kwargs": {"endpoint_url": "..."}}')
        return value

    @model_validator(mode="after")
    def _fill_default_known_hosts(self) -> DestinationConfig:
        if self.uses_sftp and self.known_hosts is None and self.host_key is None:
            self.known_hosts = _default_known_hosts()
        if self.passphrase is not None and self.client_key is None:
            raise ValueError("__PASSPHRASE is set but __CLIENT_KEY is not; the passphrase unlocks the client key")
        return self
