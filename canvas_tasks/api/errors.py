"""What can go wrong talking to Canvas, split by who must act: the user (ConfigError, exit 2) or the run (exit 1)."""

from __future__ import annotations

from common.errors import ConfigError


class CanvasTokenRejected(ConfigError):
    """401: the token is wrong, expired or revoked. Retrying cannot help, so nothing is retried."""

    def __init__(self, problems: object = None, *, heading: str = "Configuration error") -> None:
        super().__init__(
            "CANVAS_ACCESS_TOKEN was rejected by Canvas (401); create a new access token and set it",
            heading=heading,
        )


class CanvasRefused(ConfigError):
    """400/403/404 that is not a rate limit: Canvas understood us and said no (e.g. not a root account)."""

    def __init__(self, problems: object, *, heading: str = "Canvas refused the request") -> None:
        super().__init__(problems if isinstance(problems, (str, list)) else str(problems), heading=heading)


class CanvasAPIError(Exception):
    """Canvas kept failing (5xx, network, rate limit) after every retry, or answered with nonsense."""


class SubmitOutcomeUnknown(CanvasAPIError):
    """The upload may or may not have created an import: it is never re-sent blindly (no double import)."""
