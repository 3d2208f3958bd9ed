"""Satisficing constraints (SPEC E4): "optimise one metric, subject to the others meeting a threshold".

A constraint is ``PATH OP NUMBER`` over a trial's summary.json, e.g. ``n_params <= 50000`` or
``timing.train_s <= 60``; OP is one of <=, <, >=, >, ==.
"""

from __future__ import annotations

import operator
import re
from typing import Any

OPERATORS = {"<=": operator.le, "<": operator.lt, ">=": operator.ge, ">": operator.gt, "==": operator.eq}
_PATTERN = re.compile(r"^\s*([\w.]+)\s*(<=|>=|==|<|>)\s*([-+0-9.eE]+)\s*$")


def parse_constraint(text: str) -> tuple[str, str, float]:
    match = _PATTERN.match(text)
    if not match:
        raise ValueError(
            f"constraint {text!r}: write PATH OP NUMBER, e.g. 'n_params <= 50000' (OP: {', '.join(OPERATORS)})"
        )
    path, op, number = match.groups()
    return path, op, float(number)


def lookup(record: dict, path: str) -> Any:
    """``lookup(summary, "metrics.dev.error")``; None when any part is missing."""
    value: Any = record
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def check_constraints(summary: dict, constraints: list[str]) -> tuple[bool, dict]:
    """Whether ``summary`` meets every constraint, and the value each one saw."""
    seen, ok = {}, True
    for text in constraints:
        path, op, bound = parse_constraint(text)
        value = lookup(summary, path)
        seen[text] = value
        if not isinstance(value, (int, float)) or not OPERATORS[op](value, bound):
            ok = False
    return ok, seen


def satisficing_choice(
    candidates: list[dict], objective: str, constraints: list[str], minimize: bool = True
) -> dict | None:
    """The best candidate by ``objective`` among those meeting every constraint (None if none does)."""
    eligible = [
        c for c in candidates if check_constraints(c, constraints)[0] and isinstance(lookup(c, objective), (int, float))
    ]
    if not eligible:
        return None
    return (min if minimize else max)(eligible, key=lambda c: lookup(c, objective))
