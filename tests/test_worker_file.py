"""The worker file (worker.toml): loading it, every kind of mistake in it, check-config on it, and the
documentation of its keys."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest

import mt5sim
from config import Backend, ConfigError
from config.settings import declared_settings, documented_default, key_name
from config.worker_file import LINK, TERMINAL, WORKER, is_worker_file, load_worker_file
from config.worker_model import LinkConfig, WorkerSettings, WorkerTerminalConfig
from coordinator.cli.app import main
from protocol.curve import create_key_pair

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "config" / "worker.example.toml"

GOOD = """
[link]
connect = "tcp://coordinator-host:5757"

[terminal]
name = "broker-a"
backend = "sim"
path = "../terminals/broker-a"
login = 2001
server = "Sim-Server"
"""


def write(folder: Path, text: str, name: str = "worker.toml") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def problems(path: Path, **options: bool) -> list[str]:
    with pytest.raises(ConfigError) as refused:
        load_worker_file(path, **options)
    return [str(problem) for problem in refused.value.problems]


# ---------------------------------------------------------------------------------------------------
# Loading


def test_a_good_file_loads_with_its_defaults_and_paths_relative_to_its_own_folder(tmp_path):
    path = write(tmp_path / "vm", GOOD)
    config = load_worker_file(path)

    assert config.path == path
    assert config.link == LinkConfig(connect="tcp://coordinator-host:5757")
    assert not config.link.encrypted
    assert config.terminal == WorkerTerminalConfig(
        name="broker-a", backend=Backend.SIM, path=tmp_path / "terminals" / "broker-a", login=2001,
        server="Sim-Server", password_env=None, poll_interval=None, portable=False, connect_timeout=60.0)
    assert config.worker == WorkerSettings(state_dir=tmp_path / "vm" / "state", log_level="INFO")


def test_every_key_set_and_key_files_resolved_against_the_file(tmp_path):
    path = write(tmp_path, GOOD.replace('connect = "tcp://coordinator-host:5757"', '''
connect = "tcp://[2001:db8::1]:5757"
secret_key_file = "keys/broker-a.key_secret"
coordinator_key_file = "/elsewhere/coordinator.key"''') + """
password_env = "BROKER_A_PASSWORD"
poll_interval = 0.5
portable = true
connect_timeout = 5

[worker]
state_dir = "var"
log_level = "debug"
""")
    config = load_worker_file(path)

    assert config.link.secret_key_file == tmp_path / "keys" / "broker-a.key_secret"
    assert config.link.coordinator_key_file == Path("/elsewhere/coordinator.key")
    assert config.link.encrypted
    assert (config.terminal.password_env, config.terminal.poll_interval, config.terminal.portable,
            config.terminal.connect_timeout) == ("BROKER_A_PASSWORD", 0.5, True, 5.0)
    assert config.worker == WorkerSettings(state_dir=tmp_path / "var", log_level="DEBUG")


def test_the_shipped_example_is_valid_and_uses_every_key():
    config = load_worker_file(EXAMPLE)
    assert (config.terminal.name, config.terminal.backend, config.link.encrypted) == ("broker-a", Backend.MT5, True)

    data = tomllib.loads(EXAMPLE.read_text(encoding="utf-8"))
    for table, schema in (("link", LINK), ("terminal", TERMINAL), ("worker", WORKER)):
        assert set(schema.field_names()) <= data[table].keys(), table


def test_missing_tables_keys_and_wrong_types_are_all_reported_at_once(tmp_path):
    path = write(tmp_path, """
[link]
connect = 5757

[terminal]
name = "broker a"
login = "2001"
server = ""
poll_interval = 0
""")
    assert problems(path) == [
        "link.connect: must be a string, got integer 5757",
        "terminal.name: must be 1 to 64 characters from A-Z a-z 0-9 _ . -, got string 'broker a'",
        "terminal.backend: required key is missing",
        "terminal.path: required key is missing",
        "terminal.login: must be an integer, got string '2001'",
        "terminal.server: must not be empty",
        "terminal.poll_interval: must be at least 0.01, got 0",
    ]
    assert problems(write(tmp_path, "[worker]\nlog_level = 'loud'\n")) == [
        "link: required table [link] is missing",
        "terminal: required table [terminal] is missing",
        "worker.log_level: must be one of 'TRACE', 'DEBUG', 'INFO', 'SUCCESS', 'WARNING', 'ERROR', 'CRITICAL', "
        "got 'loud'",
    ]


def test_an_unknown_key_gets_a_close_match(tmp_path):
    path = write(tmp_path, GOOD.replace("login = 2001", "logn = 2001"))
    assert problems(path) == [
        "terminal.logn: unknown key (did you mean 'login'?); accepted keys: backend, connect_timeout, login, name, "
        "password_env, path, poll_interval, portable, server",
        "terminal.login: required key is missing",
    ]


def test_a_password_gets_the_same_advice_as_in_the_coordinators_config_and_is_never_shown(tmp_path):
    path = write(tmp_path, GOOD + 'password = "hunter2"\n')
    [problem] = problems(path)
    assert problem.startswith("terminal.password: unknown key (passwords never go in the config file: put it in an "
                              "environment variable and name that variable in password_env)")
    assert "hunter2" not in problem
    [problem] = problems(write(tmp_path, GOOD + 'password_env = "hunter2!"\n'))
    assert "hunter2" not in problem and "NAME of an environment variable" in problem


def test_keys_of_the_coordinators_config_are_refused_saying_where_they_belong(tmp_path):
    path = write(tmp_path, GOOD.replace('server = "Sim-Server"', '''server = "Sim-Server"
lot_multiplier = 2.0
remote = true
server_utc_offset = 2
public_key_file = "keys/broker-a.key"''') + """
[coordinator]
bind = "tcp://0.0.0.0:5757"
""")
    found = problems(path)
    assert [problem.split(":")[0] for problem in found] == [
        "coordinator", "terminal.lot_multiplier", "terminal.remote", "terminal.server_utc_offset",
        "terminal.public_key_file"]
    assert "it belongs in the coordinator's config file" in found[0]
    assert "a copy rule, which belongs in this terminal's [[targets]] entry of the coordinator's config" in found[1]
    assert "the coordinator's config says remote = true" in found[2]
    assert "belongs in this terminal's entry of the coordinator's config" in found[3]
    assert "here, this worker's own key pair goes in [link] secret_key_file" in found[4]
    link = problems(write(tmp_path, GOOD.replace("[link]", '[link]\nbind = "tcp://0.0.0.0:5757"')))
    assert link[0].startswith('link.bind: unknown key (the coordinator binds; a worker connects: connect = ')
    worker = problems(write(tmp_path, GOOD + "[worker]\nworker_timeout = 3\n"))
    assert "the coordinator's [coordinator] table sets it" in worker[0]


def test_a_coordinator_config_is_not_a_worker_file_and_a_worker_file_is(tmp_path):
    assert is_worker_file(write(tmp_path, GOOD))
    assert is_worker_file(write(tmp_path, "[link]\n"))  # its problems are the worker file's to report
    assert not is_worker_file(write(tmp_path, GOOD + "[source]\nname = 'm'\n"))
    assert not is_worker_file(write(tmp_path, "[[targets]]\n[terminal]\n"))
    assert not is_worker_file(write(tmp_path, "[coordinator]\n"))
    assert not is_worker_file(write(tmp_path, "[link\n"))  # invalid TOML: the main loader says why
    assert not is_worker_file(tmp_path / "missing.toml")


def test_endpoints_keys_in_pairs_and_mt5_paths_are_checked(tmp_path):
    for endpoint, message in (("tcp://host:*", "the port must be a number from 1 to 65535"),
                              ("tcp://host", "malformed endpoint 'tcp://host'"),
                              ("udp://host:5757", "malformed endpoint"),
                              ("tcp://::1:5757", "IPv6 addresses need brackets"),
                              ("ipc://", "ipc:// needs a path")):
        [problem] = problems(write(tmp_path, GOOD.replace("tcp://coordinator-host:5757", endpoint)))
        assert problem.startswith("link.connect: ") and message in problem, problem
    assert load_worker_file(write(tmp_path, GOOD.replace("tcp://coordinator-host:5757", "ipc:///tmp/c"))).link
    [problem] = problems(write(tmp_path, GOOD.replace("[link]", '[link]\nsecret_key_file = "k.key_secret"')))
    assert problem.startswith("link.coordinator_key_file: required with link.secret_key_file")
    [problem] = problems(write(tmp_path, GOOD.replace('backend = "sim"', 'backend = "mt5"')))
    assert problem.startswith("terminal.path: must be the path of the terminal's terminal64.exe")


# ---------------------------------------------------------------------------------------------------
# check-config


def cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def vm(tmp_path: Path) -> Path:
    """A worker's machine: a sim terminal, its key pair and the coordinator's public key, and its worker file."""
    mt5sim.create_terminal(tmp_path / "terminals" / "broker-a", login=2001, server="Sim-Server")
    keys = tmp_path / "keys"
    keys.mkdir()
    create_key_pair(keys, "broker-a")
    create_key_pair(keys, "coordinator")
    (keys / "coordinator.key_secret").unlink()  # it stays on the coordinator's machine
    return write(tmp_path / "vm", GOOD.replace('connect = "tcp://coordinator-host:5757"', '''
connect = "tcp://coordinator-host:5757"
secret_key_file = "../keys/broker-a.key_secret"
coordinator_key_file = "../keys/coordinator.key"'''))


def test_check_config_on_a_worker_file_says_what_it_would_run(capsys, vm, tmp_path):
    code, out, err = cli(capsys, "check-config", "--config", str(vm))

    assert (code, err) == (0, "")
    assert out.startswith(f"{vm}: valid (a worker file)\n")
    assert f"terminal broker-a: sim terminal {tmp_path / 'terminals' / 'broker-a'}, account 2001@Sim-Server" in out
    assert "link: tcp://coordinator-host:5757, encrypted (CURVE)" in out
    public = re.search(r'public-key = "(.+)"', (tmp_path / "keys" / "broker-a.key").read_text())[1]
    assert f"this worker's public key is {public}" in out
    secret = re.search(r'secret-key = "(.+)"', (tmp_path / "keys" / "broker-a.key_secret").read_text())[1]
    assert secret not in out
    plain = write(tmp_path / "vm", GOOD, "plain.toml")
    code, out, _ = cli(capsys, "check-config", "--config", str(plain))
    assert code == 0 and "link: tcp://coordinator-host:5757, not encrypted" in out


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX file modes")
def test_check_config_refuses_a_secret_key_others_can_read_a_public_key_in_its_place_and_a_missing_terminal(
        capsys, vm, tmp_path):
    secret = tmp_path / "keys" / "broker-a.key_secret"
    os.chmod(secret, 0o644)
    code, out, err = cli(capsys, "check-config", "--config", str(vm))
    assert (code, out) == (2, "")
    assert f"link.secret_key_file: the secret key file {secret} can be read or changed by other users" in err
    assert f"chmod 600 {secret}" in err

    os.chmod(secret, 0o600)
    broken = write(tmp_path / "vm", vm.read_text().replace("coordinator.key", "missing.key").replace(
        "terminals/broker-a", "terminals/nowhere"), "broken.toml")
    code, _, err = cli(capsys, "check-config", "--config", str(broken))
    assert code == 2
    assert "link.coordinator_key_file: the public key file" in err and "missing.key does not exist" in err
    assert "terminal.path: the sim terminal folder" in err and "does not exist" in err


def test_check_config_on_an_invalid_worker_file_prints_every_problem_and_exits_2(capsys, tmp_path):
    path = write(tmp_path, GOOD.replace("login = 2001", 'login = "x"') + "lot_multiplier = 2\n")
    code, out, err = cli(capsys, "check-config", "--config", str(path))
    assert (code, out) == (2, "")
    assert err.startswith(f"Invalid configuration in {path} (3 problems):")  # the terminal folder too


# ---------------------------------------------------------------------------------------------------
# The README documents every key of the worker file, with its default


def readme_worker_rows() -> dict[str, str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("\n### `worker.toml` (a worker on another machine)\n", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        row = re.match(r"\| ([^|]+) \| ([^|]+) \|", line)
        if row and "`" in row[1]:
            for key in re.findall(r"`([^`]+)`", row[1]):
                rows[key] = row[2].replace("`", "").strip()
    return rows


def test_the_readme_documents_every_worker_file_key_with_its_default():
    declared = {f"{table}.{key_name(attribute, setting)}": documented_default(setting)
                for table, cls in (("link", LinkConfig), ("terminal", WorkerTerminalConfig),
                                   ("worker", WorkerSettings))
                for attribute, setting in declared_settings(cls)}
    assert readme_worker_rows() == declared
