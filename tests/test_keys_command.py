"""``mt5-copier keys new NAME --dir DIR``, and reading key files back with errors a person can act on."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import pytest
import zmq.auth

from coordinator.cli.app import main
from protocol.curve import (
    KeyFileError,
    create_key_pair,
    load_public_key_file,
    load_secret_key_file,
    local_worker_key_path,
    public_key_file_problem,
    secret_key_file_problem,
)

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions (Windows: ACL tests)")


def cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_keys_new_writes_a_pair_zeromq_reads_and_prints_the_public_key(capsys, tmp_path):
    folder = tmp_path / "keys"

    code, out, err = cli(capsys, "keys", "new", "broker-a", "--dir", str(folder))

    assert (code, err) == (0, "")
    public_path, secret_path = folder / "broker-a.key", folder / "broker-a.key_secret"
    public, secret = zmq.auth.load_certificate(secret_path)
    assert secret is not None and zmq.curve_public(secret) == public
    assert zmq.auth.load_certificate(public_path) == (public, None)
    lines = out.splitlines()
    assert lines[0] == f"public key of broker-a: {public.decode()}"
    assert lines[1].split() == [str(public_path), "public:", "copy", "it", "to", "the", "other", "side"]
    assert lines[2].split()[:2] == [str(secret_path), "secret:"]
    assert 'public_key_file = "keys/broker-a.key"' in out
    assert "coordinator.secret_key_file" in out and "[link] coordinator_key_file" in out


@posix_only
def test_the_secret_file_is_its_owners_alone_and_the_public_one_is_readable(capsys, tmp_path):
    before = os.umask(0o022)
    try:
        assert cli(capsys, "keys", "new", "coordinator", "--dir", str(tmp_path))[0] == 0
    finally:
        os.umask(before)

    assert stat.S_IMODE((tmp_path / "coordinator.key_secret").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "coordinator.key").stat().st_mode) == 0o644


def test_keys_new_never_overwrites_a_key_file(capsys, tmp_path):
    (tmp_path / "broker-a.key").write_text("the public key the coordinator holds\n")

    code, out, err = cli(capsys, "keys", "new", "broker-a", "--dir", str(tmp_path))

    assert (code, out) == (2, "")
    assert err == (f"keys new: {tmp_path / 'broker-a.key'} already exists: a key pair is never overwritten (the other "
                   "side may hold its public key); remove the files first, or choose another name\n")
    assert (tmp_path / "broker-a.key").read_text() == "the public key the coordinator holds\n"
    assert not (tmp_path / "broker-a.key_secret").exists()


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("../evil", "must be 1 to 64 characters from A-Z a-z 0-9 _ . -, got '../evil'"),
        ("CON", "must not be a name Windows reserves for devices (it is used in file names), got 'CON'"),
    ],
)
def test_keys_new_takes_a_name_like_a_terminal_name(capsys, tmp_path, name, why):
    code, out, err = cli(capsys, "keys", "new", name, "--dir", str(tmp_path))

    assert (code, out, err) == (2, "", f"keys new: NAME {why}\n")
    assert list(tmp_path.iterdir()) == []


# ---- reading key files back -------------------------------------------------------------------------


@pytest.fixture
def pair(tmp_path) -> tuple[Path, Path]:
    return create_key_pair(tmp_path, "alpha")


def test_a_pair_loads_both_ways(pair):
    public_path, secret_path = pair

    keys = load_secret_key_file(secret_path)

    assert load_public_key_file(public_path) == keys.public
    assert zmq.curve_public(keys.secret) == keys.public
    assert "secret" not in repr(keys)  # never in a log line


def test_files_written_by_pyzmq_load_too(tmp_path):
    public_path, secret_path = zmq.auth.create_certificates(tmp_path, "made-by-pyzmq")
    os.chmod(secret_path, 0o600)

    assert load_secret_key_file(Path(secret_path)).public == load_public_key_file(Path(public_path))


@posix_only
def test_a_secret_key_file_others_can_read_is_refused_with_the_fix(pair):
    _, secret_path = pair
    os.chmod(secret_path, 0o640)

    with pytest.raises(KeyFileError) as refused:
        load_secret_key_file(secret_path)

    assert str(refused.value) == (
        f"the secret key file {secret_path} can be read or changed by other users (permissions -rw-r-----): whoever "
        f"reads it can speak as its owner. Make it the owner's alone: chmod 600 {secret_path}"
    )
    assert secret_key_file_problem(secret_path) == str(refused.value)


def test_the_wrong_kind_of_key_file_is_named(pair, tmp_path):
    public_path, secret_path = pair
    missing = tmp_path / "nope.key_secret"
    junk = tmp_path / "junk.key"
    junk.write_text("hello\n")

    assert secret_key_file_problem(public_path) == (
        f"{public_path} holds no secret key: give the .key_secret file of the pair here, not the public .key file"
    )
    assert public_key_file_problem(secret_path) == (
        f"{secret_path} holds a secret key: give the public .key file here. The .key_secret file stays on the machine "
        "that made it; if it was copied here, make a new pair there (mt5-copier keys new) and delete this copy"
    )
    assert secret_key_file_problem(missing) == (
        f"the secret key file {missing} does not exist; correct the path, or make a key pair with: mt5-copier keys "
        "new NAME --dir FOLDER"
    )
    assert public_key_file_problem(junk) == (
        f"{junk} is not a ZeroMQ certificate (no public-key line): give a key file made by mt5-copier keys new"
    )
    assert public_key_file_problem(tmp_path) == f"the public key file {tmp_path} is a folder, not a key file"


def test_a_damaged_key_is_refused(pair, tmp_path):
    public_path, secret_path = pair
    text = secret_path.read_text()
    public = load_public_key_file(public_path).decode()
    other_public = zmq.curve_keypair()[0].decode()
    edited = tmp_path / "edited.key_secret"
    edited.write_text(text.replace(public, other_public))
    edited.chmod(0o600)
    short = tmp_path / "short.key"
    short.write_text('public-key = "abc"\n')

    assert "its secret key does not belong to its public key" in (secret_key_file_problem(edited) or "")
    assert public_key_file_problem(short) == (
        f"{short}: its public key is not a CURVE key (40 Z85 characters): the file is damaged or was edited; copy it "
        "again, or make a new pair with: mt5-copier keys new"
    )


def test_local_worker_keys_live_in_the_state_folder(tmp_path):
    assert local_worker_key_path(tmp_path / "state", "broker-a") == tmp_path / "state/keys/local/broker-a.key_secret"
