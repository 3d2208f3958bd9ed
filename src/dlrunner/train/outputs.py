"""The files of a run folder: metrics.jsonl, summary.json, provenance.json, checkpoints/.

``summary.json`` is a stable interface for scripts; its keys are documented in the README.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

from dlrunner.files import write_json_atomic
from dlrunner.train.checkpoint import save_atomic

SUMMARY_VERSION = 1


def failure(err: BaseException) -> dict:
    """summary.json of a run that crashed: status failed and the error, out of memory said plainly."""
    message = f"{type(err).__name__}: {err}"
    if isinstance(err, MemoryError) or type(err).__name__ == "OutOfMemoryError" or "can't allocate memory" in str(err):
        message = f"out of memory (use a smaller model or batch size): {message}"
    return {"status": "failed", "message": message}


def write_analysis(analysis: dict, class_names: list | None, run_dir: Path) -> None:
    """analysis.json: the dev set's confusion matrix and misclassified examples (not the raw label
    lists), with the class names when the data had names."""
    kept = {k: v for k, v in analysis.items() if k not in ("y_true", "y_pred")}
    # each misclassified example and each row of the matrix on a line of its own
    write_json_atomic({**kept, "class_names": class_names}, run_dir / "analysis.json", one_line_below=2)


def mark_continued(old_run: Path, new_run: Path) -> None:
    """An interrupted run resumed in another folder (trainer.resume=true from a new run folder):
    its summary says where it went on (status ``continued``, ``continued_in``), so that it is not
    left "interrupted" forever, resumed twice, or compared as a result of its own. Its metrics,
    checkpoints and the rest of its summary stay as they were."""
    path = old_run / "summary.json"
    try:
        summary = json.loads(path.read_text())
    except (OSError, ValueError):
        return  # killed before it wrote one: nothing claims it is interrupted
    if summary.get("status") != "interrupted" or old_run.resolve() == new_run.resolve():
        return
    summary.update(
        status="continued", continued_in=str(new_run), message=f"{summary.get('message', '')}; continued in {new_run}"
    )
    write_json_atomic(summary, path)


def checkpoint_attachments(data, config: dict) -> dict:
    """What every checkpoint of a run carries beside its training state, solo or stacked: the input
    normalisation, the config and the class names (None when the labels were numbers). Tensors, not
    numpy arrays: checkpoints are read with torch.load(weights_only=True)."""
    import torch

    normalization = {
        name: None if v is None else torch.as_tensor(v) for name, v in (("mean", data.mean), ("std", data.std))
    }
    # what `dlrun predict` and dlrunner.load_run need to rebuild the model without the training data
    facts = {"task": data.task, "n_classes": data.n_classes, "input_shape": list(data.input_shape)}
    attachments = {"normalization": normalization, "config": config, "data": facts}
    names = getattr(data, "class_names", None)
    attachments["class_names"] = list(names) if names else None
    return attachments


class RunFiles:
    """Writes a run's results into its folder (Hydra's run directory)."""

    def __init__(self, run_dir: Path):
        self.run_dir = run_dir
        self.metrics_path = run_dir / "metrics.jsonl"
        self.checkpoint_dir = run_dir / "checkpoints"
        self.attachments: dict = {}  # stored in every checkpoint (input normalisation, config)
        self.listeners: list = []  # called with every metrics record (experiment trackers)
        self._metrics = None

    def start(self, history: list[str] = ()) -> None:
        """Open metrics.jsonl, beginning with ``history`` (lines carried over from a resumed run)."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        for stale in [*self.run_dir.glob(".*.tmp"), *self.checkpoint_dir.glob(".*.tmp")]:
            stale.unlink(missing_ok=True)  # half-written files of a killed process (the real ones were never touched)
        self._metrics = open(self.metrics_path, "w")  # noqa: SIM115 -- kept open for the run, closed by close()
        for line in history:
            self._metrics.write(line.rstrip("\n") + "\n")
        self._metrics.flush()

    def append_metrics(self, record: dict) -> None:
        self._metrics.write(json.dumps(record) + "\n")
        self._metrics.flush()  # a killed run keeps every evaluation it reached
        for listener in self.listeners:
            listener(record)

    def save_checkpoint(self, name: str, state: dict) -> None:
        save_atomic({**self.attachments, **state}, self.checkpoint_dir / f"{name}.pt")

    def write_summary(self, summary: dict) -> None:
        write_json_atomic({"summary_version": SUMMARY_VERSION, **summary}, self.run_dir / "summary.json")

    def write_provenance(self, seed: int, device: str) -> None:
        write_json_atomic(provenance(seed, device), self.run_dir / "provenance.json")

    def close(self) -> None:
        if self._metrics is not None:
            self._metrics.close()
            self._metrics = None


def provenance(seed: int, device: str) -> dict:
    """What is needed to reproduce the run: command, code version, package versions, seed, machine."""
    import hydra
    import numpy
    import omegaconf
    import torch

    from dlrunner.version import __version__

    return {
        "command": sys.argv,
        "cwd": os.getcwd(),
        "git": _git_state(os.getcwd()),
        "seed": seed,
        "device": device,
        "host": platform.node(),
        "platform": platform.platform(),
        "versions": {
            "python": platform.python_version(),
            "dlrunner": __version__,
            "torch": torch.__version__,
            "numpy": numpy.__version__,
            "hydra": hydra.__version__,
            "omegaconf": omegaconf.__version__,
        },
        "torch_threads": torch.get_num_threads(),
    }


def _git_state(cwd: str) -> dict | None:
    """The commit of the working directory's git repository, if there is one.

    Once per directory and process: the code a process runs is the code it imported when it started,
    and the two git commands (~10 ms, more in a big working tree) would otherwise run for every trial
    of a sweep worker and of a stack. No answer (no repository, no git, a timeout) is remembered too:
    outside a repository every trial would otherwise start a git process that fails."""
    if cwd not in _GIT_STATES:
        _GIT_STATES[cwd] = _ask_git(cwd)
    return _GIT_STATES[cwd]


_GIT_STATES: dict[str, dict | None] = {}


def _ask_git(cwd: str) -> dict | None:
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=5)
        if commit.returncode != 0:
            return None
        status = subprocess.run(["git", "status", "--porcelain"], cwd=cwd, capture_output=True, text=True, timeout=5)
        return {"commit": commit.stdout.strip(), "dirty": bool(status.stdout.strip())}
    except (OSError, subprocess.SubprocessError):
        return None
