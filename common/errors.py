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


# ----------------------------------------------------------------------------- one error path
TRANSIENT = 1  # mirrors common.exit_codes.WORK_FAILED: an outage, try again later
SETTINGS = 2  # mirrors common.exit_codes.CONFIG_ERROR: the settings are wrong


def _first_line(text: str) -> str:
    """Library messages can span many lines (SQL, server banners); the screen gets the first one."""
    return (text.strip().splitlines() or [""])[0]


def _oserror_message(exc: OSError) -> tuple[str, int] | None:
    """Filesystem errors name the path and the setting that usually points at it.

    TLS errors are OSErrors too (a failed certificate check carries errno 1, EPERM): they are not a
    folder's permissions and are left to the network messages."""
    import errno
    import ssl

    if isinstance(exc, ssl.SSLError):
        return None
    where = exc.filename or "?"
    hint = "check STATE_DIR and the DESTINATIONS__<NAME>__URL folders"
    if exc.errno == errno.ENOSPC:  # a write to an open file names no path: STATE_DIR is where we stage
        disk = f"the device holding {exc.filename}" if exc.filename else "a disk (usually the one holding STATE_DIR)"
        return f"No space left on {disk}: free space or point STATE_DIR at a larger disk; then run again", TRANSIENT
    if isinstance(exc, ConnectionError | TimeoutError):
        return None  # a socket, not a folder: see _connection_message
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"Permission denied writing {where}: make it writable for this user or {hint}", SETTINGS
    if exc.errno in (errno.ENOTDIR, errno.EEXIST):
        return f"{where} (or a folder above it) is a file, not a folder: move the file away or {hint}", SETTINGS
    if exc.errno == errno.ENOENT:
        return f"{where} does not exist: create it or {hint}", SETTINGS
    return None


def _connection_message(exc: BaseException) -> tuple[str, int] | None:
    """A bare socket error that nothing above it explained: the last resort, it cannot name the host."""
    if isinstance(exc, ConnectionError | TimeoutError):
        return f"Connection failed ({_first_line(str(exc))}): is the host up and the port right? Try again", TRANSIENT
    return None


def _chain(exc: BaseException) -> list[BaseException]:
    """The exception and its causes, outermost first. `raise ... from None` ends the walk: whoever wrote
    it replaced the inner error's message with a better one."""
    found: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and all(current is not seen for seen in found):
        found.append(current)
        if current.__cause__ is not None:
            current = current.__cause__
        else:
            current = None if current.__suppress_context__ else current.__context__
    return found


def _untrusted_certificate(exc: BaseException) -> bool:
    """A TLS certificate nobody trusts stays untrusted on the next run: a setting (the CA bundle), not an
    outage. Looks through `from None` too: a client may have reworded the error, not changed its cause."""
    import ssl

    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ssl.SSLCertVerificationError):
            return True
        current = current.__cause__ or current.__context__
    return False


def _sqlalchemy_message(exc: BaseException) -> tuple[str, int] | None:
    """The ledger's database: a server that is down is transient; a file we cannot write is a setting."""
    if not type(exc).__module__.startswith("sqlalchemy"):
        return None
    orig = getattr(exc, "orig", None)
    text = _first_line(str(orig if orig is not None else exc))
    lowered = text.lower()
    if "disk is full" in lowered or "no space left" in lowered:
        return (
            f"No space left for the ledger database ({text}): free space on the disk holding STATE_DIR "
            "(or LEDGER_URL's file); then run again",
            TRANSIENT,
        )
    if "readonly" in lowered or "read-only" in lowered or "unable to open database" in lowered:
        return (
            f"The ledger database cannot be written ({text}): make the SQLite file and its folder writable, "
            "or set LEDGER_URL / STATE_DIR",
            SETTINGS,
        )
    return (
        f"The ledger database is unreachable ({text}): start PostgreSQL or check LEDGER_URL; then run again",
        TRANSIENT,
    )


# Our packages' error classes already carry a message that names the host, folder or setting; common
# may not import them (import rules), so they are recognized by class name, most specific first.
_KNOWN_ERRORS: tuple[tuple[str, int], ...] = (
    ("HostKeyError", SETTINGS),
    ("AuthenticationRefused", SETTINGS),
    ("EncouraAuthError", SETTINGS),
    ("UploadSourceError", SETTINGS),
    ("DestinationUnavailable", TRANSIENT),
    ("PublishError", TRANSIENT),
    ("EncouraError", TRANSIENT),
    ("CanvasAPIError", TRANSIENT),
)

# Set on an exception whose message already says which host failed and what to change
# (common.http_errors.ExplainingTransport does): nothing below it in the chain says it better.
EXPLAINED = "explained_for_people"


def _known_code(exc: BaseException) -> int | None:
    code = getattr(exc, "exit_code", None)
    if code is None:
        names = {cls.__name__ for cls in type(exc).__mro__}
        code = next((c for name, c in _KNOWN_ERRORS if name in names), None)
    return code if code in (TRANSIENT, SETTINGS) else None


def explain(exc: BaseException) -> tuple[str, int]:
    """One line a person can act on, and the exit code, for any exception that ends a run.

    Our own errors already say what to fix; library errors (filesystem, SQLAlchemy, SSH) are translated
    here, so the CLI and the flow's log in the Prefect UI print the same line and no traceback. An
    exception we do not know still becomes one line, with a pointer to `--debug` for the traceback.
    """
    if isinstance(exc, ConfigError):
        return exc.render(), SETTINGS
    message = _first_line(str(exc)) or type(exc).__name__
    top_code = _known_code(exc)
    chain = _chain(exc)
    for current in chain:  # the cause often names the real problem
        if getattr(current, EXPLAINED, False):
            # Our own wrapper around it adds context (what we were doing); keep its words then.
            text = message if top_code is not None else _first_line(str(current))
            return text, SETTINGS if _untrusted_certificate(current) else TRANSIENT
        if isinstance(current, OSError) and (found := _oserror_message(current)):
            return found
        if found := _sqlalchemy_message(current):
            return found
    if top_code is not None:
        if top_code == TRANSIENT and _untrusted_certificate(exc):
            return message, SETTINGS
        return message, top_code
    for current in chain:
        if found := _connection_message(current):
            return found
    return f"{type(exc).__name__}: {message} (run with --debug for the traceback)", TRANSIENT
