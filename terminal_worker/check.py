"""``mt5-copier check-config`` on a worker file: is it valid here, and what would ``mt5-copier worker`` run?"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from config import ConfigError
from config.exit_codes import ExitCode
from config.worker_file import load_worker_file
from protocol.curve import load_secret_key_file


def check_worker_file(path: Path, write_out: Callable[[str], object]) -> int:
    """Validate the worker file at ``path`` with what it names on this machine (its key files, a sim terminal's
    folder); print what the worker would run (``write_out``) and return OK, or print every problem to stderr
    and return CONFIG_ERROR."""
    try:
        config = load_worker_file(path, check_files=True)
    except ConfigError as e:
        print(e, file=sys.stderr)
        return ExitCode.CONFIG_ERROR
    terminal, link = config.terminal, config.link
    lines = [
        f"{path}: valid (a worker file)",
        f"  terminal {terminal.name}: {terminal.backend.value} terminal {terminal.path}, account "
        f"{terminal.login}@{terminal.server}; source or target as the coordinator's config says",
    ]
    if link.secret_key_file is not None and link.coordinator_key_file is not None:
        public = load_secret_key_file(link.secret_key_file).public.decode("ascii")
        lines.append(f"  link: {link.connect}, encrypted (CURVE) with this worker's key {link.secret_key_file}, and "
                     f"the coordinator's public key {link.coordinator_key_file}")
        lines.append(f"    this worker's public key is {public}: the coordinator's config names its .key file as "
                     f"public_key_file of terminal {terminal.name}")
    else:
        lines.append(f"  link: {link.connect}, not encrypted (only for a coordinator on this machine, or reached "
                     "through an SSH tunnel)")
    lines.append(f"  state: {config.worker.state_dir} (locks/, logs/), log level {config.worker.log_level}")
    if terminal.password_env and terminal.password() is None:
        lines.append(f"  note: environment variable {terminal.password_env} is not set here; the terminal's saved "
                     "password will be used")
    write_out("\n".join(lines) + "\n")
    return ExitCode.OK
