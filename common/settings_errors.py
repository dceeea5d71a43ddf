"""Turn pydantic validation errors into messages that name the environment variable a user sets."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import ValidationError

from common.errors import ConfigError


def env_name(loc: Sequence[str | int], *, env_prefix: str = "", delimiter: str = "__") -> str:
    """`("destinations", "slate", "url")` -> `DESTINATIONS__SLATE__URL`; `("api_key",)` -> `ENCOURA_API_KEY`."""
    parts = [str(p) for p in loc if not (isinstance(p, str) and p.startswith("function-"))]
    return (env_prefix + delimiter.join(parts)).upper()


def config_error_from_validation(
    exc: ValidationError, *, env_prefix: str = "", delimiter: str = "__"
) -> ConfigError:
    """Never echo the offending input: it may be a secret."""
    problems = []
    for err in exc.errors(include_input=False, include_url=False):
        name = env_name(err["loc"], env_prefix=env_prefix, delimiter=delimiter) or "settings"
        msg = err["msg"]
        if err["type"] == "missing":
            msg = "is required but not set"
        elif msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        problems.append(f"{name}: {msg}")
    return ConfigError(problems)
