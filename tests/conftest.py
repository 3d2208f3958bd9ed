"""Shared helpers: the real `dlrun` command in a subprocess, and in-process training on a composed config."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def dlrun_executable() -> list[str]:
    exe = shutil.which("dlrun") or str(Path(sys.executable).parent / "dlrun")
    if not Path(exe).exists():
        pytest.fail("the dlrun command is not installed: pip install -e '.[test]'")
    return [exe]


def run_dlrun(*args: str, cwd: Path, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run the installed `dlrun` command as a user would, with its output captured (not a terminal)."""
    full_env = {**os.environ, "COLUMNS": "120", **(env or {})}
    full_env.pop("HYDRA_FULL_ERROR", None)
    return subprocess.run(
        dlrun_executable() + list(args), cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout
    )


def run_dirs(root: Path) -> list[Path]:
    """Run folders (those holding Hydra's .hydra/) under ``root``."""
    return sorted(p.parent for p in root.glob("**/.hydra"))


def read_summary(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


def read_metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]


def compose(*overrides: str):
    from dlrunner.cli import compose as dlrun_compose

    return dlrun_compose(list(overrides))


def train_in_process(tmp_path: Path, *overrides: str) -> dict:
    """Compose the real config with ``overrides`` and train it in this process (faster than a subprocess)."""
    from rich.console import Console

    from dlrunner.train.run import train

    cfg = compose("trainer.progress=none", *overrides)
    with open(os.devnull, "w") as devnull:
        return train(cfg, tmp_path / "run", Console(file=devnull))


@pytest.fixture(autouse=True)
def _isolated_cwd(tmp_path, monkeypatch):
    """Every test runs in its own directory, so outputs/ never lands in the repository."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DLRUN_CONFIG_DIR", raising=False)
