"""What to type next: the complete command that resumes an interrupted run.

"resume with trainer.resume=true" alone is not enough: run in a new folder, ``trainer.resume=true``
searches outputs/ for a run to continue, which may not be this one. The hint names this run's
folder and repeats the overrides it was started with, so that it resumes *this* run, in its own
folder. A sweep's trial is resumed by rerunning the sweep (its trials resume on their own).
"""

from __future__ import annotations

import shlex
from pathlib import Path

# Overrides the hint sets itself (a resumed run must not carry the old values).
_REPLACED = ("trainer.resume=", "hydra.run.dir=", "hydra.sweep.dir=")


def resume_hint(run_dir: Path) -> str:
    """One sentence: how to resume the run in ``run_dir``."""
    launch = _hydra_launch()
    if launch is None:  # called from Python, not through dlrun
        return f"resume with trainer.resume={shown_path(run_dir)}"
    overrides, mode, sweep_dir, options = launch
    if mode == "MULTIRUN":
        return (
            f"rerun the same command (same hydra.sweep.dir={shown_path(sweep_dir)}) to resume it: "
            "each unfinished job continues from its checkpoint"
        )
    kept = [o for o in overrides if not o.lstrip("+~").startswith(_REPLACED)]
    words = ["dlrun", "train", *options, *kept, "trainer.resume=true", f"hydra.run.dir={shown_path(run_dir)}"]
    return "resume with: " + " ".join(shlex.quote(w) for w in words)


def shown_path(path: Path) -> str:
    """A path as the user would type it from here: relative below the working directory, else absolute."""
    path = Path(path).resolve()
    try:
        return str(path.relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _hydra_launch():
    """(task overrides, mode, sweep folder, dlrun options) of the Hydra job running now, or None."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return None
    hydra_cfg = HydraConfig.get()
    from dlrunner.config.paths import builtin_config_dir, user_config_dir

    options = ["--config-dir", str(user_config_dir())] if user_config_dir() is not None else []
    primary = next((s.path for s in hydra_cfg.runtime.config_sources if s.provider == "main"), "")
    primary = primary.split("://", 1)[-1]
    if primary and Path(primary).resolve() != builtin_config_dir().resolve():  # the user's --config-path
        options += ["--config-path", primary]
    if hydra_cfg.job.config_name != "config":
        options += ["--config-name", hydra_cfg.job.config_name]
    return list(hydra_cfg.overrides.task), hydra_cfg.mode.name, Path(hydra_cfg.sweep.dir), options
