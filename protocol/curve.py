"""CurveZMQ key pairs on disk: writing them, and loading them with errors a person can act on.

A key pair is two files in ZeroMQ's certificate format (what ``zmq.auth.create_certificates`` writes, and
``zmq.auth.load_certificate`` reads): ``NAME.key`` holds the public key and may be copied anywhere;
``NAME.key_secret`` holds both keys and never leaves the machine that made it. Keys are Z85 text, 40
characters for 32 bytes.

A secret key file others can read is refused: whoever reads it can speak as its owner. On POSIX that is the
file's mode (group or others have any bit). On Windows the mode bits say nothing about who may read a file (its
ACL does): the ACL is read through the Win32 API and compared by SID, not from ``icacls`` output, whose account
names are localised; the owner, SYSTEM and Administrators may read it, nobody else (``protocol.windows_acl``
says why). Secret files are written owner-only (mode 600; on Windows an ACL granting the user alone, by
``icacls``), and a refusal ends with the command that restores that, the same ``icacls`` command on Windows.
"""

from __future__ import annotations

import datetime
import os
import shlex
import stat
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import zmq
from zmq.utils import z85

from protocol.windows_acl import EVERYONE, Ace, describe_sid, readable_by_others

if sys.platform == "win32":
    from protocol.windows_acl import owner_and_dacl, process_user_sid

PUBLIC_SUFFIX = ".key"
SECRET_SUFFIX = ".key_secret"
_KEY_LENGTH = 40  # Z85 characters for a 32-byte CURVE key
_Z85_CHARACTERS = frozenset(z85.Z85CHARS)
_MAX_FILE_BYTES = 64 * 1024  # a certificate is a few hundred bytes; anything bigger is not one
_LOCAL_KEYS = ("keys", "local")

_SECRET_BANNER = """\
#   ****  Generated on {now} by mt5-copier keys new  ****
#   ZeroMQ CURVE **Secret** Certificate
#   DO NOT PROVIDE THIS FILE TO OTHER USERS nor change its permissions.

"""
_PUBLIC_BANNER = """\
#   ****  Generated on {now} by mt5-copier keys new  ****
#   ZeroMQ CURVE Public Certificate
#   Copy this file to the machine that must recognise this key; the secret file stays here.

"""


@dataclass(frozen=True)
class CurveKeyPair:
    public: bytes  # Z85, 40 bytes
    secret: bytes = field(repr=False)  # Z85, 40 bytes; never logged


@dataclass(frozen=True)
class CurveClient:
    """What a worker needs to connect with CURVE: its own key pair and the coordinator's public key."""

    keys: CurveKeyPair
    server_public: bytes  # Z85


class KeyFileError(Exception):
    """A key file that cannot be used; ``str()`` names the file and says how to fix it."""


def create_key_pair(directory: Path, name: str) -> tuple[Path, Path]:
    """Write ``DIR/NAME.key`` and ``DIR/NAME.key_secret`` (the secret one owner-only), creating DIR if need
    be; return both paths.

    Raises ``KeyFileError`` naming the files that exist already (a key pair is never overwritten: the
    other side may hold its public key), ``OSError`` when the files cannot be written.
    """
    public_path, secret_path = directory / f"{name}{PUBLIC_SUFFIX}", directory / f"{name}{SECRET_SUFFIX}"
    existing = [str(path) for path in (public_path, secret_path) if path.exists()]
    if existing:
        raise KeyFileError(f"{' and '.join(existing)} already exist{'s' if len(existing) == 1 else ''}: a key "
                           "pair is never overwritten (the other side may hold its public key); remove the files "
                           "first, or choose another name")
    directory.mkdir(parents=True, exist_ok=True)
    public, secret = zmq.curve_keypair()
    now = datetime.datetime.now().replace(microsecond=0)
    secret_text = _certificate(_SECRET_BANNER.format(now=now), public, secret)
    _write_new(secret_path, secret_text, owner_only=True)
    try:
        _write_new(public_path, _certificate(_PUBLIC_BANNER.format(now=now), public, None), owner_only=False)
    except BaseException:
        secret_path.unlink(missing_ok=True)  # half a pair is worse than none: the name stays free
        raise
    return public_path, secret_path


def load_secret_key_file(path: Path) -> CurveKeyPair:
    """The key pair in a ``.key_secret`` file; ``KeyFileError`` when it is missing, unreadable, not a
    secret key file, or readable by other users."""
    public, secret = _read_keys(path, "secret key file")
    if secret is None:
        raise KeyFileError(f"{path} holds no secret key: give the {SECRET_SUFFIX} file of the pair here, not the "
                           f"public {PUBLIC_SUFFIX} file")
    _check_owner_only(path)
    if not _is_key(secret):
        raise KeyFileError(f"{path}: its secret key is not a CURVE key ({_KEY_LENGTH} Z85 characters): the file "
                           "is damaged; make a new pair with: mt5-copier keys new NAME --dir FOLDER")
    if zmq.curve_public(secret) != public:
        raise KeyFileError(f"{path}: its secret key does not belong to its public key: the file is damaged or was "
                           "edited; make a new pair with: mt5-copier keys new NAME --dir FOLDER")
    return CurveKeyPair(public=public, secret=secret)


def load_public_key_file(path: Path) -> bytes:
    """The public key in a ``.key`` file; ``KeyFileError`` when it is missing, unreadable, not a key file,
    or holds a secret key (secrets never leave the machine that made them)."""
    public, secret = _read_keys(path, "public key file")
    if secret is not None:
        raise KeyFileError(f"{path} holds a secret key: give the public {PUBLIC_SUFFIX} file here. The "
                           f"{SECRET_SUFFIX} file stays on the machine that made it; if it was copied here, make a "
                           "new pair there (mt5-copier keys new) and delete this copy")
    return public


def secret_key_file_problem(path: Path) -> str | None:
    """What ``load_secret_key_file`` would refuse, as a message; None when the file is fine."""
    try:
        load_secret_key_file(path)
    except KeyFileError as e:
        return str(e)
    return None


def public_key_file_problem(path: Path) -> str | None:
    """What ``load_public_key_file`` would refuse, as a message; None when the file is fine."""
    try:
        load_public_key_file(path)
    except KeyFileError as e:
        return str(e)
    return None


def local_worker_key_path(state_dir: Path, name: str) -> Path:
    """state_dir/keys/local/NAME.key_secret: the generated key pair of a worker the coordinator spawns."""
    return state_dir.joinpath(*_LOCAL_KEYS, f"{name}{SECRET_SUFFIX}")


def owner_only_fix(path: Path) -> str:
    """The command that makes ``path`` readable by its owner alone, on this system."""
    if sys.platform == "win32":
        return _icacls_fix(path)
    return f"chmod 600 {shlex.quote(str(path))}"


def icacls_owner_only(path: str, grantee: str) -> list[str]:
    """The ``icacls`` command line that leaves ``path`` to ``grantee`` alone: inherited entries removed
    (/inheritance:r), the grantee's own replaced by full control (/grant:r). ``keys new`` runs it with the user's
    SID; a refusal shows it with %USERNAME% for a person to type (cmd.exe expands it)."""
    return ["icacls", path, "/inheritance:r", "/grant:r", f"{grantee}:F"]


def windows_acl_problem(path: Path, owner_sid: str, aces: list[Ace] | None, user_sid: str | None = None) -> str | None:
    """The refusal of a secret key file with this owner and DACL (None: a NULL DACL, which lets everyone in);
    None when only its owner, ``user_sid`` (the account reading it), SYSTEM and Administrators may read it.
    Decides from SIDs alone, so it runs (and is tested) anywhere; ``_check_owner_only`` reads them on Windows."""
    others = [EVERYONE] if aces is None else readable_by_others(owner_sid, aces, user_sid=user_sid)
    if not others:
        return None
    who = ("it has no ACL at all, which lets everyone in" if aces is None
           else f"its ACL lets in {', '.join(describe_sid(sid) for sid in others)}")
    message = (f"the secret key file {path} can be read or changed by other users ({who}): whoever reads it can "
               f"speak as its owner. Make it the owner's alone: {_icacls_fix(path)}")
    if aces is not None:
        # /inheritance:r drops inherited entries only, and /grant:r replaces only the grantee's own: an entry
        # given to another account directly survives both.
        message += (f'; if icacls "{path}" still lists {"it" if len(others) == 1 else "any of them"} after that '
                    f'(granted directly, not inherited), also: icacls "{path}" /remove:g '
                    f"{' '.join(f'*{sid}' for sid in others)}")
    return message


def _icacls_fix(path: Path) -> str:
    return " ".join(icacls_owner_only(f'"{path}"', '"%USERNAME%"'))


# ---- reading ------------------------------------------------------------------------------------


def _read_keys(path: Path, kind: str) -> tuple[bytes, bytes | None]:
    """(public, secret or None) as the file states them, the public key checked; the secret is checked
    by the caller, which knows whether one belongs there."""
    try:
        with path.open("rb") as file:
            raw = file.read(_MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise KeyFileError(f"the {kind} {path} does not exist; correct the path, or make a key pair with: "
                           "mt5-copier keys new NAME --dir FOLDER") from None
    except IsADirectoryError:
        raise KeyFileError(f"the {kind} {path} is a folder, not a key file") from None
    except OSError as e:
        raise KeyFileError(f"cannot read the {kind} {path}: {e.strerror or e}") from None
    public, secret = _parse_certificate(raw) if len(raw) <= _MAX_FILE_BYTES else (None, None)
    if public is None:
        raise KeyFileError(f"{path} is not a ZeroMQ certificate (no public-key line): give a key file made by "
                           "mt5-copier keys new")
    if not _is_key(public):
        raise KeyFileError(f"{path}: its public key is not a CURVE key ({_KEY_LENGTH} Z85 characters): the file is "
                           "damaged or was edited; copy it again, or make a new pair with: mt5-copier keys new")
    return public, secret


def _parse_certificate(raw: bytes) -> tuple[bytes | None, bytes | None]:
    # The same reading as zmq.auth.load_certificate, so files written by either tool are read alike.
    public = secret = None
    for line in raw.splitlines():
        line = line.strip()
        if line.startswith(b"#"):
            continue
        if line.startswith(b"public-key") and b"=" in line:
            public = line.split(b"=", 1)[1].strip(b" \t'\"")
        elif line.startswith(b"secret-key") and b"=" in line:
            secret = line.split(b"=", 1)[1].strip(b" \t'\"")
    return public, secret


def _is_key(key: bytes) -> bool:
    return len(key) == _KEY_LENGTH and all(byte in _Z85_CHARACTERS for byte in key)


def _check_owner_only(path: Path) -> None:
    if sys.platform == "win32":  # the mode bits do not reflect the ACL; see the module's docstring
        try:
            owner_sid, aces = owner_and_dacl(path)
            user_sid = process_user_sid()
        except OSError as e:
            raise KeyFileError(f"cannot read the access list (ACL) of the secret key file {path}: "
                               f"{e.strerror or e}") from None
        problem = windows_acl_problem(path, owner_sid, aces, user_sid)
        if problem is not None:
            raise KeyFileError(problem)
        return
    try:
        mode = path.stat().st_mode
    except OSError as e:
        raise KeyFileError(f"cannot read the secret key file {path}: {e.strerror or e}") from None
    if mode & 0o077:
        raise KeyFileError(f"the secret key file {path} can be read or changed by other users (permissions "
                           f"{stat.filemode(mode)}): whoever reads it can speak as its owner. Make it the owner's "
                           f"alone: {owner_only_fix(path)}")


# ---- writing ------------------------------------------------------------------------------------


def _certificate(banner: str, public: bytes, secret: bytes | None) -> str:
    lines = [banner + "metadata", "curve", f'    public-key = "{public.decode("ascii")}"']
    if secret is not None:
        lines.append(f'    secret-key = "{secret.decode("ascii")}"')
    return "\n".join(lines) + "\n"


def _write_new(path: Path, text: str, *, owner_only: bool) -> None:
    """Create ``path`` (never replacing a file) and write ``text``; an owner-only file is restricted before
    the secret is written into it, so it is never readable by others, not even for a moment."""
    mode = 0o600 if owner_only else 0o644
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), mode)
    try:
        if owner_only and sys.platform == "win32":
            os.close(descriptor)
            descriptor = -1
            _restrict_to_owner_windows(path)
            descriptor = os.open(path, os.O_WRONLY | getattr(os, "O_BINARY", 0))
        os.write(descriptor, text.encode("ascii"))
    except BaseException:
        if descriptor >= 0:
            os.close(descriptor)
            descriptor = -1
        path.unlink(missing_ok=True)
        raise
    finally:
        if descriptor >= 0:
            os.close(descriptor)


def _restrict_to_owner_windows(path: Path) -> None:
    """An ACL granting the current user full control and nobody else anything (inherited entries removed).

    The user is named by its SID (``whoami /user``): names are localised, and a service account's name is not
    what ``%USERNAME%`` says.
    """
    if sys.platform != "win32":
        raise NotImplementedError("owner-only ACLs are a Windows matter; POSIX files get mode 600")
    try:
        whoami = subprocess.run(["whoami", "/user", "/fo", "csv", "/nh"], capture_output=True, text=True,
                                check=True, timeout=30)
        sid = whoami.stdout.strip().split(",")[-1].strip('"')
        subprocess.run(icacls_owner_only(str(path), f"*{sid}"), capture_output=True, text=True, check=True,
                       timeout=30)
    except (OSError, subprocess.SubprocessError) as e:
        raise OSError(f"cannot make {path} readable by its owner only (icacls): {e}") from e
