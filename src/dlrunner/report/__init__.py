"""`dlrun report PATH`: one self-contained HTML file (figures embedded, no scripts, no network)
plus PNGs of the figures, for a run folder, a sweep folder, or a folder of runs (a multirun, a
trainer.repeats run)."""

from __future__ import annotations

from pathlib import Path

from dlrunner.errors import ConfigError, Problem


def build_report(path: Path) -> Path:
    """Write PATH/report.html and PATH/report/*.png; return the HTML file's path."""
    path = Path(path)
    if not path.is_dir():
        raise ConfigError(
            Problem("PATH", str(path), "no such folder; give a run folder, a sweep folder or a multirun folder")
        )
    if (path / "trials.jsonl").is_file():
        from dlrunner.report.sweep import sweep_report

        return sweep_report(path)
    if (path / "metrics.jsonl").is_file():
        from dlrunner.report.run import run_report

        return run_report(path)
    from dlrunner.report.group import group_report, member_runs

    if member_runs(path):  # a multirun (0/, 1/, ...) or a repeats run (seed-0/, seed-1/, ...)
        return group_report(path)
    raise ConfigError(
        Problem(
            "PATH",
            str(path),
            "not a run folder (no metrics.jsonl), a sweep folder (no trials.jsonl), nor a folder of runs "
            "(a multirun or a trainer.repeats run: subfolders with metrics.jsonl)",
        )
    )
