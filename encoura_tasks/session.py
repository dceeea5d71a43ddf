"""The one `encoura-login` task both Encoura jobs start with (export and upload share it).

It lives beside the slices, not in `encoura_tasks/api` (which is the API client and nothing else):
it is a Prefect task, and it reports a refused login as an outcome the flows turn into exit 2.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.logging import get_run_logger

from common.errors import ConfigError
from common.runtime import current
from encoura_tasks.api.client import EncouraClient
from encoura_tasks.api.errors import EncouraAuthError


@dataclass
class LoginOutcome:
    organizations: list[str] = field(default_factory=list)
    organization: str | None = None  # the organization the run works for
    error: str | None = None  # a user-fixable problem (credentials, organization choice)


@task(name="encoura-login", cache_policy=NO_CACHE)
def encoura_login() -> LoginOutcome:
    """Log in once up front: wrong credentials stop the run with one clear error before anything moves.

    A refused login is an outcome, not a crash: it is reported without a traceback and tried once
    (retries can lock the account), since the fix is in the settings, not in the code. The client
    is the run's (`common.runtime.current(EncouraClient)`), so every later call reuses this login.
    """
    client = current(EncouraClient)
    try:
        orgs = client.login()
    except (EncouraAuthError, ConfigError) as exc:
        message = exc.render() if isinstance(exc, ConfigError) else f"Encoura login failed: {exc}"
        get_run_logger().error("%s", message)
        return LoginOutcome(error=message)
    org = client.auth.organization
    get_run_logger().info("Logged in to Encoura as organization %s", org.uid if org else "?")
    return LoginOutcome(organizations=[o.uid for o in orgs], organization=org.uid if org else None)
