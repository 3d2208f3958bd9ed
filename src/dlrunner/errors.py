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
        return f"{self.key}={_show(self.value)}: {self.valid}"


def _show(value) -> str:
    """A value as the user would write it on the command line."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_show(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_show(v) for v in value) + "]"
    return str(value) if isinstance(value, (int, float)) else repr(value)


class ConfigError(ValueError):
    """Bad user input; carries every problem found, so the user fixes them all at once."""

    def __init__(self, problems: list[Problem] | Problem | str):
        if isinstance(problems, (Problem, str)):
            problems = [problems]
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))
