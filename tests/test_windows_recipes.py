"""The Windows recipes in ``config/windows/`` (README, "Running unattended on Windows"), checked as far as Linux
allows: each one runs the command it claims, restarts exactly what the exit codes say may be restarted, and
says the same as the README's table.

The policy is the exit codes' (``config/exit_codes.py``): 0 is a stop on purpose and 2 a configuration error
that a restart cannot mend, so neither is restarted; everything else is (1, 3, and a code no ``ExitCode``
names, such as a crash's). The batch files are read the way Windows reads them: ``%VAR%`` expanded from their
``set "VAR=value"`` lines, then the command line split into arguments by the C runtime's rules, which NSSM and
Python both use; NSSM then joins a setting's arguments with spaces. So a path is proven to survive the quoting
only by parsing the result with the copier's own argument parser, with a path that has spaces in it.
"""

from __future__ import annotations

import re
import sys
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from pathlib import Path, PureWindowsPath

import pytest

from config.exit_codes import ExitCode
from coordinator.cli.app import build_parser

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
RECIPES = ROOT / "config" / "windows"
README = (ROOT / "README.md").read_text(encoding="utf-8")
SERVICE_SCRIPTS = {"install-coordinator-service.cmd": "run", "install-worker-service.cmd": "worker"}
TASKS = {"mt5-copier-coordinator-task.xml": "run", "mt5-copier-worker-task.xml": "worker"}
TASK_NS = {"t": "http://schemas.microsoft.com/windows/2004/02/mit/task"}
PATH_WITH_SPACES = r"C:\Program Files\mt5 copier\my config.toml"

# Every parameter the service scripts may set, as NSSM names them (its README, "Managing the service" and on):
# a misspelt one would make `nssm set` fail half-way through an installation.
NSSM_PARAMETERS = frozenset({
    "AppParameters", "AppDirectory", "DisplayName", "Description", "ObjectName", "Start", "AppExit",
    "AppRestartDelay", "AppThrottle", "AppNoConsole", "AppStopMethodSkip", "AppStopMethodConsole",
    "AppStopMethodWindow", "AppStopMethodThreads", "AppStdout", "AppStderr", "AppRotateFiles", "AppRotateOnline",
    "AppRotateSeconds", "AppRotateBytes", "AppEnvironmentExtra",
})
NSSM_START_TYPES = frozenset({"SERVICE_AUTO_START", "SERVICE_DELAYED_AUTO_START", "SERVICE_DEMAND_START"})


def restarted(code: ExitCode) -> bool:
    """The policy every recipe must implement."""
    return code not in (ExitCode.OK, ExitCode.CONFIG_ERROR)


def console_script() -> str:
    """The name pip gives the console script (``Scripts\\NAME.exe`` in a Windows virtual environment)."""
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["scripts"]
    [(name, target)] = scripts.items()
    assert target == "coordinator.cli.app:main"
    return name


# ---- reading a batch file as cmd.exe does --------------------------------------------------------------------


def batch_lines(name: str) -> list[str]:
    raw = (RECIPES / name).read_bytes()
    assert b"\n" not in raw.replace(b"\r\n", b""), f"{name}: cmd.exe needs CRLF line endings (labels, goto)"
    return raw.decode("ascii").split("\r\n")


def batch_variables(lines: list[str]) -> dict[str, str]:
    """The ``set "NAME=VALUE"`` lines, each value expanded with the ones before it."""
    values: dict[str, str] = {}
    for line in lines:
        match = re.fullmatch(r'\s*set "(\w+)=(.*)"\s*', line)
        if match:
            values[match[1]] = expand(match[2], values)
    return values


def expand(text: str, values: dict[str, str]) -> str:
    return re.sub(r"%(\w+)%", lambda m: values.get(m[1], m[0]), text)


def split_arguments(command_line: str) -> list[str]:
    """The C runtime's (and so NSSM's and Python's) split of a Windows command line: whitespace separates
    outside quotes; ``""`` inside quotes is one literal quote; backslashes are literal except before a quote."""
    arguments: list[str] = []
    current: list[str] = []
    started = quoted = False
    i = 0
    while i < len(command_line):
        char = command_line[i]
        if char in " \t" and not quoted:
            if started:
                arguments.append("".join(current))
                current, started = [], False
            i += 1
            continue
        started = True
        if char == "\\":
            end = i
            while end < len(command_line) and command_line[end] == "\\":
                end += 1
            count = end - i
            if end < len(command_line) and command_line[end] == '"':
                current.append("\\" * (count // 2))
                if count % 2:
                    current.append('"')
                    end += 1
            else:
                current.append("\\" * count)
            i = end
            continue
        if char == '"':
            if quoted and command_line[i + 1:i + 2] == '"':
                current.append('"')
                i += 2
                continue
            quoted = not quoted
            i += 1
            continue
        current.append(char)
        i += 1
    if started:
        arguments.append("".join(current))
    return arguments


def test_the_argument_split_follows_the_c_runtime_rules():
    assert split_arguments(r'a "b c" d\e "f\"g" h\\"i j"') == ["a", "b c", r"d\e", 'f"g', r"h\i j"]
    assert split_arguments('set S AppParameters run --config """C:\\a b\\c.toml"""') == \
        ["set", "S", "AppParameters", "run", "--config", '"C:\\a b\\c.toml"']
    assert split_arguments('x "" y') == ["x", "", "y"]


@dataclass(frozen=True)
class ServiceScript:
    """What an install script tells NSSM: the application, and each parameter's value(s)."""

    variables: dict[str, str]
    application: str
    settings: dict[str, str]  # parameter -> value, as NSSM stores it (its arguments joined with spaces)
    exit_actions: dict[str, str]  # "Default" or a code -> Restart, Exit, ...
    raw_lines: list[str]


def read_service_script(name: str, **override: str) -> ServiceScript:
    """``override`` replaces a variable's value, as a person editing the top of the script would."""
    lines = batch_lines(name)
    variables = {**batch_variables(lines), **override}
    application = ""
    settings: dict[str, str] = {}
    exit_actions: dict[str, str] = {}
    for line in lines:
        if not line.startswith('"%NSSM%" '):
            continue
        command, separator, on_error = line.partition(" || ")
        assert separator and on_error == "goto :failed", f"{name}: a failed NSSM step must stop the script: {line}"
        arguments = split_arguments(expand(command, variables))[1:]  # the first is nssm.exe
        verb, service, *rest = arguments
        assert service == variables["SERVICE"], line
        if verb == "install":
            [application] = rest
        elif verb == "set":
            parameter, *value = rest
            assert parameter in NSSM_PARAMETERS, f"{name}: NSSM has no parameter {parameter!r}"
            if parameter == "AppExit":
                code, action = value
                exit_actions[code] = action
            else:
                settings[parameter] = " ".join(value)
        else:
            assert verb == "start", line
    assert "\r\n:failed\r\n" in "\r\n".join(lines) + "\r\n", f"{name}: no :failed label for the steps to go to"
    return ServiceScript(variables, application, settings, exit_actions, lines)


@pytest.mark.parametrize("name", SERVICE_SCRIPTS)
def test_each_service_restarts_exactly_what_the_exit_codes_allow(name):
    script = read_service_script(name)
    assert script.exit_actions.pop("Default") == "Restart"  # a crash's code, which no ExitCode names
    # Every exit code has its action said explicitly: a reader of the script sees the whole policy.
    assert sorted(script.exit_actions) == sorted(str(int(code)) for code in ExitCode)
    for code in ExitCode:
        assert script.exit_actions[str(int(code))] == ("Restart" if restarted(code) else "Exit"), code


@pytest.mark.parametrize(("name", "command"), SERVICE_SCRIPTS.items())
def test_each_service_runs_the_venvs_console_script_with_its_config(name, command):
    script = read_service_script(name)
    application = PureWindowsPath(script.application)
    assert application.name == f"{console_script()}.exe"
    assert application.parent.name == "Scripts" and application.parent.parent.name == ".venv"
    assert script.settings["AppDirectory"] == script.variables["COPIER_DIR"]
    arguments = build_parser().parse_args(split_arguments(script.settings["AppParameters"]))
    assert arguments.command == command
    assert str(arguments.config) == script.variables["CONFIG"]


@pytest.mark.parametrize("name", SERVICE_SCRIPTS)
def test_a_config_path_with_spaces_reaches_the_copier_whole(name):
    script = read_service_script(name, CONFIG=PATH_WITH_SPACES)
    arguments = build_parser().parse_args(split_arguments(script.settings["AppParameters"]))
    assert str(arguments.config) == PATH_WITH_SPACES


@pytest.mark.parametrize("name", [*SERVICE_SCRIPTS, "uninstall-service.cmd", "run-loop.cmd"])
def test_every_path_the_scripts_use_is_quoted(name):
    """cmd.exe splits an unquoted path at its spaces; ``set``, ``rem`` and ``echo`` lines only print or name."""
    lines = batch_lines(name)
    variables = batch_variables(lines)
    paths = {key for key, value in variables.items() if "\\" in value}
    assert paths, name
    for line in lines:
        if re.match(r"\s*(set |rem |echo |@echo )", line, re.IGNORECASE) or not line.strip():
            continue
        quoted = False
        for i, char in enumerate(line):
            if char == '"':
                quoted = not quoted
            match = re.match(r"%(\w+)%", line[i:])
            if match and match[1] in paths:
                assert quoted, f"{name}: %{match[1]}% is not quoted in: {line}"
    for key in paths:
        assert not variables[key].endswith("\\"), f"{name}: {key} ends with a backslash, which escapes a quote"


@pytest.mark.parametrize("name", SERVICE_SCRIPTS)
def test_each_service_stops_cleanly_logs_and_runs_as_the_terminals_user(name):
    script = read_service_script(name)
    settings = script.settings
    # Ctrl-C first (bit 1 of AppStopMethodSkip not set), through the console NSSM creates, with time to stop
    # the workers (up to 9 s for a coordinator: Supervisor.stop_all) before NSSM goes on to TerminateProcess.
    assert int(settings["AppStopMethodSkip"]) & 1 == 0
    assert settings["AppNoConsole"] == "0"
    assert int(settings["AppStopMethodConsole"]) >= 10_000
    assert int(settings["AppRestartDelay"]) >= 1_000
    assert int(settings["AppThrottle"]) >= int(settings["AppRestartDelay"])
    assert settings["Start"] in NSSM_START_TYPES
    assert settings["AppStdout"] == settings["AppStderr"]
    assert PureWindowsPath(settings["AppStdout"]).parent == PureWindowsPath(script.variables["LOG_DIR"])
    assert settings["AppRotateFiles"] == "1"
    assert settings["ObjectName"].startswith(script.variables["RUN_AS"] + " ")  # then the password read
    # The password is asked for when the script runs, never written in it.
    assert script.variables["RUN_AS_PASSWORD"] == ""
    assert all(line == 'set "RUN_AS_PASSWORD="' for line in script.raw_lines
               if line.startswith('set "RUN_AS_PASSWORD='))


def test_the_uninstall_script_removes_the_service_it_is_given():
    lines = batch_lines("uninstall-service.cmd")
    assert 'set "SERVICE=%~1"' in lines
    assert '"%NSSM%" remove "%SERVICE%" confirm || goto :failed' in lines


# ---- the scheduled tasks and their restart loop --------------------------------------------------------------


def loop_policy() -> tuple[set[int], list[str]]:
    """The exit codes run-loop.cmd ends on (each one's label must end the script), and the loop's body."""
    lines = batch_lines("run-loop.cmd")
    start = lines.index(":start")
    body = lines[start:lines.index("", start)]
    stops: set[int] = set()
    for line in body:
        match = re.fullmatch(r'if "%CODE%"=="(\d+)" goto (:\w+)', line)
        if match:
            label = lines.index(match[2])
            ending = lines[label:lines.index("", label)]
            assert ending[-1].startswith("exit /b"), f"label {match[2]} must end the loop"
            stops.add(int(match[1]))
    return stops, body


def test_the_tasks_loop_restarts_exactly_what_the_exit_codes_allow():
    stops, body = loop_policy()
    assert stops == {int(code) for code in ExitCode if not restarted(code)}
    assert body[-1] == "goto :start"  # every other code, a crash's included, goes round again
    assert body[2] == 'set "CODE=%ERRORLEVEL%"', "the exit code must be read right after the command"


def test_the_tasks_loop_runs_the_venvs_console_script():
    lines = batch_lines("run-loop.cmd")
    executable = PureWindowsPath(batch_variables(lines)["MT5_COPIER"])
    assert executable.name == f"{console_script()}.exe" and executable.parent.name == "Scripts"
    assert lines[lines.index(":start") + 1] == '"%MT5_COPIER%" %*'


def task(name: str) -> ElementTree.Element:
    raw = (RECIPES / name).read_bytes()
    raw.decode("ascii")  # no encoding question for schtasks /Create /XML to get wrong
    assert b"\n" not in raw.replace(b"\r\n", b""), name
    return ElementTree.fromstring(raw)


def text_of(root: ElementTree.Element, path: str) -> str:
    element = root.find(path, TASK_NS)
    assert element is not None and element.text is not None, path
    return element.text.strip()


@pytest.mark.parametrize(("name", "command"), TASKS.items())
def test_each_task_runs_the_loop_with_the_copiers_command(name, command):
    root = task(name)
    executable = PureWindowsPath(text_of(root, "t:Actions/t:Exec/t:Command"))
    assert executable.name == "run-loop.cmd" and (RECIPES / executable.name).exists()
    arguments = build_parser().parse_args(split_arguments(text_of(root, "t:Actions/t:Exec/t:Arguments")))
    assert arguments.command == command
    assert PureWindowsPath(str(arguments.config)).parent == PureWindowsPath(
        text_of(root, "t:Actions/t:Exec/t:WorkingDirectory"))


@pytest.mark.parametrize("name", TASKS)
def test_each_task_runs_for_ever_in_the_trading_users_session(name):
    root = task(name)
    principal = root.find("t:Principals/t:Principal", TASK_NS)
    assert principal is not None
    # At the logon of the user who runs the terminals, in that session (InteractiveToken: no stored password).
    assert text_of(root, "t:Triggers/t:LogonTrigger/t:UserId") == text_of(principal, "t:UserId")
    assert text_of(principal, "t:LogonType") == "InteractiveToken"
    assert root.find("t:Actions", TASK_NS).get("Context") == principal.get("id")
    settings = root.find("t:Settings", TASK_NS)
    assert text_of(settings, "t:ExecutionTimeLimit") == "PT0S"  # the default stops a task after 72 hours
    assert 4 <= int(text_of(settings, "t:Priority")) <= 6  # normal priority; the default, 7, is below normal
    assert text_of(settings, "t:MultipleInstancesPolicy") == "IgnoreNew"
    assert text_of(settings, "t:DisallowStartIfOnBatteries") == "false"
    assert text_of(settings, "t:StopIfGoingOnBatteries") == "false"
    # The schema's bounds (MS-TSCH 2.5.4.2): an interval of one minute at least, 1 to 255 attempts.
    assert text_of(settings, "t:RestartOnFailure/t:Interval") == "PT1M"
    assert 1 <= int(text_of(settings, "t:RestartOnFailure/t:Count")) <= 255


# ---- the README ------------------------------------------------------------------------------------------------


def readme_section(heading: str) -> str:
    return README.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]


def readme_restart_table() -> tuple[dict[int, tuple[str, bool]], bool]:
    """The table under "Running unattended on Windows": code -> (meaning, restarted), and whether a code no
    ExitCode names ("any other") is restarted."""
    section = readme_section("Running unattended on Windows")
    rows = re.findall(r"^\| \*\*(\d)\*\* \| (.+?) \| (yes|no)\b.*\|$", section, re.MULTILINE)
    other = re.findall(r"^\| any other \| .+? \| (yes|no)\b.*\|$", section, re.MULTILINE)
    assert len(other) == 1
    return {int(code): (meaning, answer == "yes") for code, meaning, answer in rows}, other[0] == "yes"


def test_the_readme_table_states_the_policy_the_recipes_implement():
    documented, other_restarted = readme_restart_table()
    assert sorted(documented) == [int(code) for code in ExitCode]
    for code in ExitCode:
        meaning, is_restarted = documented[code]
        assert meaning.lower().startswith(code.meaning), (code, meaning)
        assert is_restarted == restarted(code), code
    assert other_restarted
    for name in SERVICE_SCRIPTS:
        actions = read_service_script(name).exit_actions
        assert {int(code) for code, action in actions.items() if code != "Default" and action == "Exit"} == \
            {code for code, (_, is_restarted) in documented.items() if not is_restarted}
    assert loop_policy()[0] == {code for code, (_, is_restarted) in documented.items() if not is_restarted}


def test_the_readme_names_every_recipe_and_each_exists():
    shipped = {path.name for path in RECIPES.iterdir() if path.suffix in (".cmd", ".xml")}
    section = readme_section("Running unattended on Windows")
    named = set(re.findall(r"`([\w-]+\.(?:cmd|xml))[` ]", section))
    assert named == shipped
