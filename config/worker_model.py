"""The worker file (``worker.toml``): what a worker on another machine needs, and nothing more.

A worker started by hand on a VM needs its terminal and its link to the coordinator; the copy rules and the
other accounts stay in the coordinator's config. Its ``[terminal]`` keys are the coordinator config's terminal
keys, the same declarations (``TerminalConfig`` in ``config/model.py``), taken over here rather than declared
twice: a key means the same in both files. ``config/worker_file.py`` reads the file.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .choices import Backend
from .model import CoordinatorConfig, TerminalConfig
from .schema import String
from .settings import config_table, path_setting, setting


def _same_key_as(table: type, attribute: str) -> Any:
    """The declaration of ``table``'s key ``attribute``, for a table here holding the same key."""
    [declared] = [field for field in dataclasses.fields(table) if field.name == attribute]
    if declared.default is dataclasses.MISSING:
        return dataclasses.field(metadata=declared.metadata)
    return dataclasses.field(default=declared.default, metadata=declared.metadata)


def connect_endpoint_problem(endpoint: str) -> str | None:
    """Why ``endpoint`` cannot be the coordinator's address for a worker to connect to, or None."""
    expected = "expected tcp://HOST:PORT (the coordinator's machine and the port of its bind) or ipc://PATH"
    transport, separator, address = endpoint.partition("://")
    if not separator or transport not in ("tcp", "ipc"):
        return f"malformed endpoint {endpoint!r}: {expected}"
    if transport == "ipc":
        return None if address else f"malformed endpoint {endpoint!r}: ipc:// needs a path"
    host, separator, port = address.rpartition(":")
    if not separator or not host or host in ("[]", "*"):
        return f"malformed endpoint {endpoint!r}: {expected}"
    if ":" in host and not (host.startswith("[") and host.endswith("]")):
        return f"malformed endpoint {endpoint!r}: IPv6 addresses need brackets, e.g. tcp://[2001:db8::1]:5757"
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        return f"the port must be a number from 1 to 65535 (the port of the coordinator's bind), got {endpoint!r}"
    return None


@config_table
class LinkConfig:
    """How the worker reaches its coordinator ([link])."""

    connect: str = setting(
        String(non_empty=True, check=connect_endpoint_problem),
        doc="the coordinator's endpoint, tcp://HOST:PORT or ipc://PATH; mt5-copier worker --connect overrides it",
    )
    secret_key_file: Path | None = path_setting(
        default=None,
        doc="this worker's secret key (NAME.key_secret, made here by mt5-copier keys new); with "
            "coordinator_key_file: the link is encrypted (CURVE)",
    )
    coordinator_key_file: Path | None = path_setting(
        default=None,
        doc="the coordinator's public key (its .key file, copied here); given together with secret_key_file",
    )

    @property
    def encrypted(self) -> bool:
        return self.secret_key_file is not None


@config_table
class WorkerTerminalConfig:
    """The terminal this worker drives ([terminal]): the coordinator config's terminal keys, less the ones
    only the coordinator reads. Its role (source or target) is the coordinator's to say."""

    name: str = _same_key_as(TerminalConfig, "name")
    backend: Backend = _same_key_as(TerminalConfig, "backend")
    path: Path = _same_key_as(TerminalConfig, "path")
    login: int = _same_key_as(TerminalConfig, "login")
    server: str = _same_key_as(TerminalConfig, "server")
    password_env: str | None = _same_key_as(TerminalConfig, "password_env")
    poll_interval: float | None = _same_key_as(TerminalConfig, "poll_interval")
    portable: bool = _same_key_as(TerminalConfig, "portable")
    connect_timeout: float = _same_key_as(TerminalConfig, "connect_timeout")

    def password(self) -> str | None:
        """The password from the environment variable named by ``password_env`` (None: none, unset or empty)."""
        if self.password_env is None:
            return None
        return os.environ.get(self.password_env) or None


@config_table
class WorkerSettings:
    """The worker process itself ([worker], optional)."""

    state_dir: Path = path_setting(
        file_default="state",
        doc="folder for the worker's lock file (locks/) and log file (logs/); relative to the worker file's folder",
    )
    log_level: str = _same_key_as(CoordinatorConfig, "log_level")


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerFileConfig:
    """A whole, validated worker file."""

    path: Path | None  # the file; None when parsed from a dict
    link: LinkConfig
    terminal: WorkerTerminalConfig
    worker: WorkerSettings
