"""Errors that are the user's to fix, kept apart from bugs so the CLI can print them without a traceback."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any


class ConfigError(Exception):
    """The configuration or command line is wrong; nothing was attempted (exit code 2).

    Holds every problem at once so that a user fixes their settings in one go rather than one
    error per run.
    """

    def __init__(self, problems: Iterable[str] | str, *, heading: str = "Configuration error") -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        self.heading = heading
        super().__init__(self.render())

    def render(self) -> str:
        if len(self.problems) == 1:
            return f"{self.heading}: {self.problems[0]}"
        lines = "\n".join(f"  - {p}" for p in self.problems)
        return f"{self.heading} ({len(self.problems)} problems):\n{lines}"

    def __reduce__(self):  # keep picklable across Prefect/multiprocessing boundaries
        return (type(self), (self.problems,), {"heading": self.heading})


def merge_config_errors(errors: Iterable[ConfigError]) -> ConfigError | None:
    """Combine problems from several settings groups into one error, or None if there were none."""
    problems: list[str] = []
    for err in errors:
        problems.extend(err.problems)
    return ConfigError(problems) if problems else None


def gather_settings(*loaders: Callable[[], Any]) -> list[Any]:
    """Run every settings loader and raise one ConfigError listing all their problems, or return
    their results in order: users fix their configuration in one go, not one error per run."""
    results: list[Any] = []
    errors: list[ConfigError] = []
    for load in loaders:
        try:
            results.append(load())
        except ConfigError as exc:
            errors.append(exc)
    merged = merge_config_errors(errors)
    if merged:
        raise merged
    return results
