"""Errors raised for bad specs: each problem names the file and the path inside it."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class SpecProblem:
    """One thing wrong with one spec file.

    :param file: the spec file, as the user would name it (relative to the current directory when
        possible)
    :param path: where in the file, e.g. ``containerProperties.resourceRequirements[0].type``; empty
        for the whole file
    :param message: what is wrong
    """

    file: str
    path: str
    message: str

    def __str__(self) -> str:
        if self.path:
            return f"{self.file}: {self.path}: {self.message}"
        return f"{self.file}: {self.message}"


class SpecError(Exception):
    """One or more specs are invalid; nothing has been registered.

    :param problems: every problem found, in file order
    """

    def __init__(self, problems: Iterable[SpecProblem]) -> None:
        self.problems = list(problems)
        super().__init__(self._message())

    def _message(self) -> str:
        count = len(self.problems)
        noun = "problem" if count == 1 else "problems"
        lines = [f"{count} {noun} in job specs; nothing was registered:"]
        lines.extend(f"  {problem}" for problem in self.problems)
        return "\n".join(lines)
