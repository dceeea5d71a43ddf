"""The claim-holder liveness check: os.kill(pid, 0) on POSIX, OpenProcess on Windows (where signal 0
would be CTRL_C_EVENT). Both code paths run here: Windows through a stand-in for kernel32."""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys

import pytest

from ledger import liveness


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_posix_path_sees_live_and_dead_processes() -> None:
    assert liveness.posix_pid_exists(os.getpid())
    assert not liveness.posix_pid_exists(_dead_pid())
    assert liveness.pid_exists(os.getpid())
    assert not liveness.pid_exists(0)


class FakeKernel32:
    """What kernel32 answers for a table of pids: exit code, or an OpenProcess error."""

    def __init__(self, exit_codes: dict[int, int], denied: set[int] = frozenset()) -> None:  # type: ignore[assignment]
        self.exit_codes, self.denied = exit_codes, denied
        self.last_error = 0
        self.closed: list[int] = []
        self.calls: list[tuple[int, bool, int]] = []

    def OpenProcess(self, access: int, inherit: bool, pid: int) -> int:
        self.calls.append((access, inherit, pid))
        if pid in self.denied:
            self.last_error = liveness.ERROR_ACCESS_DENIED
            return 0
        if pid not in self.exit_codes:
            self.last_error = 87  # ERROR_INVALID_PARAMETER: no such process
            return 0
        return 1000 + pid

    def GetExitCodeProcess(self, handle: int, code_ref: object) -> int:
        ctypes.cast(code_ref, ctypes.POINTER(ctypes.c_ulong)).contents.value = self.exit_codes[handle - 1000]
        return 1

    def CloseHandle(self, handle: int) -> int:
        self.closed.append(handle)
        return 1

    def GetLastError(self) -> int:
        return self.last_error


def test_windows_path_never_signals_and_reads_the_exit_code() -> None:
    k = FakeKernel32({10: liveness.STILL_ACTIVE, 11: 0}, denied={12})
    assert liveness.windows_pid_exists(10, kernel32=k)
    assert not liveness.windows_pid_exists(11, kernel32=k)  # exited, handle still open somewhere
    assert liveness.windows_pid_exists(12, kernel32=k)  # another user's process
    assert not liveness.windows_pid_exists(13, kernel32=k)
    assert k.closed == [1010, 1011]
    assert all(access == liveness.PROCESS_QUERY_LIMITED_INFORMATION for access, _, _ in k.calls)


def test_on_windows_pid_exists_takes_the_openprocess_path(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[int] = []

    def fake_windows(pid: int, kernel32: object = None) -> bool:
        seen.append(pid)
        return True

    def no_kill(pid: int, sig: int) -> None:
        raise AssertionError("os.kill must not be called on Windows (signal 0 is CTRL_C_EVENT there)")

    monkeypatch.setattr(liveness, "windows_pid_exists", fake_windows)
    monkeypatch.setattr(liveness.os, "kill", no_kill)
    monkeypatch.setattr(liveness.sys, "platform", "win32")
    assert liveness.pid_exists(4242)
    assert seen == [4242]
    monkeypatch.setattr(liveness.sys, "platform", "linux")
    monkeypatch.setattr(liveness.os, "name", "nt")
    assert liveness.pid_exists(4243)
    assert seen == [4242, 4243]
