"""Experiment trackers beside the run folder's own files. ``logger=none`` (default) or ``logger=wandb``.

A logger is told every evaluation (``log_metrics``), the final summary with the error-analysis
material (``log_summary``), and is always closed (``close``), also when the run fails. A tracker
that breaks never breaks the run: it warns once and goes quiet.
"""

from __future__ import annotations

from pathlib import Path


class NoLogger:
    def log_metrics(self, record: dict) -> None:
        pass

    def log_summary(self, summary: dict, analysis: dict | None) -> None:
        pass

    def log_checkpoint(self, path: Path) -> None:
        pass

    def close(self, status: str) -> None:
        pass


def build_logger(cfg, run_dir: Path, console):
    if cfg.logger.backend == "wandb":
        from dlrunner.loggers.wandb_logger import WandbLogger

        return WandbLogger(cfg, run_dir, console)
    return NoLogger()


def flatten(record: dict, prefix: str = "") -> dict:
    """{"dev": {"error": 0.1}} -> {"dev/error": 0.1}, numbers and strings only."""
    flat = {}
    for key, value in record.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}/"))
        elif isinstance(value, (int, float, str, bool)) or value is None:
            flat[name] = value
    return flat
