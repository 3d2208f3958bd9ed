"""`dlrun sweep --export-wandb FILE`: the same search space as a W&B sweep configuration.

For users who run `wandb agent` on their cluster. Mapping (W&B has no 1 - beta log scale):

    LogUniform(a, b)          distribution: log_uniform_values, min: a, max: b
    Uniform(a, b)             distribution: uniform
    IntUniform(a, b)          distribution: int_uniform (log scale: q_log_uniform_values, q: 1)
    Pow2(a, b)                values: [a, 2a, ..., b]
    OneMinusLogUniform(a, b)  values: 9 betas with 1 - beta evenly spaced on a log scale
                              (a discrete stand-in: W&B cannot sample 1 - beta continuously)
    Choice(...)               values: [...]

W&B's own method is `random` (no coarse to fine); the budget becomes `run_cap`.
"""

from __future__ import annotations

from pathlib import Path

from dlrunner.search import Choice, IntUniform, LogUniform, OneMinusLogUniform, Pow2, Uniform

BETA_POINTS = 9


def _parameter(param) -> dict:
    if isinstance(param, Choice):
        return {"values": [_plain(v) for v in param.values]}
    if isinstance(param, Pow2):
        return {"values": [2**e for e in range(param.lo.bit_length() - 1, param.hi.bit_length())]}
    if isinstance(param, OneMinusLogUniform):
        lo, hi = param.u_bounds
        return {"values": [round(param.from_u(lo + (hi - lo) * i / (BETA_POINTS - 1)), 6) for i in range(BETA_POINTS)]}
    if isinstance(param, IntUniform):
        if param.log:
            return {"distribution": "q_log_uniform_values", "min": param.lo, "max": param.hi, "q": 1}
        return {"distribution": "int_uniform", "min": param.lo, "max": param.hi}
    if isinstance(param, LogUniform):
        return {"distribution": "log_uniform_values", "min": param.lo, "max": param.hi}
    if isinstance(param, Uniform):
        return {"distribution": "uniform", "min": param.lo, "max": param.hi}
    raise ValueError(f"no W&B distribution for {param!r}")


def _plain(value):
    """Choice values are override strings ('[64,64]', '0.1'): give W&B numbers where they are numbers."""
    for cast in (int, float):
        try:
            return cast(value)
        except (TypeError, ValueError):
            pass
    return value


def export(space: dict, fixed: list[str], settings: dict, path: Path) -> dict:
    import yaml

    metric = settings["objective"].replace(".", "/")  # summary.json keys, flattened as the W&B logger logs them
    config = {
        "program": "dlrun",
        "method": "random",
        "metric": {"name": metric, "goal": settings["direction"]},
        "run_cap": settings["budget"],
        "parameters": {name: _parameter(param) for name, param in space.items()},
        "command": ["dlrun", "train", "logger=wandb", "logger.mode=online", *fixed, "${args_no_hyphens}"],
    }
    if not path.parent.is_dir():
        from dlrunner.errors import ConfigError, Problem

        raise ConfigError(Problem("--export-wandb", str(path), "its folder does not exist"))
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return config


def caveats(settings: dict) -> list[str]:
    """What a W&B sweep cannot carry over, said rather than dropped silently."""
    notes = []
    if settings["method"] != "random":
        notes.append(f"method={settings['method']} is exported as W&B's random search (no coarse-to-fine rounds)")
    if settings["constraints"]:
        notes.append(f"W&B sweeps have no satisficing constraints; not exported: {list(settings['constraints'])}")
    return notes
