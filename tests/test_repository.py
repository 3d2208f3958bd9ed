"""The repository stays clean: no run outputs are tracked outside tests/, and .gitignore keeps them out."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

# What a run, a sweep or a logger writes (see docs: a run's folder).
RUN_OUTPUT_NAMES = {"summary.json", "metrics.jsonl", "analysis.json", "trials.jsonl", "regions.json", "provenance.json"}
RUN_OUTPUT_SUFFIXES = {".pt", ".pth", ".ckpt", ".wandb"}


def looks_like_run_output(path: str) -> bool:
    parts = Path(path).parts
    name = parts[-1]
    return (
        name in RUN_OUTPUT_NAMES
        or Path(name).suffix in RUN_OUTPUT_SUFFIXES
        or ".hydra" in parts
        or "checkpoints" in parts[:-1]
    )


def git(*args: str) -> list[str]:
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.fail("this test needs the git checkout (git ls-files): run the suite from a clone")
    listed = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=True)
    return [line for line in listed.stdout.splitlines() if line]


def test_no_run_outputs_are_tracked_outside_tests():
    tracked = [p for p in git("ls-files") if not p.startswith("tests/") and (REPO / p).exists()]
    offenders = [p for p in tracked if looks_like_run_output(p)]
    assert not offenders, f"run outputs are tracked (git rm them; .gitignore should have kept them out): {offenders}"


@pytest.mark.parametrize(
    "path",
    [
        "outputs/2026-01-01/12-00-00/summary.json",
        "multirun/2026-01-01/12-00-00/0/metrics.jsonl",
        "wandb/offline-run-1/run-1.wandb",
        "my_runs/int1/checkpoints/last.pt",
        "sweeps/lr/trials.jsonl",
        "anywhere/analysis.json",
        "model.pt",
    ],
)
def test_gitignore_covers_run_outputs_wherever_they_are_made(path):
    ignored = subprocess.run(["git", "check-ignore", "--no-index", "-q", path], cwd=REPO)
    assert ignored.returncode == 0, f"{path} is not ignored by .gitignore"


@pytest.mark.parametrize(
    "path", ["src/dlrunner/cli/base.py", "conf/config.yaml", "tests/test_repository.py", "README.md"]
)
def test_gitignore_keeps_the_source(path):
    ignored = subprocess.run(["git", "check-ignore", "--no-index", "-q", path], cwd=REPO)
    assert ignored.returncode == 1, f"{path} would be ignored by .gitignore"


@pytest.mark.parametrize(
    "path, expected",
    [
        ("solo0/checkpoints/best.pt", True),
        ("stack1/summary.json", True),
        ("run/.hydra/config.yaml", True),
        ("src/dlrunner/train/checkpoint.py", False),
        ("conf/sweep/lr.yaml", False),
    ],
)
def test_the_guard_recognises_run_outputs(path, expected):
    assert looks_like_run_output(path) is expected


def test_the_changelog_names_the_current_version():
    import dlrunner

    changelog = (REPO / "CHANGELOG.md").read_text()
    released = re.findall(r"^## \[(\d+\.\d+\.\d+)\]", changelog, flags=re.M)
    assert released, "CHANGELOG.md has no released version (## [X.Y.Z] - DATE)"
    assert released[0] == dlrunner.__version__, (
        f"the newest CHANGELOG.md entry is {released[0]} but dlrunner.__version__ is {dlrunner.__version__}: "
        "move the version with the changelog"
    )
