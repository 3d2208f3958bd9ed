"""A sweep on joblib's workers hands each trial to whichever worker is free (dlrunner.sweep.parallel):
the ledger follows the trials as they finish, every trial is written once, a stop signal leaves the
running trials' interrupted summaries and starts no other trial, the rerun finishes the sweep; and
with the joblib launcher's per-job function out of reach, the sweep takes the launcher's own
launch(), a worker count at a time. Real subprocesses and worker processes throughout."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
from hydra.test_utils.test_utils import run_python_script

from helpers import last_step, output, read_summary, start_dlrun, sweep_ledger, wait_for

pytest.importorskip("hydra_plugins.hydra_joblib_launcher", reason="the joblib launcher is an extra")

# A plain Hydra app. Trial 0 is the long one: it ends once `others` lines are in the sweep's
# ledger (or after 60 s, so that a sweep that waits for it before writing anything still ends).
APP = """
import time
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig


def written(ledger):
    return ledger.read_text().splitlines() if ledger.exists() else []


@hydra.main(config_path="conf", config_name="config", version_base="1.3")
def main(cfg):
    hydra_cfg = HydraConfig.get()
    ledger = Path(hydra_cfg.sweep.dir) / "trials.jsonl"
    if hydra_cfg.job.num == 0:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(written(ledger)) < cfg.others:
            time.sleep(0.05)
    return (cfg.x - 0.3) ** 2


if __name__ == "__main__":
    main()
"""

# The same app with the joblib launcher's per-job function out of dlrunner's reach.
FALLBACK = """
import runpy
import sys

from dlrunner import internals

if sys.argv[1] == "outside-range":
    internals.JOBLIB_LAUNCHER_RANGE = ((0, 1), (0, 2))
else:  # a plugin whose per-job function changed: other parameters
    from hydra_plugins.hydra_joblib_launcher import _core

    original = _core.execute_job
    _core.execute_job = lambda *args, **kwargs: original(*args, **kwargs)
sys.argv = sys.argv[2:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def make_app(tmp_path: Path) -> Path:
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "config.yaml").write_text("x: 0.5\nothers: 0\n")
    (tmp_path / "app.py").write_text(APP)
    (tmp_path / "fallback.py").write_text(FALLBACK)
    return tmp_path / "app.py"


def sweep_args(sweep_dir: Path, budget: int, others: int) -> list[str]:
    return [
        "-m",
        "hydra/sweeper=dlrunner",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        "x=interval(0, 1)",
        f"others={others}",
        f"hydra.sweeper.budget={budget}",
        "hydra.sweeper.rounds=1",
        f"hydra.sweep.dir={sweep_dir}",
    ]


def test_a_free_worker_takes_the_next_trial_and_the_ledger_follows_the_trials_as_they_finish(tmp_path):
    app = make_app(tmp_path)
    out, _ = run_python_script([str(app), *sweep_args(tmp_path / "s", budget=6, others=5)])
    numbers = [r["number"] for r in sweep_ledger(tmp_path / "s")]
    # Trial 0 ran until the other five were written: they went, one after another, to the other
    # worker, each written as it finished (a launch of pairs would have waited for trial 0).
    assert numbers == [1, 2, 3, 4, 5, 0], out
    assert all(r["status"] == "completed" for r in sweep_ledger(tmp_path / "s"))
    assert out.count("is launching 6 jobs") == 1 and "#5 : " in out


@pytest.mark.parametrize("how", ["outside-range", "changed-function"])
def test_without_the_launchers_per_job_function_the_sweep_launches_a_pair_at_a_time(tmp_path, how):
    make_app(tmp_path)
    out, _ = run_python_script([str(tmp_path / "fallback.py"), how, "app.py", *sweep_args(tmp_path / "s", 4, 0)])
    records = sweep_ledger(tmp_path / "s")
    assert sorted(r["number"] for r in records) == [0, 1, 2, 3]
    assert all(r["status"] == "completed" for r in records)
    assert out.count("is launching 2 jobs") == 2, out  # the launcher's own launch(), twice


@pytest.mark.parametrize("how", ["the process", "the process, then its group"])
@pytest.mark.slow  # signals a sweep and its worker processes
def test_a_stop_mid_round_leaves_interrupted_summaries_starts_no_other_trial_and_the_rerun_finishes(tmp_path, how):
    """`kill -INT` to the sweep process alone, or as `timeout -s INT` stops it: to the process and
    then to its whole group, so that the sweep process receives the one request twice (it stopped
    at once on the second, and killed its workers before their trials wrote their summaries). The
    trials log to W&B: the signal passed on to the workers must not reach W&B's service processes
    below them, which their trials still need to close their runs (they lost every record)."""
    pytest.importorskip("wandb", reason="wandb is a test extra: pip install -e '.[test]'")
    from wandb_files import read_run

    sweep = [
        *("sweep", "sweep=lr", "data=moons", "trainer=quick", "trainer.steps=6000", "trainer.eval_every=50"),
        "logger=wandb",
        *("hydra.sweeper.budget=4", "hydra.sweeper.rounds=1", "hydra.sweeper.method=random"),
        *("hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "hydra.sweep.dir=s"),
    ]
    process = start_dlrun(*sweep, cwd=tmp_path, own_group=True)
    running = [tmp_path / "s" / "0", tmp_path / "s" / "1"]
    wait_for(lambda: all(last_step(t) >= 100 for t in running), "both trials training", process, timeout=300)
    process.send_signal(signal.SIGINT)  # `kill -INT`: the sweep process alone
    if how == "the process, then its group":
        os.killpg(process.pid, signal.SIGINT)
    out, err = output(process, timeout=300)
    assert process.returncode == 130, out[-2000:] + err[-2000:]
    assert "Resume the sweep with: " in out
    for trial in running:
        assert read_summary(trial)["status"] == "interrupted"
        assert (trial / "checkpoints" / "last.pt").is_file()
        logged = read_run(trial)  # the W&B run closed whole: its evaluations and its summary
        assert len(logged["history"]) >= 2 and logged["summary"]["status"] == "interrupted"
    for waiting in ("2", "3"):  # queued for a worker when the stop came: never started
        assert not (tmp_path / "s" / waiting / "summary.json").exists()
    assert sweep_ledger(tmp_path / "s") == []  # nothing finished: an interrupted trial runs again on resume

    again = start_dlrun(*sweep, cwd=tmp_path)
    out, err = output(again, timeout=600)
    assert again.returncode == 0, err[-3000:]
    assert "0 trials already done, 2 stopped part-way (they continue from their checkpoints)" in out
    records = sweep_ledger(tmp_path / "s")
    assert sorted(r["number"] for r in records) == [0, 1, 2, 3]  # each trial once
    assert all(r["status"] == "completed" for r in records)
    for trial in running:  # resumed from its checkpoint, not started over
        assert read_summary(trial)["resumed_from"]["step"] >= 100
    assert json.loads((tmp_path / "s" / "sweep.json").read_text())["budget"] == 4


@pytest.mark.slow  # two dlrun workers
def test_a_misspelt_objective_stops_the_sweep_and_the_running_trials_finish(tmp_path):
    sweep = [
        *("sweep", "sweep=lr", "data=moons", "trainer=quick", "trainer.steps=300"),
        *("hydra.sweeper.budget=6", "hydra.sweeper.rounds=1", "hydra.sweeper.objective=metrics.dev.eror"),
        *("hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "hydra.sweep.dir=s"),
    ]
    process = start_dlrun(*sweep, cwd=tmp_path)
    _out, err = output(process, timeout=300)
    assert process.returncode == 2, err[-3000:]
    assert "hydra.sweeper.objective='metrics.dev.eror'" in err and "metrics.dev.error" in err
    assert "Traceback" not in err
    # Once the first result told, no trial starts (a worker may have taken its next one just
    # before): the 6 are not all run, and each started trial ran to its end, none killed half-way.
    started = sorted(int(d.name) for d in (tmp_path / "s").glob("[0-9]*"))
    assert {0, 1} <= set(started) and len(started) <= 4, started
    assert all(read_summary(tmp_path / "s" / str(n))["status"] == "completed" for n in started)


def test_the_sweep_process_takes_one_stop_request_delivered_twice_as_one(monkeypatch):
    """`timeout -s INT` and job schedulers signal the sweep process and then its whole group, so
    the sweep process gets the one request twice at once: it must go on waiting for its workers'
    summaries (a second request, later, still stops it at once). Real signals, to this process."""
    import time

    from dlrunner import workers

    # Passed on to no process: this test process's children (W&B's service of an earlier test) would die of it.
    monkeypatch.setattr(workers, "_children", lambda pid: [])
    with workers.ForwardedStop() as stop:
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGINT)  # the same request, through the group
        assert stop.received == signal.SIGINT
        later = time.monotonic() + workers.SAME_REQUEST_S + 0.5
        monkeypatch.setattr(workers.time, "monotonic", lambda: later)
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)  # asked again: stop now
