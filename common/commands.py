"""The shape every `python -m flows.<name>` command shares: parse, (sandbox), check settings, run, report.

Separate from `common.cli`, which must not import Prefect (it runs before Prefect reads its settings).
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Any

from prefect.states import State

from common.errors import ConfigError
from common.run_context import finish_cli_run


def parse_command_line(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """argparse prints its usage message; a bad command line then ends as one ConfigError (exit 2)."""
    try:
        return parser.parse_args(argv)
    except SystemExit as exc:
        if exc.code in (0, None):  # --help
            raise
        raise ConfigError("see the usage above", heading="Invalid command line") from None


def run_flow_command(
    *,
    sandbox: AbstractContextManager[object] | None,
    check_settings: Callable[[], object],
    start: Callable[[], State[Any]],
    print_report: Callable[[dict[str, Any]], None],
) -> int:
    """Inside the sandbox (if any): settings are checked before Prefect starts (a mistake costs no server
    and no network), then the flow runs and its report becomes the console output and exit code."""
    with sandbox if sandbox is not None else contextlib.nullcontext():
        check_settings()
        return finish_cli_run(start(), print_report)
