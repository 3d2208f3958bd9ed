"""After training: dlrunner.load_run, `dlrun predict` and `dlrun evaluate` on real runs (issue 23, item 21)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from helpers import dlrun_in_process, read_summary

TINY = ("trainer=quick", "trainer.steps=60", "trainer.eval_every=30", "trainer.progress=none")


def read_rows(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def csv_run(tmp_path_factory) -> Path:
    """A run on a CSV file with named classes and features far from 0, so that a prediction without
    the stored normalisation would be wrong."""
    root = tmp_path_factory.mktemp("csv_run")
    rng = np.random.default_rng(0)
    names = ["setosa", "versicolor", "virginica"]
    rows = []
    for k, name in enumerate(names):
        for _ in range(60):
            rows.append([1000 + 50 * k + rng.normal(), 20 - 5 * k + rng.normal() * 0.3, name])
    with open(root / "flowers.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["a", "b", "species"])
        writer.writerows(rows)
    result = dlrun_in_process(
        "train",
        "data=csv",
        "data.source.path=flowers.csv",
        "data.source.label_column=species",
        "data.split={train: 0.6, dev: 0.2, test: 0.2, seed: 0}",
        "model=mlp",
        "model.layers=[16]",
        "optimizer.lr=0.01",
        *TINY,
        "hydra.run.dir=run",
        cwd=root,
    )
    assert result.returncode == 0, result.stderr
    return root / "run"


def test_load_run_predicts_raw_inputs_with_the_stored_normalisation(csv_run):
    import dlrunner

    run = dlrunner.load_run(csv_run)
    assert run.task == "multiclass" and run.n_classes == 3 and run.input_shape == (2,)
    assert run.mean is not None and run.mean[0] > 900  # the training set's raw mean, stored in the checkpoint
    raw = np.array([[1000.0, 20.0], [1050.0, 15.0], [1100.0, 10.0]], dtype=np.float32)
    result = run.predict(raw)
    assert result.predicted.tolist() == [0, 1, 2]
    assert result.probabilities.shape == (3, 3)
    np.testing.assert_allclose(result.probabilities.sum(axis=1), 1, rtol=1e-5)
    # the same raw numbers without normalisation would be far outside what the model saw
    assert run.model.training is False


def test_load_run_gives_class_names_when_the_run_has_them(csv_run):
    import dlrunner

    run = dlrunner.load_run(csv_run)
    if run.class_names is None:
        assert run.predict(np.array([[1000.0, 20.0]])).labels == ["0"]
    else:
        assert run.predict(np.array([[1000.0, 20.0]])).labels == ["setosa"]


def test_predict_writes_a_csv_of_classes_and_probabilities(csv_run, tmp_path):
    new = tmp_path / "new.csv"
    new.write_text("a,b\n1000,20\n1100,10\n")
    result = dlrun_in_process("predict", str(csv_run), str(new), "-o", "out.csv", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = read_rows(tmp_path / "out.csv")
    assert len(rows) == 2
    assert rows[0]["predicted"] in ("0", "setosa") and rows[1]["predicted"] in ("2", "virginica")
    probability_columns = [k for k in rows[0] if k.startswith("p_")]
    assert len(probability_columns) == 3
    assert abs(sum(float(rows[0][k]) for k in probability_columns) - 1) < 1e-4


def test_predict_leaves_out_the_label_column_of_the_training_file(csv_run, tmp_path):
    result = dlrun_in_process("predict", str(csv_run), str(csv_run.parent / "flowers.csv"), "-o", "p.csv", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert len(read_rows(tmp_path / "p.csv")) == 180


def test_predict_reads_npz_and_keeps_an_existing_output_unless_told(csv_run, tmp_path):
    np.savez(tmp_path / "x.npz", X=np.array([[1050.0, 15.0]]))
    result = dlrun_in_process("predict", str(csv_run), "x.npz", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    written = (tmp_path / "predictions.csv").read_bytes()
    assert len(read_rows(tmp_path / "predictions.csv")) == 1
    np.savez(tmp_path / "x.npz", X=np.array([[1050.0, 15.0], [900.0, 10.0]]))
    again = dlrun_in_process("predict", str(csv_run), "x.npz", cwd=tmp_path)
    assert again.returncode == 2 and "--output predictions.csv: the file exists" in again.stderr
    assert (tmp_path / "predictions.csv").read_bytes() == written  # the first predictions are kept
    replaced = dlrun_in_process("predict", str(csv_run), "x.npz", "--overwrite", cwd=tmp_path)
    assert replaced.returncode == 0 and len(read_rows(tmp_path / "predictions.csv")) == 2


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("nowhere", "x.csv"), "RUN"),
        (("{run}", "missing.csv"), "INPUT"),
        (("{run}", "wide.csv"), "2 values per example"),
        (("{run}", "short.csv"), "line 3 has 1 values where the header names 2 columns"),
        (("{run}", "words.csv"), "line 2, column 'b': 'x' is not a number"),
        (("{run}", "x.csv", "--checkpoint", "middle"), "--checkpoint"),
    ],
)
def test_predict_bad_input_is_one_message_and_exit_2(csv_run, tmp_path, args, says):
    (tmp_path / "x.csv").write_text("a,b\n1,2\n")
    (tmp_path / "wide.csv").write_text("a,b,c\n1,2,3\n")
    (tmp_path / "short.csv").write_text("a,b\n1,2\n3\n")
    (tmp_path / "words.csv").write_text("a,b\n1,x\n")
    result = dlrun_in_process("predict", *(a.format(run=csv_run) for a in args), cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert says in result.stderr and "Traceback" not in result.stderr


def test_evaluate_reports_the_test_set_once_and_records_it(csv_run, tmp_path):
    import shutil

    run = Path(shutil.copytree(csv_run, tmp_path / "run"))
    summary = read_summary(run)
    assert "test" not in summary["metrics"]  # training never looked at the test set
    first = dlrun_in_process("evaluate", str(run), cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "test" in first.stdout and "test - dev" in first.stdout
    records = json.loads((run / "evaluations.json").read_text())
    assert [r["split"] for r in records] == ["test"]
    assert records[0]["metrics"]["dev"]["error"] == pytest.approx(summary["best"]["dev_error"], abs=1e-9)
    assert records[0]["diagnosis"]["dev_overfitting"] is not None
    second = dlrun_in_process("evaluate", str(run), cwd=tmp_path)
    assert "evaluated 1 time(s) before" in second.stdout
    assert len(json.loads((run / "evaluations.json").read_text())) == 2


def test_a_folder_of_runs_names_one_of_its_runs(tmp_path):
    result = dlrun_in_process("train", *TINY, "data=moons", "trainer.repeats=2", "hydra.run.dir=rep", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    refused = dlrun_in_process("evaluate", "rep", cwd=tmp_path)
    assert refused.returncode == 2 and "seed-0" in refused.stderr


def test_evaluate_a_split_the_run_does_not_have_is_bad_input(tiny_run_folder, tmp_path):
    result = dlrun_in_process("evaluate", str(tiny_run_folder), "--split", "test", cwd=tmp_path)
    assert result.returncode == 2
    assert "--split" in result.stderr and "no examples" in result.stderr


@pytest.fixture(scope="module")
def tiny_run_folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("moons")
    result = dlrun_in_process(
        "train", "data=moons", "data.split={train: 0.8, dev: 0.2, test: 0}", *TINY, "hydra.run.dir=run", cwd=root
    )
    assert result.returncode == 0, result.stderr
    return root / "run"


def test_binary_predictions_have_one_probability_column(tiny_run_folder, tmp_path):
    (tmp_path / "pts.csv").write_text("x1,x2\n0,0.5\n1,-0.5\n")
    result = dlrun_in_process("predict", str(tiny_run_folder), "pts.csv", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    header = list(read_rows(tmp_path / "predictions.csv")[0])
    assert header == ["index", "predicted", "p_1"]


def test_importing_dlrunner_loads_no_torch():
    import subprocess
    import sys

    code = "import sys, dlrunner; assert callable(dlrunner.load_run); print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
