"""Is a process on this host still alive? Portable, because `os.kill(pid, 0)` is not.

On POSIX, signal 0 checks for existence without delivering anything. On Windows, `os.kill` with 0
sends CTRL_C_EVENT to the process group: a liveness probe would interrupt the very worker it
asks about (and ours, if it shares a console). There, OpenProcess + GetExitCodeProcess answers
without touching the process. psutil would do the same but is not a dependency of this project.
"""

from __future__ import annotations

import os
import sys
from typing import Any

PROCESS_QUERY_LIMITED_INFORMATION = 0x1000
STILL_ACTIVE = 259
ERROR_ACCESS_DENIED = 5


def pid_exists(pid: int) -> bool:
    """True when a process with this pid exists on this host (a zombie counts as alive until reaped)."""
    if pid <= 0:
        return False
    if os.name == "nt" or sys.platform == "win32":
        return windows_pid_exists(pid)
    return posix_pid_exists(pid)


def posix_pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by another user
    return True


def windows_pid_exists(pid: int, kernel32: Any = None) -> bool:
    """OpenProcess the pid and ask for its exit code; `kernel32` is injectable for tests off Windows."""
    if kernel32 is None:
        import ctypes

        kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)  # type: ignore[attr-defined]
        get_last_error = ctypes.get_last_error  # type: ignore[attr-defined]
    else:
        get_last_error = kernel32.GetLastError
    handle = kernel32.OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, False, pid)
    if not handle:
        # Access denied means it exists but belongs to someone else (a service, another user).
        return bool(get_last_error() == ERROR_ACCESS_DENIED)
    try:
        import ctypes

        code = ctypes.c_ulong(0)
        if not kernel32.GetExitCodeProcess(handle, ctypes.byref(code)):
            return True  # cannot tell: treat as alive, the lease still expires on its own
        return code.value == STILL_ACTIVE
    finally:
        kernel32.CloseHandle(handle)
