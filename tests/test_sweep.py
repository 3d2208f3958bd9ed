"""`dlrun sweep` end to end through the real command: launchers, ledger, resume, failures, best.yaml."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from itertools import pairwise
from typing import ClassVar

import pytest

from helpers import REPO, dlrun_in_process, read_summary, run_dlrun

SMALL = (
    "sweep=lr",
    "data=moons",
    "trainer=quick",
    "trainer.steps=60",
    "trainer.eval_every=30",
    "hydra.sweeper.budget=6",
    "hydra.sweeper.rounds=3",  # rounds from a budget of 6 would be one
)


def ledger(sweep_dir):
    return [json.loads(line) for line in (sweep_dir / "trials.jsonl").read_text().splitlines() if line.strip()]


def test_the_sweeper_plugin_is_discovered():
    code = (
        "from hydra.core.plugins import Plugins\n"
        "from hydra.plugins.sweeper import Sweeper\n"
        "names = [p.__name__ for p in Plugins.instance().discover(Sweeper)]\n"
        "assert 'DlrunnerSweeper' in names, names\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_sweep_with_the_basic_launcher(tmp_path):
    result = dlrun_in_process("sweep", *SMALL, "hydra.sweep.dir=s", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    records = ledger(tmp_path / "s")
    assert [r["number"] for r in records] == list(range(6))
    assert [r["round"] for r in records] == [1, 1, 2, 2, 3, 3]
    for record in records:
        assert record["status"] == "completed" and record["eligible"]
        assert 1e-4 <= record["params"]["optimizer.lr"] <= 1
        summary = read_summary(tmp_path / "s" / str(record["number"]))
        assert summary["metrics"]["dev"]["error"] == record["objective"]
        assert summary["config"]["optimizer"]["lr"] == record["params"]["optimizer.lr"]
        assert record["verdict"] == summary["diagnosis"]["verdict"]
    regions = json.loads((tmp_path / "s" / "regions.json").read_text())
    assert len(regions) == 3 and regions[0]["region"]["optimizer.lr"] == pytest.approx([1e-4, 1])
    assert "Best: trial" in result.stdout and "--config-name best" in result.stdout
    # best.yaml trains the winner again, as is, with the same result.
    best = min((r for r in records if r["eligible"]), key=lambda r: r["objective"])
    import yaml

    results = yaml.safe_load((tmp_path / "s" / "optimization_results.yaml").read_text())
    assert results == {"name": "dlrunner", "best_params": best["params"], "best_value": best["objective"]}
    # The user's overrides on top of the defaults, groups kept as groups, no launcher or logger internals.
    best_yaml = yaml.safe_load((tmp_path / "s" / "best.yaml").read_text())
    assert best_yaml["defaults"] == [
        "config",
        {"override /sweep": "lr"},
        {"override /data": "moons"},
        {"override /trainer": "quick"},
        "_self_",
    ]
    assert best_yaml["optimizer"] == {"lr": best["params"]["optimizer.lr"]}
    assert best_yaml["trainer"] == {"steps": 60, "eval_every": 30}
    assert "logger" not in best_yaml and "threads" not in best_yaml["trainer"]
    # A group can still be chosen on top of it.
    shown = dlrun_in_process(
        "train",
        "--config-path",
        str(tmp_path / "s"),
        "--config-name",
        "best",
        "trainer=default",
        "trainer.steps=7",
        "--cfg",
        "job",
        cwd=tmp_path,
    )
    assert shown.returncode == 0, shown.stderr
    assert "steps: 7" in shown.stdout and f"lr: {best['params']['optimizer.lr']}" in shown.stdout
    # --config-dir still reaches dlrun's configs when --config-path names the sweep folder.
    (tmp_path / "mine" / "model").mkdir(parents=True)
    builtin = (REPO / "conf" / "model" / "mlp.yaml").read_text()
    (tmp_path / "mine" / "model" / "mlp.yaml").write_text(builtin.replace("layers: [100, 100]", "layers: [3]"))
    mine = dlrun_in_process(
        "--config-dir",
        "mine",
        "train",
        "--config-path",
        str(tmp_path / "s"),
        "--config-name",
        "best",
        "--cfg",
        "job",
        cwd=tmp_path,
    )
    assert mine.returncode == 0, mine.stderr
    assert yaml.safe_load(mine.stdout)["model"]["layers"] == [3]
    again = dlrun_in_process(
        "train", "--config-path", str(tmp_path / "s"), "--config-name", "best", "hydra.run.dir=again", cwd=tmp_path
    )
    assert again.returncode == 0, again.stderr
    assert read_summary(tmp_path / "again")["metrics"]["dev"]["error"] == best["objective"]


@pytest.mark.slow  # launches worker processes (through the real command: a worker pool must not outlive it)
def test_sweep_with_joblib_workers_matches_the_sequential_sweep(tmp_path):
    sequential = run_dlrun("sweep", *SMALL, "hydra.sweep.dir=seq", cwd=tmp_path)
    parallel = run_dlrun(
        "sweep", *SMALL, "hydra.sweep.dir=par", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", cwd=tmp_path
    )
    assert sequential.returncode == 0 and parallel.returncode == 0, parallel.stderr
    seq, par = ledger(tmp_path / "seq"), ledger(tmp_path / "par")
    assert sorted((r["number"], r["params"]["optimizer.lr"]) for r in seq) == sorted(
        (r["number"], r["params"]["optimizer.lr"]) for r in par
    )
    # Each of the 2 workers gets 1 of the 2 cores.
    assert all(r["launcher_overrides"] == ["trainer.threads=1"] for r in par)
    assert not any("trainer.threads=1" in r["overrides"] for r in par)  # a launcher setting, not the trial's
    # ... so the sweep folder of one launcher resumes with another (issue 23, item 13).
    again = run_dlrun("sweep", *SMALL, "hydra.sweep.dir=par", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "6 trials already done" in again.stdout and len(ledger(tmp_path / "par")) == 6
    assert {r["number"]: r["objective"] for r in seq} == {r["number"]: r["objective"] for r in par}


def test_a_killed_sweep_resumes_without_rerunning_finished_trials(tmp_path):
    first = dlrun_in_process("sweep", *SMALL, "hydra.sweep.dir=s", cwd=tmp_path)
    assert first.returncode == 0
    path = tmp_path / "s" / "trials.jsonl"
    lines = path.read_text().splitlines()
    # As if killed while writing trial 4's line, before trial 5 ran.
    path.write_text("\n".join(lines[:4]) + "\n" + lines[4][:30])
    import shutil

    shutil.rmtree(tmp_path / "s" / "5")
    mtime = (tmp_path / "s" / "0" / "summary.json").stat().st_mtime
    again = dlrun_in_process("sweep", *SMALL, "hydra.sweep.dir=s", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "Resuming" in again.stdout
    records = ledger_lines = [
        json.loads(line) for line in path.read_text().splitlines()[:4] + path.read_text().splitlines()[5:]
    ]
    assert sorted(r["number"] for r in records) == list(range(6))
    assert path.read_text().splitlines()[4] == lines[4][:30]  # the old line is left as it was
    assert (tmp_path / "s" / "0" / "summary.json").stat().st_mtime == mtime  # trial 0 not rerun
    # Trial 4 finished before the kill: recovered from its folder, not run again; trial 5 ran.
    assert "#4 :" not in again.stdout and "#5 :" in again.stdout
    assert ledger_lines[-1]["number"] == 5


def test_a_failing_trial_is_recorded_and_the_sweep_goes_on(tmp_path):
    (tmp_path / "my_schedules.py").write_text(
        "def explode():\n"
        "    def factor(epoch, step, total_steps):\n"
        "        raise RuntimeError('boom')\n"
        "    return factor\n"
    )
    result = dlrun_in_process(
        "sweep",
        "data=moons",
        "trainer=quick",
        "trainer.steps=30",
        "trainer.eval_every=30",
        "schedule._target_=dlrunner.optim.schedules.constant,my_schedules.explode",
        "hydra.sweeper.budget=2",
        "hydra.sweeper.rounds=1",
        "hydra.sweeper.method=grid",
        "hydra.sweep.dir=s",
        cwd=tmp_path,
        env={
            "PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
            "DLRUN_ALLOWED_TARGETS": "my_schedules",
        },
    )
    assert result.returncode == 0, result.stderr
    records = {r["params"]["schedule._target_"]: r for r in ledger(tmp_path / "s")}
    assert (
        records["my_schedules.explode"]["status"] == "failed" and "boom" in records["my_schedules.explode"]["message"]
    )
    assert not records["my_schedules.explode"]["eligible"]
    # Its traceback where a cluster user looks: the job's stderr (submitit's .err log) and the trial's folder.
    error_log = tmp_path / "s" / str(records["my_schedules.explode"]["number"]) / "error.log"
    assert "Traceback" in error_log.read_text() and "RuntimeError: boom" in error_log.read_text()
    assert records["my_schedules.explode"]["error_log"] == str(error_log)
    assert f"failed: RuntimeError: boom (traceback: {error_log})" in result.stderr
    assert records["dlrunner.optim.schedules.constant"]["status"] == "completed"
    assert "Best: trial" in result.stdout


def test_too_many_failures_stop_the_sweep(tmp_path):
    result = dlrun_in_process(
        "sweep", *SMALL, "data=csv", "data.source.path=missing.csv", "hydra.sweep.dir=s", cwd=tmp_path
    )
    assert result.returncode == 1
    assert "trials failed" in result.stderr and "no such file" in result.stderr
    assert "Traceback" not in result.stderr


def test_constraints_decide_eligibility(tmp_path):
    result = dlrun_in_process(
        "sweep",
        "data=moons",
        "trainer=quick",
        "trainer.steps=30",
        "trainer.eval_every=30",
        "model.layers=[4],[64]",
        "hydra.sweeper.method=grid",
        "hydra.sweeper.budget=2",
        "hydra.sweeper.constraints=['n_params <= 100']",
        "hydra.sweep.dir=s",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    records = {r["params"]["model.layers"]: r for r in ledger(tmp_path / "s")}
    assert records["[4]"]["eligible"] and records["[4]"]["constraints"] == {"n_params <= 100": 17}
    assert not records["[64]"]["eligible"] and records["[64]"]["status"] == "completed"


LATE_FIRST_RUNG = "hydra.sweeper.pruning.min_steps=299"


@pytest.mark.parametrize(
    "args, expected",
    [
        (["optimizer.lr=tag(log, interval(0, 1))"], "log scale needs bounds > 0"),
        (["optimizer.lr=interval(1, 0.1)"], "lower bound must be below"),
        (["optimizer.beta1=tag(one_minus_log, interval(0.9, 1.0))"], "[0, 1)"),
        (["optimizer.lr=tag(loggg, interval(0.1, 1))"], "unknown tag"),
        (["sweep=lr", "hydra.sweeper.budget=0"], "hydra.sweeper.budget"),
        (["data=moons", "--export-wandb", "wb.yaml"], "no parameter to export"),
        (["sweep=lr", "hydra.sweeper.constraints=['n_params <<= 3']"], "constraint"),
        (["sweep=lr", "hydra/launcher=nonexistent"], "hydra/launcher"),
        (["sweep=lr", "hydra.sweeper.pruner=asha"], "hydra.sweeper.pruner='asha': none, or halving"),
        (["sweep=lr", "hydra.sweeper.pruning.reduction_factor=1"], "reduction_factor=1: a whole number >= 2"),
        (["sweep=lr", "hydra.sweeper.pruning.min_steps=0"], "hydra.sweeper.pruning.min_steps=0: a whole number"),
        (["sweep=lr", "hydra.sweeper.pruner=halving", "hydra.sweeper.pruning.min_steps=300"], "trainer.steps=300"),
        (  # the default first rung is a whole number of evaluations: one at the end leaves no rung
            ["sweep=lr", "hydra.sweeper.pruner=halving", "trainer.eval_every=300"],
            "trainer.eval_every=300: no evaluation before the last step (trainer.steps=300), and pruning judges",
        ),
        (  # nor can a first rung set before the last step when no evaluation comes between
            ["sweep=lr", "hydra.sweeper.pruner=halving", "trainer.eval_every=300", "hydra.sweeper.pruning.min_steps=5"],
            "trainer.eval_every=300: no evaluation before the last step (trainer.steps=300), and pruning judges",
        ),
        (  # the limit named is the last evaluation before the last step, under the key that is too late
            ["sweep=lr", "hydra.sweeper.pruner=halving", "trainer.eval_every=250", LATE_FIRST_RUNG],
            "hydra.sweeper.pruning.min_steps=299: a trial is judged at its first evaluation at or past the first "
            "rung, which must come before its last step (trainer.steps=300, trainer.eval_every=250): at most 250",
        ),
    ],
)
def test_bad_sweep_input_is_one_clear_message(tmp_path, args, expected):
    result = dlrun_in_process("sweep", *args, "trainer=quick", "hydra.sweep.dir=s", cwd=tmp_path)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert expected in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "s" / "trials.jsonl").exists()


@pytest.mark.slow  # launches worker processes (through the real command: a worker pool must not outlive it)
def test_sweep_with_submitit_local(tmp_path):
    result = run_dlrun(
        "sweep",
        *SMALL,
        "hydra.sweeper.budget=2",
        "hydra.sweeper.rounds=1",
        "hydra.sweep.dir=s",
        "hydra/launcher=submitit_local",
        "hydra.launcher.timeout_min=5",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    records = ledger(tmp_path / "s")
    assert sorted(r["number"] for r in records) == [0, 1] and all(r["status"] == "completed" for r in records)
    assert list((tmp_path / "s" / ".submitit").glob("*/*_log.out"))  # the jobs ran as submitit processes


def test_export_the_space_as_a_wandb_sweep(tmp_path):
    import yaml

    result = dlrun_in_process(
        "sweep", "sweep=mlp_basic", "data=moons", "hydra.sweeper.budget=12", "--export-wandb", "wb.yaml", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load((tmp_path / "wb.yaml").read_text())
    assert config["method"] == "random" and config["run_cap"] == 12
    assert config["metric"] == {"name": "metrics/dev/error", "goal": "minimize"}
    params = config["parameters"]
    assert params["optimizer.lr"] == {"distribution": "log_uniform_values", "min": 1e-4, "max": 1e-1}
    assert params["regularization.l2"]["distribution"] == "log_uniform_values"
    assert params["trainer.batch_size"] == {"values": [32, 64, 128, 256, 512]}
    betas = params["optimizer.beta1"]["values"]  # 1 - beta evenly spaced on a log scale
    assert betas[0] == pytest.approx(0.999) and betas[-1] == pytest.approx(0.8) and len(betas) == 9
    import math

    steps = [math.log10(1 - a) - math.log10(1 - b) for a, b in pairwise(betas)]
    assert max(steps) - min(steps) < 1e-3
    assert params["model.layers"] == {"values": ["[32,32]", "[64,64]", "[128,128]", "[256,256]"]}
    assert config["command"][:2] == ["dlrun", "train"] and config["command"][-1] == "${args_no_hyphens}"
    assert "data=moons" in config["command"] and "logger=wandb" in config["command"]
    assert not (tmp_path / "multirun").exists() or not list((tmp_path / "multirun").glob("**/trials.jsonl"))


def test_resuming_with_other_settings_is_refused(tmp_path):
    assert dlrun_in_process("sweep", *SMALL, "hydra.sweep.dir=s", cwd=tmp_path).returncode == 0
    before = (tmp_path / "s" / "trials.jsonl").read_text()
    other = dlrun_in_process("sweep", *SMALL, "trainer.steps=90", "hydra.sweep.dir=s", cwd=tmp_path)
    assert other.returncode == 2 and "other settings" in other.stderr and "trainer.steps=90" in other.stderr
    assert "Resuming" not in other.stdout  # refused before it says it resumes
    assert "sweep_round" not in other.stderr and "logger." not in other.stderr  # in the user's terms only
    # A coarse-to-fine sweep's rounds come from its budget: a smaller one is named as the setting it is.
    budget = dlrun_in_process("sweep", *SMALL, "hydra.sweeper.budget=4", "hydra.sweep.dir=s", cwd=tmp_path)
    assert budget.returncode == 2 and "hydra.sweeper.budget was 6, now 4" in budget.stderr
    assert (tmp_path / "s" / "trials.jsonl").read_text() == before


def test_a_sweep_folder_written_by_dlrunner_0_2_still_resumes(tmp_path):
    # Its ledger's overrides held the logger's place in the sweep, after the fixed ones.
    assert dlrun_in_process("sweep", *SMALL, "hydra.sweep.dir=s", cwd=tmp_path).returncode == 0
    lines = []
    for r in ledger(tmp_path / "s"):
        searched = [o for o in r["overrides"] if o.startswith("optimizer.lr=")]
        tracking = [f"logger.sweep_trial={r['number']}", f"logger.sweep_round={r['round']}", "logger.group='s'"]
        old = {k: v for k, v in r.items() if k not in ("launcher_overrides", "objective_from", "error_log")}
        lines.append(
            json.dumps({**old, "overrides": [o for o in r["overrides"] if o not in searched] + tracking + searched})
        )
    (tmp_path / "s" / "trials.jsonl").write_text("\n".join(lines) + "\n")
    again = dlrun_in_process("sweep", *SMALL, "hydra.sweep.dir=s", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "6 trials already done" in again.stdout and len(ledger(tmp_path / "s")) == 6


def test_a_random_sweeps_budget_can_be_raised_to_add_trials(tmp_path):
    args = (*SMALL, "hydra.sweeper.method=random", "hydra.sweep.dir=s")
    assert dlrun_in_process("sweep", *args, "hydra.sweeper.budget=2", cwd=tmp_path).returncode == 0
    first = ledger(tmp_path / "s")
    more = dlrun_in_process("sweep", *args, "hydra.sweeper.budget=3", cwd=tmp_path)
    assert more.returncode == 0, more.stderr
    records = ledger(tmp_path / "s")
    assert records[:2] == first and [r["number"] for r in records] == [0, 1, 2]


def test_a_coarse_to_fine_sweeps_budget_can_be_raised_to_add_a_round(tmp_path):
    # As Optuna lets a study go on (issue 23, item 13): the finished trials stay, the added ones
    # are one more round zoomed in around the best so far, and resuming the larger sweep runs nothing twice.
    assert dlrun_in_process("sweep", *SMALL, "hydra.sweep.dir=s", cwd=tmp_path).returncode == 0
    first = ledger(tmp_path / "s")
    more = dlrun_in_process("sweep", *SMALL, "hydra.sweeper.budget=8", "hydra.sweep.dir=s", cwd=tmp_path)
    assert more.returncode == 0, more.stderr
    assert "added trials are one more round, zoomed in around the best trials so far" in more.stdout
    records = ledger(tmp_path / "s")
    assert records[:6] == first and [(r["number"], r["round"]) for r in records[6:]] == [(6, 4), (7, 4)]
    regions = json.loads((tmp_path / "s" / "regions.json").read_text())
    assert len(regions) == 4
    added = regions[-1]["region"]["optimizer.lr"]
    assert all(added[0] <= r["params"]["optimizer.lr"] <= added[1] for r in records[6:])
    completed = [r for r in first if r["status"] == "completed"]
    best = min(completed, key=lambda r: r["objective"])["params"]["optimizer.lr"]
    assert added[0] <= best <= added[1]  # the zoom holds the best trial so far
    again = dlrun_in_process("sweep", *SMALL, "hydra.sweeper.budget=8", "hydra.sweep.dir=s", cwd=tmp_path)
    assert again.returncode == 0 and "8 trials already done" in again.stdout and len(ledger(tmp_path / "s")) == 8


def test_nothing_to_search_runs_the_one_job(tmp_path):
    # As Hydra's basic sweeper does (issue 22): not an error.
    result = dlrun_in_process(
        "sweep", "data=moons", "trainer=quick", "trainer.steps=30", "hydra.sweep.dir=s", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert "nothing to search" in result.stdout
    assert read_summary(tmp_path / "s" / "0")["status"] == "completed"


@pytest.mark.parametrize("launcher", [(), ("hydra/launcher=stacked",)], ids=["basic", "stacked"])
def test_misspelt_objective_stops_at_the_first_trial_with_the_valid_paths(tmp_path, launcher):
    result = dlrun_in_process(
        "sweep", *SMALL, *launcher, "hydra.sweeper.objective=metrics.dev.eror", "hydra.sweep.dir=s", cwd=tmp_path
    )
    assert result.returncode == 2, result.stderr
    assert "hydra.sweeper.objective='metrics.dev.eror'" in result.stderr and "metrics.dev.error" in result.stderr
    # one message, the same with every launcher (a stack reported its other trials as failed, exit 1)
    assert "failed" not in result.stdout + result.stderr and "SweepFailed" not in result.stderr
    # What trained stands (a stack finishes its trials first): the corrected sweep takes it up.
    finished = [read_summary(folder)["status"] for folder in (tmp_path / "s").iterdir() if folder.name.isdigit()]
    assert finished and set(finished) == {"completed"}
    corrected = dlrun_in_process("sweep", *SMALL, *launcher, "hydra.sweep.dir=s", cwd=tmp_path)
    assert corrected.returncode == 0, corrected.stderr


def test_an_objective_swept_the_wrong_way_for_its_metric_gets_a_note(tmp_path):
    accuracy = ("hydra.sweeper.objective=metrics.dev.accuracy", "hydra.sweeper.budget=2")
    result = dlrun_in_process("sweep", *SMALL, *accuracy, "hydra.sweep.dir=a", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    note = (
        "note: higher is better for hydra.sweeper.objective=metrics.dev.accuracy, but "
        "hydra.sweeper.direction=minimize picks the trial with the lowest as best; add hydra.sweeper.direction=maximize"
    )
    assert note in result.stdout
    right = dlrun_in_process(
        "sweep", *SMALL, *accuracy, "hydra.sweeper.direction=maximize", "hydra.sweep.dir=b", cwd=tmp_path
    )
    assert right.returncode == 0 and "note: " not in right.stdout
    loss = dlrun_in_process(
        "sweep",
        *SMALL,
        "hydra.sweeper.objective=metrics.dev.loss",
        "hydra.sweeper.direction=maximize",
        "hydra.sweeper.budget=2",
        "hydra.sweep.dir=c",
        cwd=tmp_path,
    )
    assert "note: lower is better for hydra.sweeper.objective=metrics.dev.loss" in loss.stdout


def test_a_single_run_with_a_sweep_space_selected_is_not_a_trial(tmp_path):
    # What the exported W&B command runs: dlrun train sweep=... (no multirun).
    result = dlrun_in_process("train", "sweep=lr", "data=moons", "trainer=quick", "hydra.run.dir=r", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert read_summary(tmp_path / "r")["status"] == "completed" and "Verdict" in result.stdout


def test_the_sweep_process_composes_one_override_list_per_form_not_per_trial():
    # Hydra composes the whole config for each list it validates, in the sweep process, where it
    # competed with the parallel workers for the cores (issue 7): numbers of the same keys compose alike.
    from dlrunner.sweep.runner import SweepRunner, _form

    assert _form(["optimizer.lr=0.01", "model=mlp"]) == _form(["optimizer.lr=3e-4", "model=mlp"])
    assert _form(["optimizer.lr=0.01", "model=mlp"]) != _form(["optimizer.lr=0.01", "model=cnn"])

    class Sweeper:
        checked: ClassVar[list] = []

        def validate_batch_is_legal(self, batch):
            self.checked.extend(batch)

    runner = SweepRunner.__new__(SweepRunner)
    runner.sweeper, runner._validated = Sweeper(), set()
    runner._validate(
        [["optimizer.lr=0.1", "model=mlp"], ["optimizer.lr=0.2", "model=mlp"], ["optimizer.lr=0.3", "model=cnn"]]
    )
    runner._validate([["optimizer.lr=0.4", "model=mlp"]])
    assert sorted(o[1] for o in Sweeper.checked) == ["model=cnn", "model=mlp"]


def test_pruning_settings_without_a_pruner_are_noted_as_ignored(tmp_path):
    args = ("sweep", "sweep=lr", "trainer=quick", "trainer.steps=20", "hydra.sweeper.budget=1")
    noted = dlrun_in_process(*args, "hydra.sweeper.pruning.min_steps=10", "hydra.sweep.dir=a", cwd=tmp_path)
    assert noted.returncode == 0 and "hydra.sweeper.pruning applies with hydra.sweeper.pruner=halving" in noted.stdout
    plain = dlrun_in_process(*args, "hydra.sweep.dir=b", cwd=tmp_path)
    assert plain.returncode == 0 and "hydra.sweeper.pruning applies" not in plain.stdout
