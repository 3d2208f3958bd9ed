"""A group option typed on the command line wins over an experiment's settings.

Hydra merges an experiment (``experiment=mnist1d_cnn``, a ``_global_`` config) after the groups,
so its ``trainer.steps: 6000`` silently beat ``trainer=quick`` typed beside it: the user asked for
a quick run and trained 6000 steps. The rule dlrun keeps instead: what the user typed wins.
``typed_choices_win`` finds each key that both the typed option's file and the experiment set to
different values, and adds an override that gives it the option's value (a key typed explicitly,
``trainer.steps=50``, is left alone: it wins anyway), with a note that says so.
"""

from __future__ import annotations

import re
from pathlib import Path

_CHOICE = re.compile(r"^([A-Za-z_][\w]*)=([\w.\-]+)$")  # GROUP=OPTION, not a sweep (a,b) or a key (a.b=...)


def typed_choices_win(args: list[str]) -> tuple[list[str], list[str]]:
    """``args`` with the overrides that make typed group options win over an experiment, and one note per key."""
    choices = dict(m.groups() for a in args if (m := _CHOICE.match(a)))
    experiment = choices.pop("experiment", None)
    if experiment is None or not choices:
        return args, []
    from omegaconf import OmegaConf

    experiment_file = _config_file("experiment", experiment)
    if experiment_file is None:
        return args, []  # Hydra says that it does not exist
    experiment_cfg = OmegaConf.to_container(OmegaConf.load(experiment_file))
    typed_keys = {a.split("=", 1)[0].lstrip("+~") for a in args if "=" in a}
    added, notes = [], []
    for group, option in choices.items():
        option_file = _config_file(group, option)
        if option_file is None or not isinstance(experiment_cfg.get(group), dict):
            continue
        option_cfg = OmegaConf.to_container(OmegaConf.load(option_file))
        for key, value in _leaves(experiment_cfg[group]):
            full = f"{group}.{key}"
            theirs = _lookup(option_cfg, key)
            if full in typed_keys or theirs is _MISSING or theirs == value:
                continue
            added.append(f"{full}={_override_value(theirs)}")
            notes.append(
                f"{group}={option} typed: {full}={_override_value(theirs)} wins over experiment={experiment}'s "
                f"{_override_value(value)} (type {full}=VALUE to choose another)"
            )
    return args + added, notes


_MISSING = object()


def _config_file(group: str, option: str) -> Path | None:
    from dlrunner.config.paths import config_dirs

    return next((p for d in config_dirs() if (p := d / group / f"{option}.yaml").is_file()), None)


def _leaves(node: dict, prefix: str = ""):
    for key, value in node.items():
        if key == "defaults":
            continue
        if isinstance(value, dict):
            yield from _leaves(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def _lookup(node: dict, dotted: str):
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return _MISSING
        node = node[part]
    return node


def _override_value(value) -> str:
    """A value in Hydra's override grammar."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, list):
        return "[" + ",".join(_override_value(v) for v in value) + "]"
    text = str(value)
    return text if re.fullmatch(r"[\w.\-/]+", text) else "'" + text.replace("'", "\\'") + "'"


def epochs_mean_epochs(args: list[str]) -> list[str]:
    """``trainer.epochs=5`` typed without ``trainer.steps``: train 5 epochs. The trainer configs
    count steps (``steps: 6000``), and one of the two must be null; giving epochs means epochs."""
    typed = {a.split("=", 1)[0].lstrip("+"): a.split("=", 1)[1] for a in args if "=" in a}
    if typed.get("trainer.epochs", "null").lower() not in ("null", "none", "~") and "trainer.steps" not in typed:
        return [*args, "trainer.steps=null"]
    return args


def what_the_user_typed(args: list[str]) -> tuple[list[str], list[str]]:
    """The overrides with dlrun's rules for what typed words mean applied, and notes to show."""
    args, notes = typed_choices_win(epochs_mean_epochs(args))
    return args, notes
