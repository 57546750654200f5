"""Read a worker file (``worker.toml``) into a validated ``WorkerFileConfig``, with the main config's checks.

The same schema machinery as the coordinator's config (``config/schema.py``): every problem in one round,
with its key path, "did you mean" for a misspelt key, and a clear word for keys that belong in the
coordinator's config (copy rules, the other terminals) rather than here. ``is_worker_file`` tells the two
kinds of file apart, so every command that takes ``--config`` can take either where both make sense.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

from .choices import Backend
from .errors import ConfigError, ConfigProblem
from .keys import SOURCE
from .loader import read_toml_file
from .model import CopySettings
from .paths import mt5_terminal_path_problem, resolve_path, sim_terminal_problem
from .schema import INVALID, Field, Table
from .settings import build, declared_settings, key_name, schema_fields, table_of
from .worker_model import LinkConfig, WorkerFileConfig, WorkerSettings, WorkerTerminalConfig

# Top-level tables that make a file a worker file, and the ones that make it the coordinator's config.
WORKER_TABLES = frozenset({"link", "terminal"})
COORDINATOR_TABLES = frozenset({"source", "targets"})

_COPY_RULE_HINT = ("a copy rule, which belongs in this terminal's [[targets]] entry of the coordinator's config: a "
                   "worker file holds only its terminal and its link")
_COORDINATOR_TABLE_HINT = ("it belongs in the coordinator's config file: a worker file holds only [link], [terminal] "
                           "and [worker], nothing about copy rules or the other terminals")

_TERMINAL_HINTS = (
    *SOURCE.key_hints,  # password: the same advice as in the coordinator's config
    ("remote", "the coordinator's config says remote = true for this terminal; a worker from a worker file is "
               "always started by hand"),
    ("role", "the coordinator's config says whether this terminal is the source or a target; the worker learns it "
             "when the coordinator welcomes it"),
    ("public_key_file", "the coordinator's config names this worker's public key (its .key file); here, this "
                        "worker's own key pair goes in [link] secret_key_file"),
    ("server_utc_offset", "the coordinator reads it: it belongs in this terminal's entry of the coordinator's "
                          "config"),
    *((key_name(attribute, declared), _COPY_RULE_HINT) for attribute, declared in declared_settings(CopySettings)),
)
_LINK_HINTS = (
    ("bind", "the coordinator binds; a worker connects: connect = \"tcp://COORDINATOR-HOST:PORT\""),
    ("public_key_file", "that is a key of the coordinator's config; here: secret_key_file (this worker's "
                        ".key_secret) and coordinator_key_file (the coordinator's .key)"),
)
_WORKER_HINTS = tuple(
    (key, "the coordinator's [coordinator] table sets it, and tells each worker when it welcomes it")
    for key in ("heartbeat_interval", "worker_timeout", "bind", "hello_timeout", "command_timeout", "interval")
)

LINK = table_of(LinkConfig, key_hints=_LINK_HINTS)
TERMINAL = table_of(WorkerTerminalConfig, key_hints=_TERMINAL_HINTS)
WORKER = Table(fields=schema_fields(WorkerSettings), key_hints=_WORKER_HINTS)
WORKER_FILE = Table(
    fields=(
        Field(name="link", spec=LINK, required=True, description="how the worker reaches its coordinator"),
        Field(name="terminal", spec=TERMINAL, required=True, description="the terminal this worker drives"),
        Field(name="worker", spec=WORKER, description="the worker process"),
    ),
    key_hints=tuple((key, _COORDINATOR_TABLE_HINT) for key in ("coordinator", "source", "targets")),
)


def is_worker_file(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a worker file: it has [link] or [terminal], and neither [source] nor [[targets]].
    False for a file that cannot be read or parsed (loading it as the coordinator's config says why)."""
    try:
        data = read_toml_file(Path(path).expanduser().absolute())
    except ConfigError:
        return False
    return bool(WORKER_TABLES & data.keys()) and not COORDINATOR_TABLES & data.keys()


def load_worker_file(path: str | os.PathLike[str], *, check_files: bool = False) -> WorkerFileConfig:
    """Read, parse and validate the worker file at ``path``; relative paths resolve against its folder.

    Raises ``ConfigError`` listing every problem. ``check_files`` (``check-config``) also checks what the
    file names on this machine: the key files (present, of the right kind, a secret key readable by its
    owner alone) and a sim terminal's folder.
    """
    file = Path(path).expanduser().absolute()
    data = read_toml_file(file)
    config = parse_worker_file(data, base_dir=file.parent, source=str(file), check_files=check_files)
    return dataclasses.replace(config, path=file)


def parse_worker_file(data: dict[str, Any], *, base_dir: Path, source: str = "<string>",
                      check_files: bool = False) -> WorkerFileConfig:
    """Validate already-parsed TOML data of a worker file and build the typed config (see ``load_worker_file``)."""
    base = Path(base_dir).expanduser().absolute()
    problems: list[ConfigProblem] = []
    checked = WORKER_FILE.validate(data, "", problems)
    problems.extend(_cross_key_problems(checked))
    if check_files:
        problems.extend(_file_problems(checked, base))
    if problems:
        raise ConfigError(problems, source)
    return WorkerFileConfig(
        path=None,
        link=build(LinkConfig, checked["link"], base),
        terminal=build(WorkerTerminalConfig, checked["terminal"], base),
        worker=build(WorkerSettings, checked["worker"], base),
    )


def _value(table: object, key: str) -> Any:
    return table.get(key, INVALID) if isinstance(table, dict) else INVALID


def _cross_key_problems(checked: dict[str, Any]) -> list[ConfigProblem]:
    problems = []
    link = checked.get("link", INVALID)
    secret, coordinator = _value(link, "secret_key_file"), _value(link, "coordinator_key_file")
    if secret is not INVALID and coordinator is not INVALID and (secret is None) != (coordinator is None):
        given, missing = ("secret_key_file", "coordinator_key_file") if coordinator is None else \
            ("coordinator_key_file", "secret_key_file")
        problems.append(ConfigProblem(
            f"link.{missing}",
            f"required with link.{given}: an encrypted link needs this worker's secret key and the coordinator's "
            "public key (give both, or neither for a link that is not encrypted)"))
    terminal = checked.get("terminal", INVALID)
    backend, path = _value(terminal, "backend"), _value(terminal, "path")
    if backend is Backend.MT5 and path is not INVALID:
        problem = mt5_terminal_path_problem(path)
        if problem is not None:
            problems.append(ConfigProblem("terminal.path", problem))
    return problems


def _file_problems(checked: dict[str, Any], base_dir: Path) -> list[ConfigProblem]:
    from protocol.curve import public_key_file_problem, secret_key_file_problem  # late: zmq only when checking

    problems = []
    link = checked.get("link", INVALID)
    for key, problem_of in (("secret_key_file", secret_key_file_problem),
                            ("coordinator_key_file", public_key_file_problem)):
        raw = _value(link, key)
        if raw not in (None, INVALID):
            problem = problem_of(resolve_path(base_dir, raw))
            if problem is not None:
                problems.append(ConfigProblem(f"link.{key}", problem))
    terminal = checked.get("terminal", INVALID)
    backend, path = _value(terminal, "backend"), _value(terminal, "path")
    if backend is Backend.SIM and path is not INVALID:
        problem = sim_terminal_problem(resolve_path(base_dir, path))
        if problem is not None:
            problems.append(ConfigProblem("terminal.path", problem))
    return problems
