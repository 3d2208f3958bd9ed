"""What a finished trial gave: the value its task returned (a mapping as a dict), else its folder's
summary.json (a stacked dlrun trial returns only its dev error; a trial recovered from its folder
returned nothing here), or the exception it raised."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from omegaconf import DictConfig, OmegaConf


def read_summary(run_dir: Path) -> dict:
    try:
        return json.loads((run_dir / "summary.json").read_text())
    except (OSError, ValueError):
        return {}


def outcome(job, run_dir: Path) -> tuple[object, str, str]:
    """(result, status, message) of a finished job: its return value (a mapping as a dict), else
    its folder's summary.json (a stacked dlrun trial, or one recovered from its folder)."""
    from hydra.core.utils import JobStatus

    if job is not None and job.status == JobStatus.FAILED:
        try:
            _ = job.return_value  # re-raises the job's exception: the public way to get it
        except Exception as error:  # Hydra's job runner keeps any exception the task raised
            summary = read_summary(run_dir)
            return summary, "failed", summary.get("message") or f"{type(error).__name__}: {error}"
    value = job.return_value if job is not None else None
    if isinstance(value, DictConfig):
        value = OmegaConf.to_container(value, resolve=True)
    if not isinstance(value, Mapping):  # a stacked dlrun trial returns only its dev error
        summary = read_summary(run_dir)
        if summary:
            value = summary
    if isinstance(value, Mapping):
        status = value.get("status") if isinstance(value.get("status"), str) else "completed"
        return value, status, str(value.get("message") or "")
    return value, "completed", ""


def is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
