"""What a sweep leaves for the winner: ``best.yaml`` (a primary config the app loads again),
``optimization_results.yaml`` (the convention of Hydra's Optuna, Ax and Nevergrad sweepers) and the
command that trains the winner again, in the app's own terms.

``best.yaml`` is the best trial's overrides on top of the app's own primary config, not its
flattened result: config groups stay groups (``override /model: cnn``), so that ``model=mlp`` or
``trainer=default`` can still be chosen on top of it, and nothing a launcher or a logger added to
the trial is carried over.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

DLRUN_TASK = "dlrunner.cli.base.train_task"  # named, not imported: the CLI is a layer above


def is_dlrun_task(task_function) -> bool:
    """Whether Hydra runs dlrun's own task (dlrun train / sweep), rather than another app's:
    only then may a trial's training be stacked, its threads limited, `dlrun train` named."""
    name = f"{getattr(task_function, '__module__', '')}.{getattr(task_function, '__qualname__', '')}"
    return name == DLRUN_TASK


def write_optimization_results(sweep_dir: Path, params: dict, value) -> Path:
    path = sweep_dir / "optimization_results.yaml"
    OmegaConf.save(OmegaConf.create({"name": "dlrunner", "best_params": dict(params), "best_value": value}), path)
    return path


def write_best(run_dir: Path, overrides: list[str], sweep_dir: Path) -> Path | None:
    """best.yaml from the trial's saved Hydra files; None when the trial kept none
    (``hydra.output_subdir=null``)."""
    saved = run_dir / ".hydra"
    if not (saved / "hydra.yaml").is_file() or not (saved / "config.yaml").is_file():
        return None
    hydra_cfg = OmegaConf.load(saved / "hydra.yaml").hydra
    job_cfg = OmegaConf.load(saved / "config.yaml")
    path = sweep_dir / "best.yaml"
    OmegaConf.save(best_config(overrides, hydra_cfg, job_cfg), path)
    return path


def best_config(overrides: list[str], hydra_cfg: DictConfig, job_cfg: DictConfig) -> DictConfig:
    """The app's primary config, then each override: a group choice as a defaults-list override,
    a value as the value the trial composed (so its type is right), in the order given."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    choices = hydra_cfg.runtime.choices
    defaults: list = [hydra_cfg.job.config_name]
    body = OmegaConf.create({})
    for override in OverridesParser.create().parse_overrides(overrides):
        key = override.key_or_group
        if key in choices:
            value = None if override.is_delete() else override.value()
            defaults.append({f"/{key}" if override.is_add() else f"override /{key}": value})
        elif not override.is_delete():
            OmegaConf.update(body, key, OmegaConf.select(job_cfg, key), force_add=True)
        # a deleted key (~key) is absent from the trial's config: nothing to set
    defaults.append("_self_")
    # --config-path replaces the app's config folder: name it again so that `config_name` is found.
    searchpath = [
        f"{source.schema}://{source.path}"
        for source in hydra_cfg.runtime.config_sources
        if source.schema in ("file", "pkg") and source.provider != "hydra"
    ]
    return OmegaConf.merge({"defaults": defaults, "hydra": {"searchpath": searchpath}}, body)


def rerun_command(sweep_dir: Path, dlrun: bool) -> str:
    """The command that trains the winner again: dlrun's, or the app's own script."""
    where = f"--config-path {shlex.quote(str(sweep_dir.resolve()))} --config-name best"
    if dlrun:
        return f"dlrun train {where}"
    script = sys.argv[0] if sys.argv and sys.argv[0] else "your_app.py"
    return f"python {shlex.quote(script)} {where}"
