"""A dlrun sweep's search space, checked at its ends before any trial runs.

A range that reaches past what a setting accepts (``model.keep_prob=interval(0.5, 1.5)``) used to
show only as trials failing one by one, as their draws happened to fall outside. Each parameter is
set to each end of its range (each value of a choice) in a trial's config, the others as drawn
there, and dlrun's checks run on it: a value they refuse refuses the sweep, before anything runs.
"""

from __future__ import annotations

import copy

from omegaconf import DictConfig, OmegaConf, open_dict

from dlrunner.errors import ConfigError, Problem
from dlrunner.search.space import Choice
from dlrunner.sweep.space import as_override


def end_problems(config: DictConfig, space: dict) -> list[Problem]:
    """The problems dlrun's checks find with a parameter at an end of its range; ``config``: one
    trial of the sweep, composed (its ``hydra`` node is left out). A config group's choices
    (``model=mlp,cnn``) are left to the trials: each composes its own group."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from dlrunner.config.validate import validate

    parser = OverridesParser.create()
    trial = copy.deepcopy(config)
    with open_dict(trial):
        trial.pop("hydra", None)
    problems = []
    for name, param in space.items():
        key = name.lstrip("+~")
        if "/" in key or "@" in key or isinstance(OmegaConf.select(trial, key), DictConfig):
            continue
        choice = isinstance(param, Choice)
        ends = param.values if choice else param.grid(2)
        where = "one of its choices: leave it out" if choice else "an end of its search range: narrow the range"
        for value in ends:
            probe = copy.deepcopy(trial)
            try:  # the value as the trial's override gives it (a choice is override text: [32,32])
                parsed = parser.parse_override(as_override(key, value)).value()
                OmegaConf.update(probe, key, parsed, merge=False, force_add=True)
            except Exception:  # not a plain value: the trial that draws it composes it
                continue
            try:
                validate(probe)
            except ConfigError as err:
                problems += [Problem(name, parsed, f"{p.valid} ({where})") for p in err.problems if p.key == key]
    return problems
