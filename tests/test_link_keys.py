"""The config's key settings (coordinator.secret_key_file, a terminal's public_key_file), the keys a coordinator
allows (``prepare_link_keys``), and what ``check-config`` and ``run`` do with a key file they cannot use."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import zmq
from loguru import logger

import mt5sim
from config import ConfigError, load_config
from config.exit_codes import ExitCode
from coordinator.cli.app import main
from coordinator.runtime import link_auth
from coordinator.runtime.link_keys import prepare_link_keys
from coordinator.runtime.runner import Coordinator
from protocol.curve import (
    KeyFileError,
    create_key_pair,
    load_public_key_file,
    load_secret_key_file,
    secret_key_file_problem,
)
from tests.test_config import config_text, write

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions (Windows: ACL tests)")

REMOTE_BIND = {"bind": '"tcp://0.0.0.0:5757"', "secret_key_file": '"keys/coordinator.key_secret"'}


@pytest.fixture
def keys(tmp_path) -> Path:
    """keys/: the coordinator's pair, and the public keys of broker-0 and broker-1 (made on "their machines")."""
    folder = tmp_path / "keys"
    folder.mkdir()
    create_key_pair(folder, "coordinator")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for name in ("broker-0", "broker-1"):
        public, _ = create_key_pair(elsewhere, name)
        (folder / public.name).write_bytes(public.read_bytes())
    return folder


def remote(key: str | None = None) -> dict[str, str | None]:
    return {"remote": "true", "public_key_file": f'"keys/{key}.key"' if key else None}


def problems(tmp_path: Path, **overrides) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, config_text(**overrides)))
    return [str(problem) for problem in caught.value.problems]


# ---- the config -------------------------------------------------------------------------------------------


def test_a_reachable_bind_with_keys_loads_and_resolves_the_key_paths(tmp_path, keys):
    config = load_config(write(tmp_path, config_text(coordinator=REMOTE_BIND,
                                                     targets=[remote("broker-0"), {}])))

    assert config.coordinator.bind == "tcp://0.0.0.0:5757"
    assert config.coordinator.secret_key_file == keys / "coordinator.key_secret"
    assert config.targets[0].terminal.public_key_file == keys / "broker-0.key"
    assert config.targets[1].terminal.public_key_file is None  # local: the coordinator makes its key
    assert config.source.public_key_file is None


def test_the_key_settings_are_optional_and_none_by_default(tmp_path):
    config = load_config(write(tmp_path, config_text()))

    assert config.coordinator.secret_key_file is None
    assert all(terminal.public_key_file is None for terminal in config.terminals())


def test_every_remote_terminal_needs_its_public_key_once_links_are_authenticated(tmp_path, keys):
    assert problems(tmp_path, coordinator=REMOTE_BIND, source=remote(), targets=[remote("broker-0")]) == [
        "source.public_key_file: required for a remote terminal when links are authenticated "
        "(coordinator.secret_key_file): the public key of the worker that runs master. Make its key pair on that "
        "machine with mt5-copier keys new master --dir keys, and copy master.key here"
    ]


def test_a_reachable_bind_without_a_key_pair_is_reported_with_the_remote_terminals_that_lack_a_key(tmp_path):
    found = problems(tmp_path, coordinator={"bind": '"tcp://198.18.0.1:5757"'}, targets=[remote()])

    assert [line.split(":")[0] for line in found] == ["coordinator.bind", "targets[0] (broker-0).public_key_file"]
    assert found[0].startswith("coordinator.bind: 'tcp://198.18.0.1:5757' can be reached from other machines, so "
                               "links must be authenticated: set coordinator.secret_key_file")


def test_a_remote_terminal_on_loopback_without_keys_is_as_before(tmp_path):
    config = load_config(write(tmp_path, config_text(targets=[remote()])))

    assert config.targets[0].terminal.remote


def test_a_public_key_where_it_would_do_nothing_is_refused(tmp_path, keys):
    no_coordinator_key = problems(tmp_path, targets=[remote("broker-0")])
    local_terminal = problems(tmp_path, coordinator=REMOTE_BIND,
                              targets=[{"public_key_file": '"keys/broker-0.key"'}])

    assert no_coordinator_key == [
        "targets[0] (broker-0).public_key_file: only used with coordinator.secret_key_file: without it links are "
        "neither authenticated nor encrypted, and no key is checked"
    ]
    assert local_terminal == [
        "targets[0] (broker-0).public_key_file: only used with remote = true: the coordinator starts this "
        "terminal's worker itself and gives it a key pair of its own (in state_dir/keys/local)"
    ]


def test_one_key_for_two_terminals_or_the_coordinators_own_key_is_refused(tmp_path, keys):
    found = problems(tmp_path, coordinator=REMOTE_BIND, source={"remote": "true",
                                                                 "public_key_file": '"keys/coordinator.key"'},
                     targets=[remote("broker-0"), {**remote(), "public_key_file": '"keys/broker-0.key"'}])

    assert found == [
        "source.public_key_file: holds the coordinator's own public key (the pair of coordinator.secret_key_file): "
        "give the public key of the worker that runs master, made on its machine",
        "targets[1] (broker-1).public_key_file: the same public key as targets[0].public_key_file (broker-0): each "
        "terminal needs a key pair of its own, or one worker could speak as both",
    ]


def test_a_key_file_that_cannot_be_used_is_a_problem_at_its_key(tmp_path, keys):
    found = problems(tmp_path, coordinator={**REMOTE_BIND, "secret_key_file": '"keys/coordinator.key"'},
                     targets=[{**remote(), "public_key_file": '"keys/missing.key"'}])

    assert found == [
        f"coordinator.secret_key_file: {keys / 'coordinator.key'} holds no secret key: give the .key_secret file of "
        "the pair here, not the public .key file",
        f"targets[0] (broker-0).public_key_file: the public key file {keys / 'missing.key'} does not exist; correct "
        "the path, or make a key pair with: mt5-copier keys new NAME --dir FOLDER",
    ]


@posix_only
def test_check_config_refuses_a_secret_key_file_others_can_read(capsys, tmp_path, keys):
    secret = keys / "coordinator.key_secret"
    os.chmod(secret, 0o644)
    mt5sim.create_terminal(tmp_path / "terminals" / "master", login=1001, server="Sim-Server")
    path = write(tmp_path, config_text(coordinator=REMOTE_BIND, targets=[remote("broker-0")]))

    code = main(["check-config", "--config", str(path)])

    err = capsys.readouterr().err
    assert code == ExitCode.CONFIG_ERROR
    assert err.splitlines() == [
        f"Invalid configuration in {path} (1 problem):",
        f"coordinator.secret_key_file: the secret key file {secret} can be read or changed by other users "
        f"(permissions -rw-r--r--): whoever reads it can speak as its owner. Make it the owner's alone: "
        f"chmod 600 {secret}",
    ]


# ---- the keys the coordinator allows ------------------------------------------------------------------------


def test_without_a_coordinator_key_nothing_is_prepared(tmp_path):
    config = load_config(write(tmp_path, config_text()))

    assert prepare_link_keys(config) == (None, {})
    assert not (config.coordinator.state_dir / "keys").exists()


def test_local_workers_get_key_pairs_of_their_own_once(tmp_path, keys):
    config = load_config(write(tmp_path, config_text(coordinator=REMOTE_BIND, targets=[remote("broker-0"), {}])))

    coordinator_keys, allowed = prepare_link_keys(config)

    assert coordinator_keys == load_secret_key_file(keys / "coordinator.key_secret")
    local = config.coordinator.state_dir / "keys" / "local"
    assert sorted(path.name for path in local.iterdir()) == [
        "broker-1.key", "broker-1.key_secret", "master.key", "master.key_secret"]
    assert allowed == {
        load_public_key_file(local / "master.key"): "master",
        load_public_key_file(keys / "broker-0.key"): "broker-0",
        load_public_key_file(local / "broker-1.key"): "broker-1",
    }
    if sys.platform != "win32":
        assert (local / "master.key_secret").stat().st_mode & 0o777 == 0o600
        assert local.stat().st_mode & 0o777 == 0o700
    assert prepare_link_keys(config) == (coordinator_keys, allowed)  # the same keys at every start


@posix_only
def test_a_local_worker_key_others_can_read_is_refused_not_replaced(tmp_path, keys):
    config = load_config(write(tmp_path, config_text(coordinator=REMOTE_BIND)))
    prepare_link_keys(config)
    secret = config.coordinator.state_dir / "keys" / "local" / "master.key_secret"
    before = secret.read_bytes()
    os.chmod(secret, 0o604)

    with pytest.raises(KeyFileError, match=f"chmod 600 {secret}"):
        prepare_link_keys(config)
    assert secret.read_bytes() == before


@pytest.fixture
def critical():
    lines: list[str] = []
    sink = logger.add(lambda message: lines.append(message.record["message"]), level="CRITICAL")
    yield lines
    logger.remove(sink)


@posix_only
def test_run_exits_2_for_a_key_file_it_cannot_use(tmp_path, keys, critical):
    config = load_config(write(tmp_path, config_text(coordinator=REMOTE_BIND)))
    os.chmod(keys / "coordinator.key_secret", 0o644)  # after the config was checked

    assert Coordinator(config, once=True).run() == ExitCode.CONFIG_ERROR
    assert critical == [secret_key_file_problem(keys / "coordinator.key_secret")]


def test_run_exits_3_when_an_unknown_key_would_get_in(tmp_path, keys, monkeypatch, critical):
    monkeypatch.setattr(link_auth, "ZAP_ENDPOINT", "inproc://not-the-zap-endpoint")
    config = load_config(write(tmp_path, config_text(coordinator={**REMOTE_BIND, "bind": '"tcp://127.0.0.1:*"'})))

    assert Coordinator(config, once=True).run() == ExitCode.FATAL
    assert len(critical) == 1 and "a client with an unknown CURVE key was accepted" in critical[0]


def test_zmq_has_curve():
    assert zmq.has("curve"), "pyzmq without libsodium/CURVE: authenticated links cannot work here"
