"""`dlrun report PATH`: one self-contained HTML file (figures embedded, no scripts, no network)
plus PNGs of the figures, for a run folder or a sweep folder."""

from __future__ import annotations

from pathlib import Path

from dlrunner.errors import ConfigError, Problem


def build_report(path: Path) -> Path:
    """Write PATH/report.html and PATH/report/*.png; return the HTML file's path."""
    path = Path(path)
    if not path.is_dir():
        raise ConfigError(Problem("PATH", str(path), "no such folder; give a run folder or a sweep folder"))
    if (path / "trials.jsonl").is_file():
        from dlrunner.report.sweep import sweep_report

        return sweep_report(path)
    if (path / "metrics.jsonl").is_file():
        from dlrunner.report.run import run_report

        return run_report(path)
    raise ConfigError(
        Problem(
            "PATH", str(path), "neither a run folder (it has no metrics.jsonl) nor a sweep folder (no trials.jsonl)"
        )
    )
