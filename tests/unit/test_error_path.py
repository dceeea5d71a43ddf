"""The translation from any exception to one line and an exit code (pure logic; the CLI half is in
tests/integration/test_cli_errors.py)."""

from __future__ import annotations

import errno
import logging
import sys

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from common.cli import DropTracebacks, add_log_file
from common.errors import ConfigError, explain


def test_disk_full_while_staging_is_transient_and_names_the_path() -> None:
    exc = OSError(errno.ENOSPC, "No space left on device", "/state/staging/p.csv")
    message, code = explain(exc)
    assert code == 1
    assert "/state/staging/p.csv" in message and "STATE_DIR" in message


def test_cause_chain_is_searched() -> None:
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device", "/x")
        except OSError as inner:
            raise RuntimeError("write failed") from inner
    except RuntimeError as outer:
        message, code = explain(outer)
    assert code == 1 and "No space left" in message


@pytest.mark.parametrize(
    ("err", "code"),
    [(errno.EACCES, 2), (errno.ENOTDIR, 2), (errno.EEXIST, 2), (errno.ENOENT, 2)],
)
def test_folder_problems_are_settings(err: int, code: int) -> None:
    message, got = explain(OSError(err, "x", "/srv/share"))
    assert got == code and "/srv/share" in message


def test_sqlite_unopenable_is_a_setting(tmp_path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "f").write_text("x")
    engine = create_engine(f"sqlite:///{tmp_path / 'f' / 'db.sqlite3'}")
    with pytest.raises(OperationalError) as info, engine.connect() as conn:
        conn.execute(text("select 1"))
    message, code = explain(info.value)
    assert code == 2 and "LEDGER_URL" in message and "\n" not in message


def test_our_error_classes_are_recognized_by_name() -> None:
    class PublishError(Exception):
        pass

    class HostKeyError(PublishError):
        pass

    assert explain(HostKeyError("slate: host key changed"))[1] == 2
    assert explain(PublishError("slate: unreachable"))[1] == 1
    assert explain(ConfigError("X is wrong")) == ("Configuration error: X is wrong", 2)


def test_unknown_errors_still_one_line_pointing_at_debug() -> None:
    message, code = explain(ValueError("boom\nsecond line"))
    assert code == 1 and message == "ValueError: boom (run with --debug for the traceback)"


def test_drop_tracebacks_filter_keeps_message_drops_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LOG_LEVEL", raising=False)
    try:
        raise ValueError("x")
    except ValueError:
        record = logging.LogRecord("prefect.task_runs", logging.ERROR, "f", 1, "Task run failed", None, sys.exc_info())
    assert DropTracebacks().filter(record)
    assert record.exc_info is None and record.getMessage() == "Task run failed"
    monkeypatch.setenv("LOG_LEVEL", "DEBUG")
    try:
        raise ValueError("x")
    except ValueError:
        record = logging.LogRecord("prefect.task_runs", logging.ERROR, "f", 1, "m", None, sys.exc_info())
    DropTracebacks().filter(record)
    assert record.exc_info is not None


def test_log_file_is_private(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "logs" / "run.log"
    handler = add_log_file(path)
    logging.getLogger("destinations").setLevel(logging.INFO)
    try:
        logging.getLogger("destinations").info("delivered to share: p.csv")
        handler.flush()
        assert path.stat().st_mode & 0o777 == 0o600
        assert "delivered to share: p.csv" in path.read_text()
    finally:
        for name in ("destinations", "encoura_tasks", "canvas_tasks", "ledger", "common", "flows",
                     "prefect.flow_runs", "prefect.task_runs"):
            logging.getLogger(name).removeHandler(handler)
        handler.close()


def test_a_reworded_error_keeps_its_words_and_tls_is_not_a_folder() -> None:
    """`raise ... from None` means the outer message replaced the inner one; a failed certificate check
    (an OSError with errno 1) is not "Permission denied writing ?" and needs the CA bundle setting (2)."""
    import ssl

    class CanvasAPIError(Exception):
        pass

    try:
        try:
            raise ssl.SSLCertVerificationError(1, "certificate verify failed: self-signed certificate")
        except OSError:
            raise CanvasAPIError("Canvas at 127.0.0.1:1: certificate not trusted; set CANVAS_CA_BUNDLE") from None
    except CanvasAPIError as exc:
        message, code = explain(exc)
    assert code == 2 and message.startswith("Canvas at 127.0.0.1:1") and "Permission" not in message
    try:
        try:
            raise ConnectionRefusedError(111, "Connection refused")
        except OSError:
            raise CanvasAPIError("Canvas at 127.0.0.1:1: the connection was refused") from None
    except CanvasAPIError as exc:
        assert explain(exc) == ("Canvas at 127.0.0.1:1: the connection was refused", 1)


def test_prefect_failure_lines_carry_the_explained_line(monkeypatch: pytest.MonkeyPatch) -> None:
    from common.cli import OneLineFailures

    monkeypatch.delenv("LOG_LEVEL", raising=False)
    flt = OneLineFailures()
    exc = OSError(errno.ENOSPC, "No space left on device")
    failed = logging.LogRecord("prefect.task_runs", logging.ERROR, "f", 1,
                               f"Task run failed with exception: {exc!r} - Retries are exhausted", None,
                               (type(exc), exc, None))
    failed.task_run_id = "t-1"
    finished = logging.LogRecord("prefect.task_runs", logging.ERROR, "f", 1,
                                 "Finished in state Failed('Task run encountered an exception OSError: [Errno 28] x')",
                                 None, None)
    finished.task_run_id = "t-1"
    assert flt.filter(failed) and flt.filter(finished)
    assert failed.getMessage().startswith("Task run failed: No space left on")
    assert failed.getMessage().endswith(" - Retries are exhausted")
    assert finished.getMessage().startswith("Finished in state Failed('No space left on")
    assert "Errno" not in failed.getMessage() + finished.getMessage()


def test_cli_exit_skips_the_shutdown_collections_but_keeps_the_exit_code_and_the_log_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """run_cli freezes the heap before exiting (the interpreter's shutdown collections cost about a
    second per run), objects made during the run included; what must happen at exit still does: the
    code, the log file's last line."""
    import os
    import subprocess

    log = tmp_path / "run.log"
    script = (
        "import atexit, gc, logging\n"
        "from common.cli import run_cli\n"
        "made = []\n"
        "def main():\n"
        "    before = gc.get_freeze_count()\n"
        "    made.extend([] for _ in range(10_000))  # live until exit: only the exit freeze covers them\n"
        "    frozen = lambda: gc.get_freeze_count() >= before + 10_000  # noqa: E731\n"
        "    atexit.register(lambda: print('run objects frozen:', frozen(), flush=True))\n"
        "    logging.getLogger('flows').info('last line before exit')\n"
        "    return 3\n"
        "run_cli(main)\n"
    )
    env = {**os.environ, "LOG_FILE": str(log)}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 3, done.stderr
    assert "run objects frozen: True" in done.stdout
    assert "last line before exit" in log.read_text()
