"""Helpers shared by the test modules (``from helpers import ...``); fixtures live in conftest.py.

Two ways to run ``dlrun``:
- ``dlrun_in_process``: the real CLI (Typer app, Hydra, training) called in this process, its output
  captured. Use it unless the test is about the process boundary: no new interpreter re-importing
  torch (~1-3 s each).
- ``run_dlrun`` / ``start_dlrun``: the installed ``dlrun`` command in a subprocess, as a user runs it.
  Keep it for signals, exit codes of the whole process, start-up, teardown and environment-dependent
  behaviour (PYTHONPATH, a user's modules).
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


# ------------------------------------------------------------------ dlrun in a subprocess


def dlrun_executable() -> list[str]:
    exe = shutil.which("dlrun") or str(Path(sys.executable).parent / "dlrun")
    if not Path(exe).exists():
        pytest.fail("the dlrun command is not installed: pip install -e '.[test]'")
    return [exe]


def _subprocess_env(env: dict | None) -> dict:
    full_env = {**os.environ, "COLUMNS": "120", **(env or {})}
    full_env.pop("HYDRA_FULL_ERROR", None)
    return full_env


def run_dlrun(*args: str, cwd: Path, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run the installed `dlrun` command as a user would, with its output captured (not a terminal)."""
    return subprocess.run(
        dlrun_executable() + list(args),
        cwd=cwd,
        env=_subprocess_env(env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def start_dlrun(*args: str, cwd: Path, env: dict | None = None, own_group: bool = False) -> subprocess.Popen:
    """The real `dlrun` command, started in the background (run_dlrun waits for it). Its output
    goes to files, not pipes: a long sweep would fill a pipe nobody reads and block. ``own_group``:
    in a process group of its own, which a test may signal as a whole (as `timeout` and schedulers do)."""
    logs = cwd / "logs"
    logs.mkdir(exist_ok=True)
    stem = logs / f"dlrun-{len(list(logs.glob('*.out')))}"
    with open(f"{stem}.out", "w") as out, open(f"{stem}.err", "w") as err:
        process = subprocess.Popen(
            dlrun_executable() + list(args),
            cwd=cwd,
            env=_subprocess_env(env),
            stdout=out,
            stderr=err,
            text=True,
            start_new_session=own_group,
        )
    process.out_path, process.err_path = Path(f"{stem}.out"), Path(f"{stem}.err")
    return process


def output(process: subprocess.Popen, timeout: float = 120) -> tuple[str, str]:
    """Wait for the process; its stdout and stderr."""
    process.wait(timeout=timeout)
    return process.out_path.read_text(), process.err_path.read_text()


def wait_for(condition, what: str, process: subprocess.Popen | None = None, timeout: float = 120) -> None:
    """Poll ``condition`` until it holds; fail (not hang) after ``timeout`` seconds or when the process ended first."""
    deadline = time.monotonic() + timeout
    while not condition():
        if process is not None and process.poll() is not None:
            _out, err = output(process)
            pytest.fail(f"the process ended (code {process.returncode}) before {what}: {err[-2000:]}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


# The test cluster's launcher settings (scripts/slurm_cluster.sh: one node, partition debug).
SLURM_LAUNCHER = (
    "hydra/launcher=submitit_slurm",
    "hydra.launcher.partition=debug",
    "hydra.launcher.cpus_per_task=1",
    "hydra.launcher.mem_gb=1",
    "hydra.launcher.timeout_min=10",
)


# ------------------------------------------------------------------ dlrun in this process


@dataclass
class Result:
    """What a finished ``dlrun`` left: the same fields as subprocess.CompletedProcess."""

    args: list[str]
    returncode: int
    stdout: str
    stderr: str


def dlrun_in_process(*args: str, cwd: Path, env: dict | None = None) -> Result:
    """Run ``dlrun ARGS`` through the real CLI in this process, in ``cwd``, with ``env`` added to the
    environment (a PYTHONPATH there makes the user's modules importable for this call), as if its
    output went to a file 120 columns wide.

    What a command changes in the process is put back afterwards: the working directory, sys.argv,
    the environment, sys.path and the user's modules, dlrun's --debug flag, Hydra's global state,
    the logging set-up Hydra installs for a job, torch's thread count and random state. An exception
    that is not a SystemExit is a crash: exit code 1, its traceback on stderr, as a process prints it.
    Output of child processes or C code is not captured: tests of it use ``run_dlrun``."""
    import logging
    import traceback

    import torch
    from hydra.core.global_hydra import GlobalHydra

    from dlrunner import cli
    from dlrunner.cli import base

    saved_env, saved_argv, saved_cwd, saved_state = dict(os.environ), list(sys.argv), os.getcwd(), dict(base.state)
    saved_path, saved_modules = list(sys.path), set(sys.modules)
    saved_logging = (list(logging.root.handlers), logging.root.level)
    saved_torch = (torch.get_num_threads(), torch.get_rng_state())
    # A user's own modules (PYTHONPATH=DIR in env) are importable for this call only; folders already
    # on sys.path are not the user's.
    requested = [str(Path(cwd, p).resolve()) for p in (env or {}).get("PYTHONPATH", "").split(os.pathsep) if p]
    user_paths = [p for p in requested if p not in {str(Path(q).resolve()) for q in saved_path if q}]
    out, err = io.StringIO(), io.StringIO()
    code = 0
    try:
        sys.path[:0] = user_paths
        importlib.invalidate_caches()
        os.environ.update({"COLUMNS": "120", **(env or {})})
        os.environ.pop("HYDRA_FULL_ERROR", None)
        os.chdir(cwd)
        sys.argv = ["dlrun", *args]
        GlobalHydra.instance().clear()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                cli.app(list(args), prog_name="dlrun", standalone_mode=True)
            except SystemExit as done:
                code = _exit_status(done.code)
            except Exception:
                code = 1
                traceback.print_exc()
    finally:
        sys.path[:] = saved_path
        for name in set(sys.modules) - saved_modules:  # forget the user's modules
            origin = getattr(sys.modules[name], "__file__", None) or ""
            if origin and any(_inside(origin, path) for path in user_paths):
                del sys.modules[name]
        GlobalHydra.instance().clear()
        logging.root.handlers[:], _ = saved_logging
        logging.root.setLevel(saved_logging[1])
        torch.set_num_threads(saved_torch[0])
        torch.set_rng_state(saved_torch[1])
        os.chdir(saved_cwd)
        sys.argv = saved_argv
        os.environ.clear()
        os.environ.update(saved_env)
        base.state.clear()
        base.state.update(saved_state)
    return Result(list(args), code, out.getvalue(), err.getvalue())


def _exit_status(code) -> int:
    """The status a process exits with for ``SystemExit(code)``: None is 0, an int is taken modulo
    256, anything else is printed to stderr and gives 1."""
    if code is None:
        return 0
    if isinstance(code, int) and not isinstance(code, bool):
        return code & 0xFF
    if isinstance(code, bool):
        return int(code)
    print(code, file=sys.stderr)
    return 1


def _inside(path: str, folder: str) -> bool:
    try:
        return os.path.commonpath([os.path.abspath(path), folder]) == folder
    except ValueError:  # different drives
        return False


# ------------------------------------------------------------------ reading what a run left


def run_dirs(root: Path) -> list[Path]:
    """Run folders (those holding Hydra's .hydra/) under ``root``."""
    return sorted(p.parent for p in root.glob("**/.hydra"))


def read_summary(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


def read_metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]


def sweep_ledger(sweep_dir: Path) -> list[dict]:
    path = sweep_dir / "trials.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def last_step(run_dir: Path) -> int:
    """The last evaluation in metrics.jsonl (a line being written may be incomplete: skip it)."""
    path = run_dir / "metrics.jsonl"
    steps = [0]
    if path.is_file():
        for line in path.read_text().splitlines():
            with contextlib.suppress(ValueError):
                steps.append(json.loads(line)["step"])
    return steps[-1]


# ------------------------------------------------------------------ training without the CLI


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
