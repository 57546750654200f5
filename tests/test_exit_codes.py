"""The exit codes: the README's tables and ``config.exit_codes`` say the same, and no other module defines any."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from config.exit_codes import ExitCode, StatusExitCode

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
PRODUCT_PACKAGES = ("coordinator", "terminal_worker", "config", "protocol")


def readme_general_codes() -> dict[int, str]:
    """The paragraph under "Commands": ``**0** all done; **1** sync incomplete (...); ...``."""
    start = README.index("Exit codes (`status` has its own, below):")
    paragraph = " ".join(README[start:README.index("\n\n", start)].split())
    return {int(code): text.strip() for code, text in re.findall(r"\*\*(\d)\*\* ([^;(]+)", paragraph)}


def readme_status_codes() -> dict[int, str]:
    """The table under "`status` as a health check": ``| **0** | The coordinator runs and ... |``."""
    section = README[README.index("### `status` as a health check"):]
    section = section[:section.index("\n\n", section.index("| code | meaning |"))]
    return {int(code): text for code, text in re.findall(r"^\| \*\*(\d)\*\* \| (.+?) \|$", section, re.MULTILINE)}


def test_the_readme_lists_exactly_the_exit_codes_of_the_enum_with_their_meaning():
    documented = readme_general_codes()
    assert sorted(documented) == [int(code) for code in ExitCode]
    for code in ExitCode:
        assert documented[code].lower().startswith(code.meaning), (code, documented[code])


def test_the_readme_status_table_lists_exactly_the_status_exit_codes_with_their_meaning():
    documented = readme_status_codes()
    assert sorted(documented) == [int(code) for code in StatusExitCode]
    for code in StatusExitCode:
        assert code.meaning in documented[code].lower(), (code, documented[code])


def test_a_configuration_error_is_2_for_every_command_status_included():
    assert StatusExitCode.CONFIG_ERROR == ExitCode.CONFIG_ERROR == 2


def test_no_other_module_defines_exit_codes():
    defined = []
    for package in PRODUCT_PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if path == ROOT / "config" / "exit_codes.py":
                continue
            text = path.read_text(encoding="utf-8")
            if "EXIT_" not in text:  # a name that starts with it is spelled out: nothing to parse
                continue
            for node in ast.walk(ast.parse(text)):
                targets = node.targets if isinstance(node, ast.Assign) else \
                    [node.target] if isinstance(node, ast.AnnAssign) else []
                names = [t.id for target in targets for t in ast.walk(target) if isinstance(t, ast.Name)]
                defined += [f"{path.relative_to(ROOT)}: {name}" for name in names if name.startswith("EXIT_")]
    assert defined == []
