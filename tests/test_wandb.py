"""logger=wandb, offline: the run files W&B writes are read back and checked (no mocks)."""

from __future__ import annotations

import json

import pytest

from helpers import read_metrics, read_summary, run_dlrun
from wandb_files import read_run

pytest.importorskip("wandb", reason="wandb is a test extra: pip install -e '.[test]'")

QUICK = ("trainer=quick", "data=moons", "logger=wandb")


def test_a_run_is_logged_offline_into_its_folder(tmp_path):
    home = tmp_path / "home"  # W&B's staging folder would be under it
    result = run_dlrun(
        "train",
        *QUICK,
        "logger.tags=[first,moons]",
        "logger.notes=hello",
        "hydra.run.dir=r",
        cwd=tmp_path,
        env={"HOME": str(home)},
    )
    assert result.returncode == 0, result.stderr
    logged = read_run(tmp_path / "r")
    run = logged["run"]
    assert run.display_name == "r" and run.project == "dlrunner" and run.job_type == "train"
    assert list(run.tags) == ["first", "moons"] and run.notes == "hello"
    # The resolved config, as a plain dict.
    assert logged["config"]["model"]["layers"] == [100, 100]
    assert logged["config"]["data"]["source"]["_target_"] == "dlrunner.data.sources.moons"
    # Every evaluation, with its step, the same numbers as metrics.jsonl.
    metrics = read_metrics(tmp_path / "r")
    rows = [row for row in logged["history"] if "dev/error" in row]
    assert [row["_step"] for row in rows] == [m["step"] for m in metrics]
    assert [row["dev/error"] for row in rows] == [m["dev"]["error"] for m in metrics]
    assert [row["J_with_penalty"] for row in rows] == [m["J_with_penalty"] for m in metrics]
    # The final summary, diagnosis included.
    summary = read_summary(tmp_path / "r")
    assert logged["summary"]["status"] == "completed"
    assert logged["summary"]["diagnosis/verdict"] == summary["diagnosis"]["verdict"]
    assert logged["summary"]["diagnosis/avoidable_bias"] == summary["diagnosis"]["avoidable_bias"]
    assert logged["summary"]["n_params"] == summary["n_params"]
    assert logged["summary"]["timing/steps"] == 300
    # The error-analysis material: a confusion matrix and a table of misclassified dev examples.
    last = rows[-1]  # logged at the last training step, beside that step's metrics
    assert last["dev/misclassified/_type"] == "table-file" and last["dev/misclassified/nrows"] > 0
    assert last["dev/misclassified/ncols"] == 5
    assert last["dev/confusion_matrix_table/_type"] == "table-file" and last["dev/confusion_matrix_table/nrows"] > 0
    # Where the offline run is, and the command that uploads it.
    offline = next((tmp_path / "r" / "wandb").glob("offline-run-*"))
    assert f"upload it with: wandb sync {offline}" in result.stdout
    # The table files W&B stages for the sync are in the run folder, none under the home folder.
    assert list((tmp_path / "r" / "wandb" / "data" / "artifacts" / "staging").iterdir())
    assert not (home / ".local" / "share" / "wandb").exists()


def test_without_wandb_the_run_goes_on_with_a_warning(tmp_path):
    broken = tmp_path / "site"
    (broken / "wandb").mkdir(parents=True)
    (broken / "wandb" / "__init__.py").write_text("raise ImportError('wandb is broken here')\n")
    result = run_dlrun("train", *QUICK, "hydra.run.dir=r", cwd=tmp_path, env={"PYTHONPATH": str(broken)})
    assert result.returncode == 0, result.stderr
    assert "wandb cannot be imported" in result.stdout and "wandb is broken here" in result.stdout
    assert read_summary(tmp_path / "r")["status"] == "completed"
    assert len(read_metrics(tmp_path / "r")) == 3


def test_a_failing_wandb_init_never_loses_the_run(tmp_path):
    result = run_dlrun("train", *QUICK, "hydra.run.dir=r", cwd=tmp_path, env={"WANDB_MODE": "not-a-mode"})
    assert result.returncode == 0, result.stderr
    assert "W&B could not start a run" in result.stdout
    assert read_summary(tmp_path / "r")["status"] == "completed"


@pytest.mark.slow  # W&B's service in real processes, several seconds
def test_each_sweep_trial_is_its_own_run_grouped_under_the_sweep(tmp_path):
    result = run_dlrun(
        "sweep",
        "sweep=lr",
        *QUICK,
        "trainer.steps=60",
        "trainer.eval_every=30",
        "hydra.sweeper.budget=2",
        "hydra.sweeper.rounds=2",
        "hydra.sweep.dir=lr-search",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    ledger = [json.loads(line) for line in (tmp_path / "lr-search" / "trials.jsonl").read_text().splitlines()]
    for record in ledger:
        logged = read_run(tmp_path / "lr-search" / str(record["number"]))
        # Told apart across sweeps: named after the sweep and the trial, grouped by the sweep.
        assert logged["run"].run_group == "lr-search" and logged["run"].job_type == "train"
        assert logged["run"].display_name == f"lr-search-trial-{record['number']}"
        assert logged["config"]["sweep"] == {"name": "lr-search", "trial": record["number"], "round": record["round"]}
        assert "logger." not in " ".join(record["overrides"])  # nothing added to the trial's config
        assert logged["config"]["optimizer"]["lr"] == record["params"]["optimizer.lr"]
        assert logged["summary"]["status"] == "completed"


def test_the_best_checkpoint_as_an_artifact(tmp_path):
    result = run_dlrun("train", *QUICK, "logger.log_checkpoint=true", "hydra.run.dir=r", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    artifacts = [a for a in read_run(tmp_path / "r")["artifacts"] if a.type == "model"]
    assert len(artifacts) == 1 and artifacts[0].name.endswith("-best")
    assert [entry.path for entry in artifacts[0].manifest.contents] == ["best.pt"]
