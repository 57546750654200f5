"""Terminal paths: where a config's relative paths point, and whether a path can be the terminal it names.

An ``mt5`` path is checked as text only (it is a Windows path, often written on another machine); a ``sim``
path is checked on disk, but only when asked (``check-config``): see ``config.checks.terminal_folder_problems``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

MT5_EXECUTABLE = "terminal64.exe"

# C:\... or C:/..., and UNC shares (\\server\share): absolute on Windows whatever machine reads the file.
_WINDOWS_ABSOLUTE = re.compile(r"[A-Za-z]:[\\/]|\\\\|//")
# Characters Windows never allows in a path (a colon is checked apart: it may follow a drive letter).
_WINDOWS_FORBIDDEN = set('<>"|?*') | {chr(code) for code in range(32)}
_LONG_PATH_PREFIX = "\\\\?\\"


def resolve_path(base_dir: Path, raw: str) -> Path:
    """``raw`` made absolute against ``base_dir``; a Windows absolute path is kept as written.

    normpath, not resolve(): the terminal may not exist yet, and symlinks are the user's business. A
    Windows path read on another system (a coordinator on Linux with remote workers on Windows) must not
    be glued onto the config file's folder.
    """
    if _WINDOWS_ABSOLUTE.match(raw) and os.name != "nt":
        return Path(raw)
    path = Path(raw).expanduser()
    return Path(os.path.normpath(path if path.is_absolute() else base_dir / path))


def mt5_terminal_path_problem(raw: str) -> str | None:
    """Why ``raw`` cannot be a Windows path to a terminal's ``terminal64.exe``, or None when it can be."""
    text = raw[len(_LONG_PATH_PREFIX):] if raw.startswith(_LONG_PATH_PREFIX) else raw
    forbidden = sorted({character for character in text if character in _WINDOWS_FORBIDDEN})
    if forbidden:
        shown = ", ".join(repr(character) for character in forbidden)
        return f"cannot be a Windows path: it contains {shown}, got '{raw}'"
    drive_colon = 1 if re.match(r"[A-Za-z]:", text) else -1
    if any(character == ":" and index != drive_colon for index, character in enumerate(text)):
        return f"cannot be a Windows path: a colon may only follow the drive letter (C:\\...), got '{raw}'"
    file_name = re.split(r"[\\/]", text)[-1]
    if file_name.casefold() != MT5_EXECUTABLE:
        folder_hint = " (a folder is not enough)" if "." not in file_name else ""
        return (f'must be the path of the terminal\'s {MT5_EXECUTABLE} with backend = "mt5"{folder_hint}, '
                f"e.g. 'C:\\MT5\\Master\\{MT5_EXECUTABLE}', got '{raw}'")
    return None


def sim_terminal_problem(folder: Path) -> str | None:
    """Why ``folder`` is not a simulated terminal on this machine, or None when it is."""
    from mt5sim.store import Store  # late: only check-config looks at sim folders

    if not folder.exists():
        return (f"the sim terminal folder {folder} does not exist (create it with mt5sim.create_terminal, "
                "or correct the path)")
    if not Store.exists(folder):
        return f"{folder} is not a sim terminal: it holds no terminal database (create it with mt5sim.create_terminal)"
    return None
