"""A stack on several CPU cores trains as one smaller stack per process (stack/processes.py): the
same numbers as one stack and as the solo runs, every result handed back to the sweep's process,
stop signals passed on, and nothing left running."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import read_metrics, read_summary, run_dlrun

CASES = Path(__file__).with_name("forking_cases.py")


def test_the_cases_that_split_a_stack_in_this_process_pass_in_a_fresh_one():
    """tests/forking_cases.py, in a pytest process of its own (see there why); its report on failure."""
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(CASES)],
        cwd=CASES.parent.parent,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    cases = len(re.findall(r"^def test_", CASES.read_text(), re.M)) + 5  # one parametrized case has 6
    assert re.search(rf"\b{cases} passed\b", result.stdout), result.stdout[-2000:]


def processes_alive(pids: list[str]) -> list[str]:
    """Those of ``pids`` still running (a process that ended but nobody reaped counts as ended)."""
    alive = []
    for pid in pids:
        status = Path(f"/proc/{pid}/status")
        if status.exists() and "\nState:\tZ" not in status.read_text():
            alive.append(pid)
    return alive


SWEEP_ON_TWO_CORES = (
    "sweep",
    "sweep=lr",
    "model=mlp",
    "trainer.threads=2",
    "trainer.steps=1500",
    "trainer.eval_every=100",
    "trainer.checkpoint_every=1",
    "hydra.sweeper.method=random",
    "hydra.sweeper.rounds=1",
    "hydra.sweeper.budget=8",
    "hydra/launcher=stacked",
)


@pytest.mark.slow  # three sweeps of real processes, one killed
def test_a_sweep_killed_while_its_stack_trains_in_two_processes_loses_nothing(tmp_path):
    """SIGKILL to the sweep process while its stack of 8 trains as two: the other process stops at its
    next step (Linux tells it its parent died) with a checkpoint and a summary for each of its trials,
    instead of training on alone. The rerun sweep goes on from every trial's checkpoint to the curves
    of a sweep that never stopped."""
    from helpers import start_dlrun, wait_for
    from test_stack import ledger

    sweep_dir = tmp_path / "s"
    process = start_dlrun(*SWEEP_ON_TWO_CORES, "hydra.sweep.dir=s", cwd=tmp_path)
    checkpoints = [sweep_dir / str(n) / "checkpoints" / "last.pt" for n in range(8)]
    wait_for(lambda: all(c.is_file() for c in checkpoints), "every trial's first checkpoint", process, timeout=300)
    forks = Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()
    assert len(forks) == 1  # the stack's second process
    process.kill()
    process.wait(timeout=60)
    wait_for(lambda: not processes_alive(forks), "the other process to stop", timeout=60)
    stopped = [n for n in range(8) if (sweep_dir / str(n) / "summary.json").exists()]
    assert stopped == [1, 3, 5, 7]  # the other process's share wrote its results; this one died at once
    for n in stopped:
        summary = read_summary(sweep_dir / str(n))
        assert summary["status"] == "interrupted" and summary["signal"] == "SIGTERM"

    rerun = run_dlrun(*SWEEP_ON_TWO_CORES, "hydra.sweep.dir=s", cwd=tmp_path, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-3000:] + rerun.stdout[-2000:]
    records = ledger(sweep_dir)
    assert sorted(r["number"] for r in records) == list(range(8)) and all(r["status"] == "completed" for r in records)
    straight = run_dlrun(*SWEEP_ON_TWO_CORES, "hydra.sweep.dir=straight", cwd=tmp_path, timeout=600)
    assert straight.returncode == 0, straight.stderr[-3000:]
    assert "split into 2 stacks of 4, one process per core" in straight.stdout
    for n in range(8):
        assert read_summary(sweep_dir / str(n))["resumed_from"] is not None
        metrics = read_metrics(sweep_dir / str(n))
        assert [m["step"] for m in metrics] == list(range(100, 1600, 100))  # the whole curve, each evaluation once
        assert metrics == read_metrics(tmp_path / "straight" / str(n))  # as if it had never stopped


def test_stacks_trained_in_turn_stop_at_a_signal_that_comes_after_the_first_one_finished():
    """train_in_turn: after the first stack finished (its results written), a signal still stops the
    next one; one that came while the first wrote its results keeps the next from training at all,
    its trials left as they were for the rerun."""
    import os
    import signal
    from types import SimpleNamespace

    from dlrunner.stack.processes import not_trained, train_in_turn
    from dlrunner.train.signals import STOP

    stacks = [[SimpleNamespace(number=0)], [SimpleNamespace(number=1)]]
    seen = []

    def fit_share(stack, rows, progress, on_finish, signal_while_finishing=False):
        seen.append((stack[0].number, STOP.received))
        if stack[0].number == 1:  # the second stack: a signal now stops it at its next step
            os.kill(os.getpid(), signal.SIGTERM)
            seen.append(("after kill", STOP.received))
        STOP.finish(interrupted=STOP.received is not None)
        if signal_while_finishing:
            os.kill(os.getpid(), signal.SIGTERM)
        return [{"status": "completed"}]

    STOP.install()
    try:
        summaries = train_in_turn(stacks, 4, fit_share, "none", None)
    finally:
        STOP.restore()
    assert seen == [(0, None), (1, None), ("after kill", signal.SIGTERM)]
    assert summaries == {0: {"status": "completed"}, 1: {"status": "completed"}}

    seen.clear()
    STOP.install()
    try:
        summaries = train_in_turn(stacks, 4, lambda *args: fit_share(*args, signal_while_finishing=True), "none", None)
        assert STOP.received == signal.SIGTERM  # it stopped the sweep after all: the launcher exits 143
    finally:
        STOP.restore()
    assert seen == [(0, None)]
    assert summaries == {0: {"status": "completed"}, 1: not_trained("SIGTERM")}
