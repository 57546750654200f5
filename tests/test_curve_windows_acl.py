"""A secret key file's Windows ACL: who besides its owner may read it, the refusal and its fix, and the Win32
reading type-checked as on Windows. The decision takes SIDs, so it runs here; the ACE lists are what ``icacls``
shows for the files named (its letters: (F) full, (M) modify, (RX) read and execute, (R) read, (I) inherited)."""

from __future__ import annotations

import ctypes
import importlib.util
import struct
import subprocess
import sys
from pathlib import Path

import pytest

import mt5sim
from config.exit_codes import ExitCode
from coordinator.cli.app import main
from protocol import curve
from protocol.curve import (
    KeyFileError,
    create_key_pair,
    icacls_owner_only,
    load_secret_key_file,
    secret_key_file_problem,
    windows_acl_problem,
)
from protocol.windows_acl import (
    ACCESS_ALLOWED_ACE_TYPE,
    ACCESS_ALLOWED_CALLBACK_ACE_TYPE,
    ACCESS_ALLOWED_OBJECT_ACE_TYPE,
    ACCESS_DENIED_ACE_TYPE,
    ADMINISTRATORS,
    EVERYONE,
    FILE_ALL_ACCESS,
    FILE_GENERIC_READ,
    GENERIC_ALL,
    GENERIC_READ,
    LOCAL_SYSTEM,
    WRITE_DAC,
    Ace,
    _ace_at,
    readable_by_others,
)
from tests.test_config import config_text, write

ALICE = "S-1-5-21-1004336348-1177238915-682003330-1001"  # the user who made the key
BOB = "S-1-5-21-1004336348-1177238915-682003330-1002"
USERS = "S-1-5-32-545"
AUTHENTICATED_USERS = "S-1-5-11"
MODIFY, READ_EXECUTE = 0x0013_01BF, 0x0012_00A9  # icacls (M), (RX)
ALLOW, DENY = ACCESS_ALLOWED_ACE_TYPE, ACCESS_DENIED_ACE_TYPE

# `keys new` (icacls /inheritance:r /grant:r *ALICE:F):      ALICE:(F)
MADE_BY_KEYS_NEW = [Ace(ALLOW, FILE_ALL_ACCESS, ALICE)]
# A file made in C:\Users\alice\keys, as inherited from the profile folder:
#   NT AUTHORITY\SYSTEM:(I)(F)  BUILTIN\Administrators:(I)(F)  PC\alice:(I)(F)
IN_THE_PROFILE = [Ace(ALLOW, FILE_ALL_ACCESS, LOCAL_SYSTEM), Ace(ALLOW, FILE_ALL_ACCESS, ADMINISTRATORS),
                  Ace(ALLOW, FILE_ALL_ACCESS, ALICE)]
# A file made in C:\keys, as inherited from C:\:
#   BUILTIN\Administrators:(I)(F)  NT AUTHORITY\SYSTEM:(I)(F)  BUILTIN\Users:(I)(RX)
#   NT AUTHORITY\Authenticated Users:(I)(M)
UNDER_THE_DRIVE_ROOT = [Ace(ALLOW, FILE_ALL_ACCESS, ADMINISTRATORS), Ace(ALLOW, FILE_ALL_ACCESS, LOCAL_SYSTEM),
                        Ace(ALLOW, READ_EXECUTE, USERS), Ace(ALLOW, MODIFY, AUTHENTICATED_USERS)]


# ---- the decision -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("aces", [MADE_BY_KEYS_NEW, IN_THE_PROFILE], ids=["made by keys new", "in the profile"])
def test_the_owner_system_and_administrators_are_not_others(aces):
    assert readable_by_others(ALICE, aces) == []


def test_users_and_authenticated_users_inherited_from_the_drive_root_are():
    assert readable_by_others(ALICE, UNDER_THE_DRIVE_ROOT) == [USERS, AUTHENTICATED_USERS]


@pytest.mark.parametrize("mask", [FILE_GENERIC_READ, READ_EXECUTE, MODIFY, FILE_ALL_ACCESS, GENERIC_READ, GENERIC_ALL,
                                  WRITE_DAC],  # whoever may rewrite the ACL may grant themselves read
                         ids=["R", "RX", "M", "F", "GENERIC_READ", "GENERIC_ALL", "WRITE_DAC"])
def test_everyone_or_another_user_granted_read_or_more_is_refused(mask):
    assert readable_by_others(ALICE, [*MADE_BY_KEYS_NEW, Ace(ALLOW, mask, EVERYONE)]) == [EVERYONE]
    assert readable_by_others(ALICE, [*MADE_BY_KEYS_NEW, Ace(ALLOW, mask, BOB)]) == [BOB]


def test_rights_that_reveal_nothing_are_no_reason_to_refuse():
    read_control_synchronize_read_attributes = 0x0012_0080
    assert readable_by_others(ALICE, [*MADE_BY_KEYS_NEW, Ace(ALLOW, read_control_synchronize_read_attributes,
                                                               USERS)]) == []


def test_deny_entries_are_ignored_so_an_allow_refuses_even_when_a_deny_takes_it_back():
    assert readable_by_others(ALICE, [Ace(DENY, FILE_ALL_ACCESS, USERS), *MADE_BY_KEYS_NEW]) == []
    assert readable_by_others(ALICE, [Ace(DENY, FILE_GENERIC_READ, USERS), Ace(ALLOW, FILE_GENERIC_READ, USERS),
                                      *MADE_BY_KEYS_NEW]) == [USERS]


def test_conditional_and_object_allow_entries_count_as_allows():
    aces = [Ace(ACCESS_ALLOWED_CALLBACK_ACE_TYPE, FILE_GENERIC_READ, BOB),
            Ace(ACCESS_ALLOWED_OBJECT_ACE_TYPE, FILE_GENERIC_READ, "(an ACE of type 5)")]
    assert readable_by_others(ALICE, aces) == [BOB, "(an ACE of type 5)"]


def test_each_other_is_named_once_in_acl_order():
    aces = [Ace(ALLOW, FILE_GENERIC_READ, USERS), Ace(ALLOW, FILE_GENERIC_READ, EVERYONE),
            Ace(ALLOW, MODIFY, USERS)]
    assert readable_by_others(ALICE, aces) == [USERS, EVERYONE]


def test_the_account_reading_the_file_is_not_another_when_administrators_own_it():
    # An elevated administrator's files are owned by the Administrators group under one local policy; keys new
    # still grants the user alone.
    assert readable_by_others(ADMINISTRATORS, MADE_BY_KEYS_NEW, user_sid=ALICE) == []
    assert readable_by_others(ADMINISTRATORS, MADE_BY_KEYS_NEW, user_sid=BOB) == [ALICE]


# ---- the refusal and its fix --------------------------------------------------------------------------------

SECRET = Path(r"C:\Users\alice\keys\coordinator.key_secret")
FIX = rf'icacls "{SECRET}" /inheritance:r /grant:r "%USERNAME%":F'


def test_a_file_only_its_owner_may_read_passes():
    assert windows_acl_problem(SECRET, ALICE, IN_THE_PROFILE, ALICE) is None


def test_the_refusal_names_the_file_who_may_read_it_and_the_fix():
    assert windows_acl_problem(SECRET, ALICE, UNDER_THE_DRIVE_ROOT, ALICE) == (
        rf"the secret key file {SECRET} can be read or changed by other users (its ACL lets in S-1-5-32-545 (Users), "
        rf"S-1-5-11 (Authenticated Users)): whoever reads it can speak as its owner. Make it the owner's alone: "
        rf'{FIX}; if icacls "{SECRET}" still lists any of them after that (granted directly, not inherited), also: '
        rf'icacls "{SECRET}" /remove:g *S-1-5-32-545 *S-1-5-11'
    )


def test_a_null_dacl_lets_everyone_in_and_is_refused():
    assert windows_acl_problem(SECRET, ALICE, None, ALICE) == (
        rf"the secret key file {SECRET} can be read or changed by other users (it has no ACL at all, which lets "
        rf"everyone in): whoever reads it can speak as its owner. Make it the owner's alone: {FIX}"
    )


def test_the_fix_shown_is_the_command_keys_new_runs(monkeypatch, tmp_path):
    # keys new names the user by SID (names are localised, a service account's is not %USERNAME%); a person
    # types %USERNAME%. The rest of the command is one function's.
    ran: list[list[str]] = []

    def fake_run(command, **_):
        ran.append(command)
        return subprocess.CompletedProcess(command, 0, stdout=f'"pc\\alice","{ALICE}"\n', stderr="")

    monkeypatch.setattr(sys, "platform", "win32")
    monkeypatch.setattr(curve.subprocess, "run", fake_run)
    curve._restrict_to_owner_windows(SECRET)

    assert ran[1] == icacls_owner_only(str(SECRET), f"*{ALICE}") == [
        "icacls", str(SECRET), "/inheritance:r", "/grant:r", f"*{ALICE}:F"]
    assert curve.owner_only_fix(SECRET) == FIX == " ".join(icacls_owner_only(f'"{SECRET}"', '"%USERNAME%"'))


# ---- wired into every command that loads a secret key -------------------------------------------------------


@pytest.fixture
def as_on_windows(monkeypatch):
    """sys.platform says win32 and the file's ACL is the one given: what _check_owner_only reads there."""
    def with_acl(aces: list[Ace] | None, owner: str = ALICE) -> None:
        monkeypatch.setattr(curve, "owner_and_dacl", lambda path: (owner, aces), raising=False)
        monkeypatch.setattr(curve, "process_user_sid", lambda: ALICE, raising=False)
        monkeypatch.setattr(sys, "platform", "win32")
    return with_acl


def test_loading_a_secret_key_others_can_read_is_refused_on_windows(tmp_path, as_on_windows):
    _, secret = create_key_pair(tmp_path, "coordinator")
    as_on_windows(UNDER_THE_DRIVE_ROOT)

    with pytest.raises(KeyFileError) as refused:
        load_secret_key_file(secret)

    assert str(refused.value) == windows_acl_problem(secret, ALICE, UNDER_THE_DRIVE_ROOT, ALICE)
    assert secret_key_file_problem(secret) == str(refused.value)


def test_an_owner_only_secret_key_loads_on_windows(tmp_path, as_on_windows):
    public, secret = create_key_pair(tmp_path, "coordinator")
    as_on_windows(MADE_BY_KEYS_NEW)

    assert load_secret_key_file(secret).public in public.read_bytes()


def test_an_acl_that_cannot_be_read_is_refused_naming_the_file(tmp_path, as_on_windows, monkeypatch):
    _, secret = create_key_pair(tmp_path, "coordinator")
    as_on_windows(MADE_BY_KEYS_NEW)

    def unreadable(path):
        raise OSError(5, "Access is denied")
    monkeypatch.setattr(curve, "owner_and_dacl", unreadable, raising=False)

    assert secret_key_file_problem(secret) == (
        f"cannot read the access list (ACL) of the secret key file {secret}: Access is denied")


def test_check_config_refuses_it_with_exit_2(capsys, tmp_path, as_on_windows):
    folder = tmp_path / "keys"
    secret = create_key_pair(folder, "coordinator")[1]
    public, _ = create_key_pair(tmp_path / "elsewhere", "broker-0")
    (folder / public.name).write_bytes(public.read_bytes())
    mt5sim.create_terminal(tmp_path / "terminals" / "master", login=1001, server="Sim-Server")
    path = write(tmp_path, config_text(
        coordinator={"bind": '"tcp://0.0.0.0:5757"', "secret_key_file": '"keys/coordinator.key_secret"'},
        targets=[{"remote": "true", "public_key_file": '"keys/broker-0.key"'}]))
    as_on_windows(UNDER_THE_DRIVE_ROOT)

    code = main(["check-config", "--config", str(path)])

    assert code == ExitCode.CONFIG_ERROR
    assert capsys.readouterr().err.splitlines() == [
        f"Invalid configuration in {path} (1 problem):",
        f"coordinator.secret_key_file: {windows_acl_problem(secret, ALICE, UNDER_THE_DRIVE_ROOT, ALICE)}",
    ]


# ---- the Win32 side, as far as it can be checked here ---------------------------------------------------------


def test_an_ace_is_read_with_the_access_allowed_ace_layout():
    # BUILTIN\Users:(I)(RX) as it sits in a DACL: ACE_HEADER (type, flags: INHERITED_ACE, size), the mask,
    # then the SID S-1-5-32-545 (revision 1, 2 sub-authorities, authority 5 big-endian, 32 and 545).
    sid = bytes([1, 2, 0, 0, 0, 0, 0, 5]) + struct.pack("<II", 32, 545)
    raw = struct.pack("<BBHI", ALLOW, 0x10, 8 + len(sid), READ_EXECUTE) + sid
    buffer = ctypes.create_string_buffer(raw, len(raw))
    address = ctypes.addressof(buffer)

    ace_type, mask, sid_address = _ace_at(address)

    assert (ace_type, mask, sid_address) == (ALLOW, READ_EXECUTE, address + 8)
    assert ctypes.string_at(sid_address, len(sid)) == sid


def test_an_object_ace_has_no_sid_where_a_plain_one_does():
    raw = struct.pack("<BBHII", ACCESS_ALLOWED_OBJECT_ACE_TYPE, 0, 12, FILE_GENERIC_READ, 0)
    buffer = ctypes.create_string_buffer(raw, len(raw))

    assert _ace_at(ctypes.addressof(buffer)) == (ACCESS_ALLOWED_OBJECT_ACE_TYPE, FILE_GENERIC_READ, None)


@pytest.mark.skipif(importlib.util.find_spec("mypy") is None, reason="mypy is a test dependency; not installed")
@pytest.mark.parametrize("platform", ["win32", "linux"])
def test_the_win32_calls_type_check_as_on_windows(platform, tmp_path, request):
    # The GetNamedSecurityInfoW / GetAce / ConvertSidToStringSidW code runs on Windows only: mypy with
    # --platform win32 is what checks it here (plain mypy skips it as unreachable). Its cache lives in pytest's
    # cache folder, one per platform, so a later run checks only what changed (mypy's incremental mode compares
    # every file with what it cached, the standard library's stubs included, and mypy's version and options):
    # the empty cache of a fresh folder costs a full check of the standard library's stubs, seconds of CPU.
    cache = getattr(request.config, "cache", None)  # None with -p no:cacheprovider
    cache_dir = cache.mkdir(f"mypy-{platform}") if cache is not None else tmp_path / "mypy-cache"
    root = Path(__file__).resolve().parent.parent
    checked = subprocess.run(
        [sys.executable, "-m", "mypy", "--platform", platform, "--cache-dir", str(cache_dir),
         "--follow-imports", "silent", "protocol/windows_acl.py", "protocol/curve.py"],
        cwd=root, capture_output=True, text=True, timeout=300)

    assert checked.returncode == 0, checked.stdout + checked.stderr
