"""Turn a TOML config file (or the dict it parses to) into a validated ``AppConfig``.

As in freqtrade, the shape of every key (``config.keys``, derived from the declarations in ``config.model``)
and then the cross-field checks (``config.checks``), but in one round: the cross-field checks run on every
value whose shape is valid, so one ``ConfigError`` lists everything wrong with the file. A problem inside a
target names it: ``targets[1] (broker-b).lot_multiplier: ...``.
"""

from __future__ import annotations

import dataclasses
import os
import re
import sys
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10
    import tomli as tomllib

from .checks import cross_field_problems, terminal_folder_problems
from .errors import ConfigError, ConfigProblem
from .keys import APP
from .model import (
    AlertsConfig,
    AppConfig,
    CoordinatorConfig,
    CopySettings,
    MetricsConfig,
    Role,
    TargetConfig,
    TerminalConfig,
)
from .schema import INVALID
from .settings import build

EXAMPLE_CONFIG_PATH = Path(__file__).with_name("example.toml")
"""The complete, commented example config shipped with the package."""


def load_config(path: str | os.PathLike[str], *, check_terminal_folders: bool = False) -> AppConfig:
    """Read, parse and validate the TOML config file at ``path``.

    Relative paths inside it resolve against the file's folder. Raises ``ConfigError`` listing every
    problem: a missing or unreadable file, a TOML syntax error, or invalid keys and values.
    ``check_terminal_folders`` also requires every sim terminal's folder to exist here (``check-config``).
    """
    file = Path(path).expanduser().absolute()
    data = read_toml_file(file)
    config = parse_config(data, base_dir=file.parent, source=str(file), check_terminal_folders=check_terminal_folders)
    return dataclasses.replace(config, path=file)


def read_toml_file(file: Path) -> dict[str, Any]:
    """The TOML table in ``file``; ``ConfigError`` naming the file for a missing or unreadable file, text that is
    not UTF-8, or a syntax error. Shared by the coordinator's config and a worker's file."""

    def fail(message: str) -> ConfigError:
        return ConfigError([ConfigProblem("config", message)], str(file))

    try:
        raw = file.read_bytes()
    except FileNotFoundError:
        raise fail(f"file not found: {file}") from None
    except OSError as exc:
        raise fail(f"cannot read {file}: {exc.strerror or exc}") from None
    try:
        # utf-8-sig: Windows editors may start the file with a byte order mark.
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise fail(f"{file} is not UTF-8 text: {exc.reason} at byte {exc.start}") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise fail(f"invalid TOML in {file}: {exc}") from None


def parse_config(
    data: dict[str, Any], *, base_dir: Path, source: str = "<string>", check_terminal_folders: bool = False
) -> AppConfig:
    """Validate already-parsed TOML data and build the typed config.

    Relative paths resolve against ``base_dir``; ``source`` names the data in error messages.
    Raises ``ConfigError`` listing every problem found, the shape and the cross-field ones together.
    """
    if not isinstance(data, dict):
        raise ConfigError([ConfigProblem("config", f"must be a table, got {type(data).__name__}")], source)
    base = Path(base_dir).expanduser().absolute()
    problems: list[ConfigProblem] = []
    checked = APP.validate(data, "", problems)
    problems.extend(cross_field_problems(checked, base))
    if check_terminal_folders:
        problems.extend(terminal_folder_problems(checked, base))
    if problems:
        raise ConfigError(_naming_targets(problems, checked), source)
    return _build(checked, base)


_TARGET_KEY_PATH = re.compile(r"targets\[(\d+)\]")


def _naming_targets(problems: list[ConfigProblem], checked: dict[str, Any]) -> list[ConfigProblem]:
    """``targets[1].x`` becomes ``targets[1] (broker-b).x``: a person thinks of targets by name, not index."""
    targets = checked.get("targets", INVALID)
    names: dict[int, str] = {}
    if isinstance(targets, tuple):
        names = {index: target["name"] for index, target in enumerate(targets)
                 if isinstance(target, dict) and target.get("name", INVALID) is not INVALID}
    named = []
    for problem in problems:
        match = _TARGET_KEY_PATH.match(problem.path)
        if match is not None and int(match[1]) in names:
            path = f"{match[0]} ({names[int(match[1])]}){problem.path[match.end():]}"
            problem = ConfigProblem(path, problem.message)
        named.append(problem)
    return named


def _build(checked: dict[str, Any], base_dir: Path) -> AppConfig:
    # Every key is copied by build(); what is written here is only how the tables make up the whole.
    return AppConfig(
        path=None,
        coordinator=build(CoordinatorConfig, checked["coordinator"], base_dir),
        source=build(TerminalConfig, checked["source"], base_dir, role=Role.SOURCE),
        targets=tuple(
            TargetConfig(
                terminal=build(TerminalConfig, target, base_dir, role=Role.TARGET),
                copy=build(CopySettings, target, base_dir),
            )
            for target in checked["targets"]
        ),
        alerts=build(AlertsConfig, checked["alerts"], base_dir),
        metrics=build(MetricsConfig, checked["metrics"], base_dir),
    )
