"""Secret settings may hold the value itself or name a Prefect Secret block: `prefect-secret:<block-name>`.

Resolution happens at run time, in the process that needs the value, so nothing secret is ever
stored in deployment parameters.
"""

from __future__ import annotations

from pydantic import SecretStr

from common.errors import ConfigError

SECRET_BLOCK_PREFIX = "prefect-secret:"


def is_block_reference(value: str) -> bool:
    return value.startswith(SECRET_BLOCK_PREFIX)


def reveal(value: SecretStr | None, *, setting: str) -> str | None:
    """Return the plain secret, loading it from a Prefect Secret block when the setting names one."""
    if value is None:
        return None
    raw = value.get_secret_value()
    if not is_block_reference(raw):
        return raw
    block_name = raw[len(SECRET_BLOCK_PREFIX) :].strip()
    if not block_name:
        raise ConfigError(f"{setting}: '{SECRET_BLOCK_PREFIX}' must be followed by a Secret block name")
    from prefect.blocks.system import Secret

    try:
        block = Secret.load(block_name)
    except (ValueError, LookupError) as exc:
        raise ConfigError(
            f"{setting}: Prefect Secret block '{block_name}' could not be loaded ({type(exc).__name__}); "
            f"create it with `prefect block create secret` or in the UI"
        ) from None
    secret = block.get()
    return secret if isinstance(secret, str) else str(secret)
