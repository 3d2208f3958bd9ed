"""Checkpoints: written atomically (temp file, flush, fsync, rename), checked when read."""

from __future__ import annotations

import os
import re
from pathlib import Path

import torch

from dlrunner.errors import ConfigError, Problem
from dlrunner.internals import numpy_arrays_allowed

FORMAT = "dlrunner-checkpoint-1"


def save_atomic(state: dict, path: Path) -> None:
    """Write ``state`` to ``path`` so that a crash at any moment leaves the old file or the new one,
    never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as handle:
        torch.save({"format": FORMAT, **state}, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    _fsync_folder(path.parent)  # and the rename itself survives a power cut


def _fsync_folder(folder: Path) -> None:
    try:
        handle = os.open(folder, os.O_RDONLY)
    except OSError:
        return  # some systems cannot open a folder; the rename is atomic all the same
    try:
        os.fsync(handle)
    except OSError:
        pass
    finally:
        os.close(handle)


def load_checkpoint(path: Path, key: str = "trainer.resume", training_state: bool = True) -> dict:
    """Read a checkpoint written by ``save_atomic``; a missing, truncated or foreign file is bad input."""
    if not path.is_file():
        raise ConfigError(Problem(key, str(path), "no checkpoint there"))
    try:
        # weights_only: tensors and plain data only. A pickle can name any function to call while
        # it is read, so a checkpoint from someone else could run code; this refuses such a file.
        with numpy_arrays_allowed():
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for truncated or foreign files
        code = re.search(r"GLOBAL (\S+)", str(err), flags=re.IGNORECASE)
        if code and "Weights only load failed" in str(err):
            raise ConfigError(
                Problem(
                    key,
                    str(path),
                    f"refused: it holds pickled Python objects ({code[1]}) that could run code when "
                    "loaded; dlrunner loads only tensors and plain data (torch.load weights_only=True)",
                )
            ) from None
        raise ConfigError(Problem(key, str(path), f"not a readable checkpoint ({type(err).__name__}: {err})")) from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ConfigError(Problem(key, str(path), "not a dlrunner checkpoint"))
    if training_state and "optimizer" not in state:
        raise ConfigError(
            Problem(
                key,
                str(path),
                "this checkpoint holds only the best weights, not the training state; "
                "resume from checkpoints/last.pt or from the run folder",
            )
        )
    return state


def find_resume_checkpoint(resume, run_dir: Path, output_root: Path, config: dict) -> Path | None:
    """Which checkpoint ``trainer.resume`` means (``choose_resume_checkpoint`` without the reason)."""
    return choose_resume_checkpoint(resume, run_dir, output_root, config)[0]


def choose_resume_checkpoint(resume, run_dir: Path, output_root: Path, config: dict) -> tuple[Path | None, str]:
    """Which checkpoint ``trainer.resume`` means, and why that one (said when the run resumes).

    false: none. A path: that .pt file, or that run folder's last checkpoint. true: this run
    folder's last checkpoint (when hydra.run.dir points at an earlier run), else the most recent
    *interrupted* run under the outputs root with the same data and model (read from its
    .hydra/config.yaml); a finished run only when its config is this one but for the length of
    training and the learning rate (babysat: trained further on purpose), never a finished run of
    another experiment (another seed, regularisation, ...).
    auto: this run folder's last checkpoint if the run there did not finish (no summary.json, or
    one saying interrupted), else none: what a requeued or rerun sweep trial needs (the caller
    also checks that the checkpoint's config is this run's).
    """
    if resume is False or resume is None or str(resume).lower() == "false":
        return None, ""
    if str(resume).lower() == "auto":
        own = run_dir / "checkpoints" / "last.pt"
        return (own, "this run folder's unfinished run") if own.is_file() and _unfinished(run_dir) else (None, "")
    if resume is True or str(resume).lower() == "true":
        own = run_dir / "checkpoints" / "last.pt"
        if own.is_file():
            return own, "this run folder's last checkpoint"
        candidates = sorted(output_root.glob("**/checkpoints/last.pt"), key=lambda p: p.stat().st_mtime)
        candidates = [c for c in candidates if run_dir not in c.parents and _same_experiment(c.parent.parent, config)]
        interrupted = [c for c in candidates if _unfinished(c.parent.parent)]
        if interrupted:
            return interrupted[-1], f"the most recent interrupted run under {output_root} with the same data and model"
        longer = [c for c in candidates if _same_experiment(c.parent.parent, config, _LENGTH_ONLY)]
        if longer:
            why = f"a finished run under {output_root} with this config but for its length and learning rate"
            return longer[-1], why
        finished = f" (finished runs of other settings: {', '.join(str(c.parent.parent) for c in candidates[-3:])})"
        raise ConfigError(
            Problem(
                "trainer.resume",
                True,
                f"no interrupted run with the same data and model under {output_root}"
                f"{finished if candidates else ''}; give the run folder to continue: "
                "trainer.resume=true hydra.run.dir=RUN_FOLDER, or trainer.resume=RUN_FOLDER",
            )
        )
    path = Path(str(resume)).expanduser()
    return (path / "checkpoints" / "last.pt" if path.is_dir() else path), "the checkpoint trainer.resume names"


# Trainer settings that change how a run goes, not what it trains: a run resumed with other ones is
# the same run (a sweep's launcher sets its own thread limit, and another launcher may resume it).
HOW_IT_RUNS = ("resume", "progress", "threads")
# Keys a run may change and still be the same experiment trained further (babysitting: longer,
# with a nudged learning rate).
_LENGTH_ONLY = {"trainer": ("steps", "epochs", *HOW_IT_RUNS), "optimizer": ("lr",)}


def _unfinished(run_dir: Path) -> bool:
    import json

    try:
        status = json.loads((run_dir / "summary.json").read_text()).get("status")
    except (OSError, ValueError, AttributeError):
        return True  # no summary (killed), or one cut short
    return status == "interrupted"


def _same_experiment(run_dir: Path, config: dict, except_keys: dict | None = None) -> bool:
    """Whether the run in ``run_dir`` has this data and model (``except_keys`` given: this whole
    config apart from those keys of each section)."""
    from omegaconf import OmegaConf

    saved = run_dir / ".hydra" / "config.yaml"
    if not saved.is_file():
        return False
    try:
        previous = OmegaConf.to_container(OmegaConf.load(saved), resolve=True)
    except Exception:  # an unreadable config is simply not a candidate
        return False
    if except_keys is None:
        return all(previous.get(key) == config.get(key) for key in ("data", "model"))

    def without(cfg: dict) -> dict:
        return {
            section: {k: v for k, v in value.items() if k not in except_keys[section]}
            if section in except_keys and isinstance(value, dict)
            else value
            for section, value in cfg.items()
        }

    return without(previous) == without(config)
