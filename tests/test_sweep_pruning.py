"""Pruning (hydra.sweeper.pruner=halving) end to end: real `dlrun sweep` runs with every launcher,
checked against the pure-Python successive halving they share (dlrunner.search.pruning)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
import yaml

from helpers import (
    SLURM_LAUNCHER,
    dlrun_in_process,
    last_step,
    read_metrics,
    read_summary,
    run_dlrun,
    start_dlrun,
    sweep_ledger,
    wait_for,
)

STEPS, EVERY, MIN_STEPS, ETA = 90, 10, 10, 3  # rungs at steps 10 and 30
SWEEP = (
    "sweep",
    "sweep=lr",
    "data=moons",
    "trainer=quick",
    f"trainer.steps={STEPS}",
    f"trainer.eval_every={EVERY}",
    "hydra.sweeper.method=random",
    "hydra.sweeper.budget=8",
    "hydra.sweeper.pruner=halving",
    f"hydra.sweeper.pruning.min_steps={MIN_STEPS}",
)


def halving(max_steps=STEPS, min_steps=MIN_STEPS):
    from dlrunner.search.pruning import SuccessiveHalving

    return SuccessiveHalving(max_steps=max_steps, min_steps=min_steps, reduction_factor=ETA)


def replayed(sweep_dir: Path, max_steps=STEPS, min_steps=MIN_STEPS) -> dict:
    """Which trials the sweep's rung file prunes, at which rung (the file replayed in its order)."""
    from dlrunner.search.pruning import SharedHalving

    shared = SharedHalving(sweep_dir / "pruning.jsonl", max_steps=max_steps, min_steps=min_steps, reduction_factor=ETA)
    return shared.replay((sweep_dir / "pruning.jsonl").read_text().splitlines()).pruned


def check_pruned_sweep(sweep_dir: Path, steps: int = STEPS, min_steps: int = MIN_STEPS) -> dict:
    """What every pruned sweep must show; returns {pruned trial: the step it stopped at}."""
    records = sweep_ledger(sweep_dir)
    pruned = {r["number"]: r for r in records if r["status"] == "pruned"}
    completed = [r for r in records if r["status"] == "completed"]
    assert pruned and completed, [(r["number"], r["status"]) for r in records]
    assert {n: r["step"] for n, r in pruned.items()} == replayed(sweep_dir, steps, min_steps)
    for record in pruned.values():
        run_dir = Path(record["run_dir"])
        metrics = read_metrics(run_dir)
        summary = read_summary(run_dir)
        # stopped at its rung: its metrics end there, its last metrics are its result
        assert metrics[-1]["step"] == record["stopped_at"] == record["step"] < steps
        assert record["objective"] == metrics[-1]["dev"]["error"] == summary["metrics"]["dev"]["error"]
        assert summary["status"] == "pruned" and summary["timing"]["steps"] == record["step"]
        assert summary["message"].startswith(f"pruned at step {record['step']}: dev error ")
        assert f"best 1/{ETA} of the" in summary["message"]
        assert not record["eligible"]
        assert (run_dir / "checkpoints" / "last.pt").is_file()
    for record in completed:
        assert read_metrics(Path(record["run_dir"]))[-1]["step"] == steps
    best = yaml.safe_load((sweep_dir / "optimization_results.yaml").read_text())
    winner = min((r for r in completed if r["eligible"]), key=lambda r: r["objective"])
    assert best["best_value"] == winner["objective"] and best["best_params"] == winner["params"]
    return {n: r["step"] for n, r in pruned.items()}


def one_at_a_time(sweep_dir: Path, numbers) -> dict:
    """The decisions of trials that report in turn, each to its end (the basic launcher)."""
    rungs = halving()
    for number in numbers:
        for record in read_metrics(sweep_dir / str(number)):
            if rungs.report(number, record["step"], record["dev"]["error"]) == "prune":
                break
    return rungs.pruned


def test_pruning_with_the_basic_launcher(tmp_path):
    result = dlrun_in_process(*SWEEP, "hydra.sweep.dir=s", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    pruned = check_pruned_sweep(tmp_path / "s")
    assert pruned == one_at_a_time(tmp_path / "s", range(8))
    assert f"Trials: 8 ({8 - len(pruned)} completed, {len(pruned)} pruned)" in result.stdout
    assert f"trial {min(pruned)}: pruned" in result.stdout and "    pruned at step" in result.stdout
    # each job's line names its overrides, not the DLRUN_* variables the trial gets (hydra.yaml has them)
    assert "\t#0 : optimizer.lr=" in result.stdout and "env_set" not in result.stdout
    assert "DLRUN_PRUNING" in (tmp_path / "s" / "0" / ".hydra" / "hydra.yaml").read_text()
    # Resuming: pruned is final, nothing runs again and the ledger is unchanged.
    before = (tmp_path / "s" / "trials.jsonl").read_text()
    again = dlrun_in_process(*SWEEP, "hydra.sweep.dir=s", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "8 trials already done" in again.stdout and "Launching" not in again.stdout
    assert (tmp_path / "s" / "trials.jsonl").read_text() == before
    # Other pruning settings are another sweep.
    other = dlrun_in_process(*SWEEP, "hydra.sweeper.pruning.reduction_factor=2", "hydra.sweep.dir=s", cwd=tmp_path)
    assert other.returncode == 2 and "hydra.sweeper.pruning" in other.stderr


def test_without_pruner_every_trial_trains_to_the_end(tmp_path):
    args = [a for a in SWEEP if "prun" not in a]
    result = dlrun_in_process(*args, "hydra.sweeper.budget=3", "hydra.sweep.dir=s", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert all(r["status"] == "completed" for r in sweep_ledger(tmp_path / "s"))
    assert not (tmp_path / "s" / "pruning.jsonl").exists()
    assert "DLRUN_PRUNING" not in (tmp_path / "s" / "0" / ".hydra" / "hydra.yaml").read_text()


def test_a_stack_freezes_its_pruned_trials_and_trains_the_others(tmp_path):
    result = dlrun_in_process(*SWEEP, "hydra/launcher=stacked", "hydra.sweep.dir=s", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "as one stack of 8" in result.stdout
    pruned = check_pruned_sweep(tmp_path / "s")
    # A stack evaluates its active trials together, and they are judged together at each rung.
    rungs = halving()
    for step in range(EVERY, STEPS + 1, EVERY):
        reports = []
        for number in range(8):
            metrics = {m["step"]: m for m in read_metrics(tmp_path / "s" / str(number))}
            if step in metrics:
                reports.append((number, step, metrics[step]["dev"]["error"]))
        rungs.report_together(reports)
    assert pruned == rungs.pruned


@pytest.mark.slow  # trains the stack twice
def test_the_trials_a_stack_keeps_train_as_in_a_stack_without_pruning(tmp_path):
    # MNIST-1D's layers: there a trial's products do not depend on the stack's size, which changes
    # as pruned trials leave (moons' one-unit output layer rounds differently with another size)
    sweep = [a if a != "data=moons" else "data=mnist1d" for a in SWEEP]
    pruning = dlrun_in_process(*sweep, "hydra/launcher=stacked", "hydra.sweep.dir=p", cwd=tmp_path)
    assert pruning.returncode == 0, pruning.stderr
    unpruned = [a for a in sweep if "prun" not in a]
    plain = dlrun_in_process(*unpruned, "hydra/launcher=stacked", "hydra.sweep.dir=n", cwd=tmp_path)
    assert plain.returncode == 0, plain.stderr
    kept = [r for r in sweep_ledger(tmp_path / "p") if r["status"] == "completed"]
    assert kept and len(kept) < 8
    for record in kept:  # the pruned trials leave the stack; the others' steps are unchanged, bit for bit
        assert read_metrics(Path(record["run_dir"])) == read_metrics(tmp_path / "n" / str(record["number"]))
    for record in sweep_ledger(tmp_path / "p"):  # a pruned trial's curve is the unpruned one's, cut at its rung
        if record["status"] == "pruned":
            full = read_metrics(tmp_path / "n" / str(record["number"]))
            assert read_metrics(Path(record["run_dir"])) == [m for m in full if m["step"] <= record["step"]]


APP = """
import hydra
from dlrunner.search.pruning import report

@hydra.main(config_path="conf", config_name="config", version_base="1.3")
def main(cfg):
    loss = None
    for step in range(1, 101):
        loss = (cfg.x - 0.3) ** 2 + 1.0 / step  # a learning curve: lower with every step
        if step % 10 == 0 and report(step, loss, max_steps=100):
            break  # pruned: return the result so far
    return loss

if __name__ == "__main__":
    main()
"""


def test_another_hydra_app_prunes_with_the_public_hook(tmp_path):
    from hydra.test_utils.test_utils import run_python_script

    (tmp_path / "app.py").write_text(APP)
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "config.yaml").write_text("x: 0.5\n")
    sweep = tmp_path / "s"
    args = ["-m", "hydra/sweeper=dlrunner", "x=interval(0, 1)", f"hydra.sweep.dir={sweep}"]
    args += ["hydra.sweeper.method=random", "hydra.sweeper.budget=8", "hydra.sweeper.pruner=halving"]
    args += ["hydra.sweeper.pruning.min_steps=10"]
    run_python_script([str(tmp_path / "app.py"), *args], env=dict(os.environ))
    records = sweep_ledger(sweep)
    pruned = {r["number"]: r for r in records if r["status"] == "pruned"}
    assert pruned and {n: r["step"] for n, r in pruned.items()} == replayed(sweep, 100, 10)
    for record in pruned.values():  # its objective at the rung it was pruned at
        step = record["step"]
        assert record["objective"] == pytest.approx((record["params"]["x"] - 0.3) ** 2 + 1 / step)
        assert not record["eligible"]
    best = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert best["best_value"] == min(r["objective"] for r in records if r["status"] == "completed")


def test_the_hook_outside_a_sweep_never_prunes(monkeypatch):
    from dlrunner.search import pruning

    monkeypatch.delenv(pruning.PRUNING_ENV, raising=False)
    assert pruning.report(10, float("nan"), max_steps=100) is False


@pytest.mark.slow  # launches worker processes
def test_pruning_with_joblib_workers(tmp_path):
    result = run_dlrun(*SWEEP, "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "hydra.sweep.dir=s", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    check_pruned_sweep(tmp_path / "s")  # which trials: the order their reports reached the shared file


@pytest.mark.slow  # needs a service: the SLURM cluster
def test_pruning_on_a_real_slurm_cluster(tmp_path, slurm_cluster):
    result = run_dlrun(
        *SWEEP,
        "hydra.sweep.dir=s",
        *SLURM_LAUNCHER,
        cwd=tmp_path,
        env=slurm_cluster,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    check_pruned_sweep(tmp_path / "s")
    assert len(list((tmp_path / "s" / ".submitit").glob("*/*_log.out"))) == 8  # the jobs went through SLURM


# Trials long enough (about a second each) for a signal to reach one while it trains: a signal that
# comes while a finished trial writes its results is ignored (train/signals.py) and the sweep goes on.
LONG = (*SWEEP[:4], "trainer.steps=3000", "trainer.eval_every=300", *SWEEP[6:-1], "hydra.sweeper.pruning.min_steps=300")


def training(sweep_dir: Path) -> bool:
    """Some trial is mid-training: evaluated, but neither at a rung (where it may be pruned) nor at its end."""
    return any(
        last_step(d) not in (0, 300, 900, 2700, 3000) and not (d / "summary.json").is_file()
        for d in sweep_dir.glob("[0-9]*")
    )


@pytest.mark.slow  # signals a real process
@pytest.mark.parametrize("launcher, signum", [("basic", signal.SIGTERM), ("stacked", signal.SIGINT)])
def test_a_pruned_sweep_stopped_by_a_signal_resumes_to_the_same_pruned_set(tmp_path, launcher, signum):
    chosen = ("hydra/launcher=stacked",) if launcher == "stacked" else ()
    straight = run_dlrun(*LONG, *chosen, "hydra.sweep.dir=straight", cwd=tmp_path, timeout=600)
    assert straight.returncode == 0, straight.stderr[-3000:]
    expected = check_pruned_sweep(tmp_path / "straight", 3000, 300)

    sweep_dir = tmp_path / "stopped"
    process = start_dlrun(*LONG, *chosen, "hydra.sweep.dir=stopped", cwd=tmp_path)
    rung_file = sweep_dir / "pruning.jsonl"
    # Stop it once some trial was pruned and some other trial is still training.
    wait_for(lambda: (sweep_dir / "pruned.jsonl").is_file(), "a pruned trial", process, timeout=300)
    wait_for(lambda: training(sweep_dir), "a trial training", process, timeout=300)
    process.send_signal(signum)
    process.wait(timeout=120)
    assert process.returncode == 128 + signum, process.err_path.read_text()[-2000:]
    assert "Resume the sweep with" in process.out_path.read_text()
    stopped_reports = rung_file.read_text()
    assert len(sweep_ledger(sweep_dir)) < 8

    rerun = run_dlrun(*LONG, *chosen, "hydra.sweep.dir=stopped", cwd=tmp_path, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert rung_file.read_text().startswith(stopped_reports)  # the reports before the stop were kept
    assert check_pruned_sweep(sweep_dir, 3000, 300) == expected
    # the trials a stack left unfinished go on as one stack, also when pruned trials sit between them
    assert "on its own" not in rerun.stdout
    records = {r["number"]: r for r in sweep_ledger(sweep_dir)}
    for before in sweep_ledger(tmp_path / "straight"):
        record = records[before["number"]]
        assert record["status"] == before["status"] and record.get("step") == before.get("step")
        assert record["objective"] == before["objective"]
