"""One way for every `python -m flows.<name>` entry point to end: clear messages, scheduler-friendly codes."""

from __future__ import annotations

import sys
from collections.abc import Callable

from common import exit_codes
from common.errors import ConfigError
from common.redaction import quiet_noisy_loggers, redact_text


def run_cli(main: Callable[[], int]) -> None:
    """Run `main` and exit with its code; user mistakes print one message (no traceback) and exit 2."""
    quiet_noisy_loggers()
    try:
        code = main()
    except ConfigError as exc:
        print(redact_text(exc.render()), file=sys.stderr)
        code = exit_codes.CONFIG_ERROR
    except KeyboardInterrupt:
        print("Interrupted; the next run resumes where this one stopped.", file=sys.stderr)
        code = exit_codes.INTERRUPTED
    sys.stdout.flush()
    sys.exit(code)
