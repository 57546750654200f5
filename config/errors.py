"""Configuration errors: every problem found in a config file, reported together."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    """One thing wrong with a config: where (a key path such as ``targets[1].lot_multiplier``) and what."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class ConfigError(Exception):
    """A config that cannot be used, with every problem found in it (not only the first).

    ``str(error)`` is a header line naming the file and the number of problems, then one
    ``path: message`` line per problem, ready to print for a person to act on.
    """

    # Positional arguments only, handed to Exception, so the error survives pickling (multiprocessing).
    def __init__(self, problems: Sequence[ConfigProblem], source: str = "<string>") -> None:
        super().__init__(list(problems), source)
        self.problems: list[ConfigProblem] = list(problems)
        self.source = source

    def __str__(self) -> str:
        count = len(self.problems)
        noun = "problem" if count == 1 else "problems"
        lines = [f"Invalid configuration in {self.source} ({count} {noun}):"]
        lines.extend(str(problem) for problem in self.problems)
        return "\n".join(lines)
