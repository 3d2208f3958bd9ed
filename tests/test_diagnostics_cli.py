"""The diagnostics commands end to end through the real `dlrun`: analyze (and its tally), with
W&B when the run logged to it."""

from __future__ import annotations

import csv

import pytest

from helpers import dlrun_in_process, run_dlrun


@pytest.mark.slow  # W&B's service in real processes, several seconds
def test_analyze_writes_a_sheet_then_tallies_it_and_logs_both_to_wandb(tmp_path):
    from wandb_files import read_run

    trained = run_dlrun("train", "data=digits", "trainer=quick", "logger=wandb", "hydra.run.dir=run", cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr
    run = tmp_path / "run"
    result = run_dlrun("analyze", str(run), "--limit", "30", "--categories", "thin_strokes,rotated", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    sheet = run / "error_analysis" / "sheet.csv"
    assert sheet.is_file() and "--tally" in result.stdout
    assert (run / "error_analysis" / "analysis.json").is_file()
    rows = list(csv.DictReader(sheet.open()))
    assert 0 < len(rows) <= 30 and {"thin_strokes", "rotated", "incorrectly_labelled", "comments"} <= set(rows[0])

    # The W&B run gets the sheet as a table (a resumed offline run with the same id).
    first, later = read_run(run, 0), read_run(run, -1)
    assert later["run"].run_id == first["run"].run_id
    assert any(row.get("error_analysis/sheet/_type") == "table-file" for row in later["history"])

    # Mark half the rows "thin_strokes" and one "incorrectly_labelled", then tally.
    for i, row in enumerate(rows):
        row["thin_strokes"] = "x" if i % 2 == 0 else ""
        row["incorrectly_labelled"] = "x" if i == 0 else ""
    with sheet.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    tallied = run_dlrun("analyze", str(run), "--tally", str(sheet), cwd=tmp_path)
    assert tallied.returncode == 0, tallied.stderr
    assert "thin_strokes" in tallied.stdout and (run / "error_analysis" / "tally.json").is_file()
    assert any(key.startswith("error_analysis/tally/") for key in read_run(run, -1)["summary"])

    # Running analyze again keeps the marked sheet and writes another.
    again = run_dlrun("analyze", str(run), cwd=tmp_path)
    assert again.returncode == 0 and (run / "error_analysis" / "sheet-2.csv").is_file()
    assert next(csv.DictReader(sheet.open()))["thin_strokes"] == "x"


def test_analyze_bad_input_is_exit_2(tmp_path):
    result = dlrun_in_process("analyze", str(tmp_path / "missing"), cwd=tmp_path)
    assert result.returncode == 2 and "RUN" in result.stderr and "Traceback" not in result.stderr
    trained = dlrun_in_process(
        "train", "data=moons", "data.task=regression", "trainer=quick", "hydra.run.dir=reg", cwd=tmp_path
    )
    assert trained.returncode == 0
    result = dlrun_in_process("analyze", str(tmp_path / "reg"), cwd=tmp_path)
    assert result.returncode == 2 and "classification" in result.stderr
    result = dlrun_in_process("analyze", str(tmp_path / "reg"), "--tally", str(tmp_path / "none.csv"), cwd=tmp_path)
    assert result.returncode == 2


@pytest.mark.slow  # trains several models for seconds
def test_learning_curves_tell_variance_from_bias(tmp_path):
    import json

    # The 2x100 MLP on MNIST-1D is high variance: its gap closes as m grows.
    result = dlrun_in_process(
        "learning-curve", "trainer=quick", "--fractions", "0.1,0.3,1", "hydra.sweep.dir=mlp", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    curve = json.loads((tmp_path / "mlp" / "learning_curve.json").read_text())
    assert [p["fraction"] for p in curve["points"]] == [0.1, 0.3, 1.0]
    assert [p["m"] for p in curve["points"]] == [400, 1200, 4000]  # dev is the same 1000 examples throughout
    assert curve["reading"]["findings"] == ["variance"] and "more training data will help" in " ".join(
        result.stdout.split()
    )
    assert (tmp_path / "mlp" / "learning_curve.png").stat().st_size > 1000
    # Logistic regression is high bias: flat curves far above human level.
    result = dlrun_in_process(
        "learning-curve",
        "trainer=quick",
        "model=logreg",
        "--fractions",
        "0.25,0.5,1",
        "hydra.sweep.dir=logreg",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    curve = json.loads((tmp_path / "logreg" / "learning_curve.json").read_text())
    assert curve["reading"]["findings"] == ["bias"] and "more data will not help" in " ".join(result.stdout.split())


def test_learning_curve_bad_fractions_is_exit_2(tmp_path):
    result = dlrun_in_process("learning-curve", "--fractions", "0.5,2", cwd=tmp_path)
    assert result.returncode == 2 and "--fractions" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "multirun").exists()


def test_repeats_over_seeds_report_mean_and_spread(tmp_path):
    import json

    result = dlrun_in_process(
        "train",
        "data=digits",
        "trainer=quick",
        "trainer.steps=60",
        "trainer.seeds=[3,5]",
        "hydra.run.dir=r",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    run = tmp_path / "r"
    singles = [json.loads((run / f"seed-{s}" / "summary.json").read_text()) for s in (3, 5)]
    assert [s["config"]["trainer"]["seed"] for s in singles] == [3, 5]
    assert singles[0]["metrics"]["dev"]["error"] != singles[1]["metrics"]["dev"]["error"]  # the seed matters
    summary = json.loads((run / "summary.json").read_text())
    dev = [s["metrics"]["dev"]["error"] for s in singles]
    assert summary["metrics"]["dev"]["error"] == pytest.approx(sum(dev) / 2)
    assert summary["repeats"]["metrics"]["dev"]["error"]["sd"] > 0
    assert sum(summary["repeats"]["verdicts"].values()) == 2
    assert "seeds give this verdict" in summary["diagnosis"]["notes"][-1]
    assert "± " in result.stdout


def test_the_mismatched_preset_shows_data_mismatch_in_two_dimensions(tmp_path):
    import json

    result = dlrun_in_process(
        "train",
        "data=mnist1d_mismatch",
        "trainer=quick",
        "data.target_split.train=0.2",
        "data.target_split.dev=0.4",
        "data.target_split.test=0.4",
        "hydra.run.dir=r",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    diagnosis, metrics = summary["diagnosis"], summary["metrics"]
    assert "data mismatch" in diagnosis["verdict"]
    assert diagnosis["data_mismatch"] > 0.1  # dev (noisy target) is far worse than train-dev (general)
    table = diagnosis["mismatch_table"]
    assert table["general"]["not_trained_on"] == metrics["train_dev"]["error"]
    assert table["target"]["not_trained_on"] == metrics["dev"]["error"]
    assert table["general"]["trained_on"] == metrics["train_general"]["error"]
    assert table["target"]["trained_on"] == metrics["train_target"]["error"]
    assert 300 < summary["sizes"]["train_target"] < 400 and summary["sizes"]["dev"] == 800  # some went to train-dev
    assert "By distribution" in result.stdout


@pytest.mark.slow  # W&B's service in real processes, several seconds
def test_check_command_passes_a_healthy_setup_and_fails_a_broken_one(tmp_path):
    import json

    from wandb_files import read_run

    result = run_dlrun("check", "data=digits", "logger=wandb", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "4 of 4 checks passed" in result.stdout
    [saved] = list(tmp_path.glob("outputs/*/*-check/check.json"))
    checks = json.loads(saved.read_text())["checks"]
    assert [c["name"] for c in checks] == [
        "initial loss",
        "overfit a small batch",
        "real vs shuffled labels",
        "batch GD decreases J",
    ]
    logged = read_run(saved.parent)
    assert logged["run"].job_type == "check" and logged["summary"]["check/passed"] is True
    # A learning rate far too small: the small batch cannot be overfitted; exit code 1.
    broken = run_dlrun("check", "data=digits", "optimizer.lr=1e-7", cwd=tmp_path)
    assert broken.returncode == 1 and "FAIL" in broken.stdout and "learning rate" in " ".join(broken.stdout.split())


WRONG_BACKWARD = '''
import torch
from dlrunner.models import build_mlp


class OffByTenPercent(torch.autograd.Function):
    """Identity forward; a backward 10% too large: the kind of bug gradient checking exists for."""

    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        return grad * 1.1


class Buggy(torch.nn.Module):
    def forward(self, x):
        return OffByTenPercent.apply(x)


def build_buggy_mlp(*, n_inputs, n_outputs, input_shape=None, **settings):
    model = build_mlp(**settings, n_inputs=n_inputs, n_outputs=n_outputs)
    model.insert(3, Buggy())  # after the first hidden layer's Linear and ReLU
    return model
'''


def test_gradcheck_passes_the_zoo_and_points_at_a_wrong_backward(tmp_path):
    import json
    import os

    ok = dlrun_in_process(
        "gradcheck", "regularization=l2", "regularization.l2=0.5", "model.keep_prob=0.8", cwd=tmp_path
    )
    assert ok.returncode == 0, ok.stderr
    text = " ".join(ok.stdout.split())
    assert "pass" in text and "dropout" in text  # dropout is switched off, with a note
    [saved] = list(tmp_path.glob("outputs/*/*-gradcheck/gradcheck.json"))
    assert json.loads(saved.read_text())["verdict"] == "pass"

    (tmp_path / "buggy_layer.py").write_text(WRONG_BACKWARD)
    env = {
        "PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
        "DLRUN_ALLOWED_TARGETS": "buggy_layer",
    }
    bad = dlrun_in_process(
        "gradcheck", "model._target_=buggy_layer.build_buggy_mlp", "--steps", "3", cwd=tmp_path, env=env
    )
    assert bad.returncode == 1, bad.stderr
    result = json.loads(sorted(tmp_path.glob("outputs/*/*-gradcheck/gradcheck.json"))[-1].read_text())
    assert result["verdict"] == "fail"
    failing = {t["name"] for t in result["tensors"] if t["verdict"] == "fail"}
    assert failing == {"1.weight", "1.bias"}  # the layer before the wrong backward, and only it


@pytest.mark.slow  # W&B's service in real processes, several seconds
def test_learning_curve_with_wandb_logs_each_fraction_and_the_curve(tmp_path):
    from wandb_files import read_run

    result = run_dlrun(
        "learning-curve",
        "trainer=quick",
        "trainer.steps=30",
        "logger=wandb",
        "--fractions",
        "0.5,1",
        "hydra.sweep.dir=lc",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    curve = read_run(tmp_path / "lc")
    assert curve["run"].job_type == "learning_curve"
    assert any(row.get("learning_curve/plot/_type") == "image-file" for row in curve["history"])
    assert any(k.startswith("learning_curve/reading") for k in curve["summary"])
    for job in ("0", "1"):  # and each fraction is a training run of its own
        assert read_run(tmp_path / "lc" / job)["run"].job_type == "train"


def test_compare_names_the_builder_where_runs_differ_in_it_not_its_keys():
    from dlrunner.diagnostics.compare import config_differences

    logreg = {"config": {"model": {"_target_": "dlrunner.models.build_logreg", "init": "zeros"}, "seed": 0}}
    mlp = {"config": {"model": {"_target_": "dlrunner.models.build_mlp", "init": "he", "layers": [100]}, "seed": 1}}
    assert config_differences([logreg, mlp]) == ["model._target_", "seed"]
    wider = {"config": {"model": {"_target_": "dlrunner.models.build_mlp", "init": "he", "layers": [200]}, "seed": 1}}
    assert config_differences([mlp, wider]) == ["model.layers"]
    # a key varied between runs of the same builder is shown although another builder lacks it
    assert config_differences([logreg, mlp, wider]) == ["model._target_", "model.layers", "seed"]
