"""One way for every `python -m flows.<name>` entry point to end: clear messages, scheduler-friendly codes.

Nothing here imports Prefect: `prepare_environment` must run before Prefect reads its settings.
"""

from __future__ import annotations

import gc
import logging
import logging.handlers
import os
import re
import sys
import traceback
from collections.abc import Callable
from pathlib import Path

from common import exit_codes
from common.errors import explain
from common.redaction import quiet_noisy_loggers, redact_text

# Our packages log the per-file lines (staged, delivered where, failed why, retried) through the
# standard library; naming them as Prefect "extra loggers" sends them to the run's logs in the UI.
OUR_LOGGERS = ("encoura_tasks", "destinations", "canvas_tasks", "ledger", "common", "flows")

# Defaults for our CLI runs, set before Prefect is imported; a value the user set wins.
PREFECT_DEFAULTS = {
    # The temporary server's telemetry heartbeat prints `database is locked` tracebacks on SQLite.
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    # The temporary server's own INFO lines (uvicorn, services) are noise for someone running a job.
    "PREFECT_SERVER_LOGGING_LEVEL": "WARNING",
    "PREFECT_LOGGING_EXTRA_LOGGERS": ",".join(OUR_LOGGERS),
    # Prefect waits 20 s for its temporary server; on a busy machine it starts slower than that and
    # the run dies with "Timed out while attempting to connect to ephemeral Prefect API server".
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
    # Our loggers also run before a flow starts (settings checks, a preflight's first request): Prefect
    # would print a UserWarning for each such line ("attempted to send logs to the API without a flow
    # run id"); those lines belong on the console only.
    "PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW": "ignore",
}


def debug_requested(argv: list[str] | None = None) -> bool:
    argv = sys.argv[1:] if argv is None else argv
    return "--debug" in argv or os.environ.get("LOG_LEVEL", "").upper() == "DEBUG"


def prepare_environment() -> None:
    """Quiet Prefect and route our loggers to the UI; must run before `import prefect`."""
    if "--debug" in sys.argv[1:]:
        sys.argv.remove("--debug")  # every entry point accepts it; their parsers need not know
        os.environ["LOG_LEVEL"] = "DEBUG"
    for key, value in PREFECT_DEFAULTS.items():
        os.environ.setdefault(key, value)
    if os.environ.get("LOG_LEVEL", "").upper() == "DEBUG":
        os.environ.setdefault("PREFECT_LOGGING_LEVEL", "DEBUG")


class DropTracebacks(logging.Filter):
    """Keep a record's message, drop its traceback (Prefect's engine logs task failures with one).

    Installed on the loggers Prefect's engine writes through, so the console and the API handler
    (the run's logs in the UI) both see one line per failure. Off when debugging.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and not debug_requested([]):
            record.exc_info = None
            record.exc_text = None
        return True


class OneLineFailures(logging.Filter):
    """Prefect's own lines about a failed task say what our one line says, not the library's raw text.

    Prefect's engine logs "Task run failed with exception: OSError(28, ...)" (with the exception
    attached) and then "Finished in state Failed('Task run encountered an exception OSError: ...')"
    (without it). Both are rewritten here, before any handler sees them, so the console and the run's
    logs in the UI carry `common.errors.explain`'s line: the first record's exception is explained and
    remembered by task run, and the second record of that task run reuses it. A public logging filter
    on Prefect's run loggers; the engine is not touched. Off when debugging.
    """

    _FAILED = re.compile(r"^Task run failed with (?:exception|state): .*?(?P<rest> - Retr[^\n]*)?$", re.S)
    _FINISHED = "Finished in state Failed("

    def __init__(self) -> None:
        super().__init__()
        self._lines: dict[str, str] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if debug_requested([]):
            return True
        run = str(getattr(record, "task_run_id", "") or "")
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, Exception):
            line = redact_text(explain(exc)[0])
            found = self._FAILED.match(record.getMessage())
            if found:
                record.msg, record.args = f"Task run failed: {line}{found['rest'] or ''}", ()
            if run:
                self._lines[run] = line
        elif run in self._lines and record.getMessage().startswith(self._FINISHED):
            record.msg, record.args = f"Finished in state Failed({self._lines.pop(run)!r})", ()
        return True


def configure_logging() -> None:
    """Our loggers at INFO (DEBUG with --debug), tracebacks only when debugging, optional LOG_FILE."""
    level = logging.DEBUG if debug_requested([]) else logging.INFO
    for name in OUR_LOGGERS:
        logging.getLogger(name).setLevel(level)
    for name in ("prefect.flow_runs", "prefect.task_runs"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, OneLineFailures) for f in logger.filters):
            logger.addFilter(OneLineFailures())  # first: it needs the exception DropTracebacks removes
        if not any(isinstance(f, DropTracebacks) for f in logger.filters):
            logger.addFilter(DropTracebacks())
    log_file = os.environ.get("LOG_FILE")
    if log_file:
        add_log_file(Path(log_file), level)


def add_log_file(path: Path, level: int = logging.INFO) -> logging.Handler:
    """A rotating log file (5 x 10 MB) readable only by its owner, for offices that keep one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_CREAT | os.O_APPEND | os.O_WRONLY, 0o600)
    os.close(fd)
    os.chmod(path, 0o600)
    handler = logging.handlers.RotatingFileHandler(path, maxBytes=10_000_000, backupCount=5, encoding="utf-8")
    handler.setLevel(level)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    for name in (*OUR_LOGGERS, "prefect.flow_runs", "prefect.task_runs"):
        logger = logging.getLogger(name)
        if not any(getattr(h, "baseFilename", None) == handler.baseFilename for h in logger.handlers):
            logger.addHandler(handler)
    return handler


def run_cli(main: Callable[[], int]) -> None:
    """Run `main` and exit with its code; every failure prints one message (no traceback).

    Settings mistakes exit 2, outages and failed work exit 1. `--debug` or LOG_LEVEL=DEBUG adds the
    traceback below the message.

    The heap is frozen twice (`gc.freeze`, a public hook for this): once here, when the flow's
    imports are done, so the collector stops rescanning Prefect's ~150,000 import-time objects during
    the run; and again just before exit, because the interpreter's own collections at shutdown took
    about a second per run (measured in the benchmark's tear-down, docs/performance.md). Nothing is
    lost by skipping them: everything that must happen at exit is explicit (the ledger and the SSH
    connections are closed by the flow, Prefect drains its logs and events, `logging` flushes files,
    `weakref.finalize` and `atexit` hooks still run); the operating system reclaims the memory.
    """
    gc.freeze()
    prepare_environment()
    quiet_noisy_loggers()
    configure_logging()
    try:
        code = main()
    except KeyboardInterrupt:
        print("Interrupted; the next run resumes where this one stopped.", file=sys.stderr)
        code = exit_codes.INTERRUPTED
    except Exception as exc:
        if debug_requested([]):
            traceback.print_exc()
        message, code = explain(exc)
        print(redact_text(message), file=sys.stderr)
    sys.stdout.flush()
    gc.freeze()
    sys.exit(code)
