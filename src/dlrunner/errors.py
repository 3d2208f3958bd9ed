"""The one exception type for bad user input.

Anything a user typed or wrote in a config that cannot work raises ``ConfigError`` before any
training starts. The CLI prints its problems (key, value, what is valid) and exits with code 2.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Problem:
    key: str
    value: object
    valid: str

    def __str__(self) -> str:
        return f"{self.key}={self.value!r}: {self.valid}"


class ConfigError(ValueError):
    """Bad user input; carries every problem found, so the user fixes them all at once."""

    def __init__(self, problems: list[Problem] | Problem | str):
        if isinstance(problems, (Problem, str)):
            problems = [problems]
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))
