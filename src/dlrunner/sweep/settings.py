"""The sweeper's settings checked before anything runs: one message per problem (key, value, what
is valid), every problem at once."""

from __future__ import annotations

import os

from dlrunner.errors import ConfigError, Problem
from dlrunner.search.constraints import parse_constraint


def check_settings(settings: dict, launcher) -> None:
    """Every problem of the sweeper's settings (hydra.sweeper.*) and the launcher's stack size, said at once."""
    s, problems = settings, []
    for key in ("budget", "rounds", "top_k", "grid_points"):
        if key == "rounds" and s[key] is None:  # the search picks the number of rounds from the budget
            continue
        if not isinstance(s[key], int) or s[key] < 1:
            problems.append(Problem(f"hydra.sweeper.{key}", s[key], "a whole number >= 1"))
    if s["method"] not in ("coarse_to_fine", "random", "grid"):
        problems.append(Problem("hydra.sweeper.method", s["method"], "coarse_to_fine, random or grid"))
    if s["direction"] not in ("minimize", "maximize"):
        problems.append(Problem("hydra.sweeper.direction", s["direction"], "minimize or maximize"))
    if not 0 <= s["max_failure_rate"] <= 1:
        problems.append(Problem("hydra.sweeper.max_failure_rate", s["max_failure_rate"], "a fraction in [0, 1]"))
    if s["margin"] < 0:
        problems.append(Problem("hydra.sweeper.margin", s["margin"], "a number >= 0"))
    if "stacked" in str(launcher.get("_target_", "")) and not (
        isinstance(launcher.get("max_stack"), int) and launcher.max_stack >= 1
    ):
        problems.append(
            Problem(
                "hydra.launcher.max_stack",
                launcher.get("max_stack"),
                "a whole number >= 1: the most trials training at once in one stack",
            )
        )
    problems += pruning_problems(settings)
    for text in s["constraints"]:
        try:
            parse_constraint(text)
        except ValueError as err:
            problems.append(Problem("hydra.sweeper.constraints", text, str(err)))
    if problems:
        raise ConfigError(problems)


def pruning_problems(settings: dict) -> list[Problem]:
    s = settings
    if s.get("pruner", "none") not in ("none", "halving"):
        return [
            Problem(
                "hydra.sweeper.pruner",
                s.get("pruner"),
                "none, or halving (successive halving: stop the trials in the worst part at each rung)",
            )
        ]
    pruning, problems = s.get("pruning") or {}, []
    min_steps, factor = pruning.get("min_steps"), pruning.get("reduction_factor", 3)
    if min_steps is not None and (not isinstance(min_steps, int) or min_steps < 1):
        problems.append(
            Problem("hydra.sweeper.pruning.min_steps", min_steps, "a whole number of training steps >= 1, or null")
        )
    if not isinstance(factor, int) or factor < 2:
        problems.append(
            Problem("hydra.sweeper.pruning.reduction_factor", factor, "a whole number >= 2 (each rung keeps 1/it)")
        )
    return problems


def parallelism(launcher) -> int:
    """Trials that run at once: joblib's n_jobs (-1: one per core), else 1."""
    n_jobs = launcher.get("n_jobs") if "joblib" in str(launcher.get("_target_", "")) else None
    if n_jobs is None:
        return 1
    if n_jobs == 0:
        raise ConfigError(
            Problem("hydra.launcher.n_jobs", 0, "a number of parallel workers >= 1 (or -1 for one per core)")
        )
    return (os.cpu_count() or 1) if n_jobs < 0 else int(n_jobs)
