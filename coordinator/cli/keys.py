"""``mt5-copier keys new NAME --dir DIR``: a CurveZMQ key pair for the coordinator or for one remote worker.

Run it on the machine that will use the secret half: the secret file never leaves it, only the public
``NAME.key`` is copied (a worker's to the coordinator's machine, the coordinator's to every worker's).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from config.exit_codes import ExitCode
from config.formats import TERMINAL_NAME, TERMINAL_NAME_HINT, terminal_name_problem
from protocol.curve import KeyFileError, create_key_pair, load_public_key_file


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    new = actions.add_parser("new", help="write DIR/NAME.key (public) and DIR/NAME.key_secret (secret, owner-only)")
    new.add_argument("name", metavar="NAME",
                     help="the terminal the key is for (its name in the config), or e.g. 'coordinator'")
    new.add_argument("--dir", required=True, type=Path, metavar="DIR", help="folder for the two files")


def run(args: argparse.Namespace) -> int:
    return new_key_pair(args.name, args.dir)


def new_key_pair(name: str, directory: Path) -> int:
    problem = _name_problem(name)
    if problem is not None:
        print(f"keys new: NAME {problem}", file=sys.stderr)
        return ExitCode.CONFIG_ERROR
    try:
        public_path, secret_path = create_key_pair(directory, name)
    except KeyFileError as e:
        print(f"keys new: {e}", file=sys.stderr)
        return ExitCode.CONFIG_ERROR
    except OSError as e:
        print(f"keys new: cannot write the key pair into {directory}: {e.strerror or e}", file=sys.stderr)
        return ExitCode.FATAL
    public = load_public_key_file(public_path).decode("ascii")
    width = max(len(str(public_path)), len(str(secret_path)))
    print(f"public key of {name}: {public}\n"
          f"  {public_path!s:<{width}}  public: copy it to the other side\n"
          f"  {secret_path!s:<{width}}  secret: stays on this machine, readable by you only\n"
          f"A worker's pair: copy {public_path.name} to the coordinator's machine, named in terminal {name}'s entry\n"
          f"  as public_key_file = \"keys/{public_path.name}\"; this machine's worker.toml names the secret file\n"
          "  in [link] secret_key_file.\n"
          "The coordinator's pair: its config names the secret file (coordinator.secret_key_file); every worker's\n"
          f"  worker.toml names a copy of {public_path.name} in [link] coordinator_key_file.")
    return ExitCode.OK


def _name_problem(name: str) -> str | None:
    if not TERMINAL_NAME.fullmatch(name):
        return f"must be {TERMINAL_NAME_HINT}, got {name!r}"
    return terminal_name_problem(name)
