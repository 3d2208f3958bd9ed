"""Load: a sweep of 200 tiny trials on 2 parallel joblib workers completes with 200 ledger lines,
and its long-lived processes (the sweep and its worker processes) neither leak processes or open
files nor grow in memory: measured from /proc once the workers are warm (20 trials done) and again
near the end (190 done), and every process it started is gone after it exits.

About 2 minutes on 2 cores (the trials are a few milliseconds of training; the rest is
Hydra's and the sweep's work per trial). Bounds are generous: they catch a leak per trial (200 of
anything), not noise.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from helpers import output, read_summary, start_dlrun, sweep_ledger, wait_for

pytestmark = pytest.mark.slow  # 200 trials on 2 worker processes, measured for leaks

BUDGET = 200
TINY = (
    "sweep=lr",
    "data=moons",
    "data.source.n_samples=200",
    "model.layers=[8]",
    "trainer.steps=20",
    "trainer.eval_every=20",
    f"hydra.sweeper.budget={BUDGET}",
    "hydra.sweeper.rounds=2",
    "hydra/launcher=joblib",
    "hydra.launcher.n_jobs=2",
)


def descendants(pid: int) -> list[int]:
    """Every process below ``pid``, from /proc/<pid>/task/<tid>/children."""
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            try:
                children = [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                continue  # the thread or process just ended
            found += children
            todo += children
    return found


def measure(pid: int) -> dict:
    """Open file descriptors, resident memory (MiB) and command line of one process."""
    rss_kb = next(
        int(line.split()[1])
        for line in Path(f"/proc/{pid}/status").read_text().splitlines()
        if line.startswith("VmRSS:")
    )
    command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    return {"fds": len(os.listdir(f"/proc/{pid}/fd")), "rss_mb": rss_kb / 1024, "command": command[:200]}


def alive(pid: int) -> bool:
    """Running (a zombie waiting for its parent to read its exit status is not)."""
    try:
        state = next(line for line in Path(f"/proc/{pid}/status").read_text().splitlines() if line.startswith("State:"))
    except OSError:
        return False
    return "zombie" not in state


def snapshot(sweep_pid: int) -> dict:
    measured = {}
    for pid in [sweep_pid, *descendants(sweep_pid)]:
        try:
            measured[pid] = measure(pid)
        except FileNotFoundError:
            # Only a short-lived process ends between the listing and the reading.
            pytest.fail(f"process {pid} below the sweep ended while measured: a process is started per trial")
    return measured


@pytest.mark.slow
def test_200_trials_on_2_workers_leak_nothing(tmp_path):
    sweep = start_dlrun("sweep", *TINY, "hydra.sweep.dir=s", cwd=tmp_path)
    sweep_dir = tmp_path / "s"
    wait_for(lambda: len(sweep_ledger(sweep_dir)) >= 20, "20 trials", sweep, timeout=600)
    start = snapshot(sweep.pid)
    wait_for(lambda: len(sweep_ledger(sweep_dir)) >= BUDGET - 10, f"{BUDGET - 10} trials", sweep, timeout=900)
    end = snapshot(sweep.pid)
    _out, err = output(sweep, timeout=300)
    assert sweep.returncode == 0, err[-3000:]

    records = sweep_ledger(sweep_dir)
    assert sorted(r["number"] for r in records) == list(range(BUDGET))
    assert all(r["status"] == "completed" for r in records), [
        r["message"] for r in records if r["status"] != "completed"
    ][:3]
    assert all(read_summary(sweep_dir / str(n))["status"] == "completed" for n in (0, BUDGET // 2, BUDGET - 1))
    # The same processes did the work from the 20th trial to the 190th: the sweep, its 2 workers
    # and the resource trackers of loky and multiprocessing; none was started per trial.
    assert set(end) == set(start), (start, end)
    workers = [pid for pid in start if pid != sweep.pid and "resource_tracker" not in start[pid]["command"]]
    assert len(workers) == 2 and len(start) <= 5, start
    for pid in start:
        # 170 trials later: a leaked descriptor or a few MiB kept per trial would show many times over.
        assert end[pid]["fds"] <= start[pid]["fds"] + 8, (pid, start[pid], end[pid])
        assert end[pid]["rss_mb"] <= start[pid]["rss_mb"] * 1.25 + 40, (pid, start[pid], end[pid])
    # After the sweep, none of its processes is left behind.
    wait_for(lambda: not any(alive(pid) for pid in start), "the workers to exit", timeout=60)
