"""Is the process that spawned this worker still alive? A local worker must not outlive its coordinator:
an orphaned worker could keep trading while a restarted coordinator spawns a second one for the terminal."""

from __future__ import annotations

import os
import sys


def parent_alive(parent_pid: int) -> bool:
    if sys.platform == "win32":
        return _windows_process_alive(parent_pid)
    # On POSIX an orphan is re-parented (to init or a subreaper), so its parent pid changes.
    return os.getppid() == parent_pid


def _windows_process_alive(pid: int) -> bool:
    # Not os.kill(pid, 0): on Windows that terminates the process.
    if sys.platform != "win32":
        raise RuntimeError("the Windows process check runs on Windows only")
    import ctypes

    synchronize, query_limited_information, wait_timeout = 0x00100000, 0x1000, 0x102
    kernel32 = ctypes.windll.kernel32
    handle = kernel32.OpenProcess(synchronize | query_limited_information, False, pid)
    if not handle:
        return False
    try:
        return kernel32.WaitForSingleObject(handle, 0) == wait_timeout
    finally:
        kernel32.CloseHandle(handle)
