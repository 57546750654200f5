"""``mt5-copier import-config PATH/TO/config.py --out copier.toml``: a way in for MT5-Order-Copier's users.

Their ``config.py`` is read without running it (``config/seed_import.py``) and the equivalent TOML is written,
with where it came from and every note as comments. Passwords are never written nor printed: each terminal's
``password_env`` names a variable, and the command prints which ones to set. An existing ``--out`` file is never
replaced without ``--force`` (it may be a configuration someone edited since the last import).
"""

from __future__ import annotations

import argparse
import os
import sys
import textwrap
from pathlib import Path

from config.exit_codes import ExitCode
from config.seed_import import SEED, SeedConfigError, SeedImport, import_seed_config
from config.toml_text import toml_comment, toml_table


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("seed_config", metavar="CONFIG_PY", type=Path,
                        help=f"{SEED}'s config.py (read as text, never run)")
    parser.add_argument("--out", required=True, type=Path, metavar="FILE", help="the TOML config file to write")
    parser.add_argument("--force", action="store_true", help="replace FILE when it exists")


def run(args: argparse.Namespace) -> int:
    return import_config(args.seed_config, args.out, force=args.force)


def import_config(seed_config: Path, out: Path, *, force: bool = False) -> int:
    """Write ``out`` from ``seed_config``: exit 0 written (notes or not), 2 the input cannot be read as a seed
    configuration or ``out`` exists without ``force``, 3 ``out`` cannot be written."""
    try:
        text = seed_config.read_bytes().decode("utf-8-sig")  # Windows editors may start it with a byte order mark
    except FileNotFoundError:
        return _refuse(f"file not found: {seed_config}")
    except OSError as e:
        return _refuse(f"cannot read {seed_config}: {e.strerror or e}")
    except UnicodeDecodeError as e:
        return _refuse(f"{seed_config} is not UTF-8 text: {e.reason} at byte {e.start}")
    if _same_file(seed_config, out):
        return _refuse(f"--out {out} is the file being imported: choose another name (copier.toml)")
    if out.exists() and not force:
        return _refuse(f"{out} already exists: it is not replaced (it may hold changes made since); use --force to "
                       "replace it, or choose another --out")
    try:
        result = import_seed_config(text, filename=str(seed_config), base_dir=out.absolute().parent)
    except SeedConfigError as e:
        problems = "\n".join(f"  {problem}" for problem in e.problems)
        return _refuse(f"{seed_config} cannot be read as an {SEED} configuration:\n{problems}")
    try:
        with out.open("w" if force else "x", encoding="utf-8", newline="\n") as file:
            file.write(render_toml(result, seed_config, out))
    except FileExistsError:
        return _refuse(f"{out} already exists: it is not replaced; use --force to replace it")
    except OSError as e:
        print(f"import-config: cannot write {out}: {e.strerror or e}", file=sys.stderr)
        return ExitCode.FATAL
    from coordinator.cli.operator import write_out  # late: it imports the status machinery

    write_out(_summary(result, seed_config, out))
    return ExitCode.OK


def _refuse(message: str) -> int:
    print(f"import-config: {message}", file=sys.stderr)
    return ExitCode.CONFIG_ERROR


def _same_file(first: Path, second: Path) -> bool:
    try:
        return second.exists() and os.path.samefile(first, second)
    except OSError:
        return False


def render_toml(result: SeedImport, seed_config: Path, out: Path) -> str:
    """The TOML text: a header saying where it came from, the general notes, then each table with its own notes."""
    document = result.document
    lines = [
        f"# mt5-copier configuration imported from {SEED}'s {seed_config.absolute()}",
        "# by mt5-copier import-config (its layout: " + result.layout + ").",
        "# Passwords are not in this file: each password_env names the environment variable that holds one.",
        f"# Check it with: mt5-copier check-config --config {out.name}",
        "# See the README's \"Coming from MT5-Order-Copier\" for what behaves differently, and why.",
    ]
    general = [note.text for note in result.notes if note.terminal is None]
    if general:
        lines.extend(["#", "# Not carried over, or different here:"])
        for text in general:
            lines.extend(toml_comment(text, bullet="- "))
    lines.append("")
    lines.extend(toml_table("coordinator", document["coordinator"]))
    for name, table, array in ((document["source"]["name"], document["source"], False),
                               *((target["name"], target, True) for target in document["targets"])):
        lines.append("")
        for note in result.notes:
            if note.terminal == name:
                lines.extend(toml_comment(note.text, bullet="- "))
        lines.extend(toml_table("targets" if array else "source", table, array=array))
    return "\n".join(lines) + "\n"


def _summary(result: SeedImport, seed_config: Path, out: Path) -> str:
    targets = [target["name"] for target in result.document["targets"]]
    lines = [f"Wrote {out} from {seed_config} ({SEED}, layout {result.layout}): the source and "
             f"{len(targets)} target{'s' if len(targets) != 1 else ''} ({', '.join(targets)})."]
    if result.passwords:
        lines += ["", f"Passwords are not in {out.name}. Set these environment variables where mt5-copier runs:"]
        width = max(len(password.variable) for password in result.passwords)
        for password in result.passwords:
            whose = f"{password.terminal}: account {password.login} on {password.server}"
            where = (f"{seed_config.name} already reads it from this variable (line {password.line})"
                     if password.from_environment else f"the password at line {password.line} of {seed_config.name}")
            lines.append(f"  {password.variable:<{width}}  {whose} ({where})")
        lines += ['  (Windows: setx NAME "password", then a new console; a service needs them in its own '
                  "environment.)",
                  f"Then delete the passwords from {seed_config.name}."]
    if result.notes:
        lines += ["", f"Not carried over, or different here (also in {out.name}, as comments):"]
        for note in result.notes:
            text = f"{note.terminal}: {note.text}" if note.terminal else note.text
            lines.extend(textwrap.wrap(text, 116, initial_indent="  - ", subsequent_indent="    ",
                                       break_long_words=False, break_on_hyphens=False))
    lines += ["", f"Next: mt5-copier check-config --config {out}",
              f"      mt5-copier run --config {out} --once --dry-run"]
    return "\n".join(lines) + "\n"
