"""Every command once, end to end through the real CLI at tiny size, in this process (the fast tier).

The slow tier runs the same commands as real subprocesses, with signals, exit codes and start-up
(test_cli.py, test_faults.py, ...); these tests keep each command's whole path checked in the
everyday run.
"""

from __future__ import annotations

import html
import json
import shutil
from pathlib import Path

import pytest

from helpers import dlrun_in_process, read_summary, sweep_ledger

TINY = ("data=moons", "trainer=quick", "trainer.steps=60", "trainer.eval_every=30", "trainer.progress=none")


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """One tiny finished run, trained once; tests that write into a run folder take a copy."""
    root = tmp_path_factory.mktemp("tiny")
    result = dlrun_in_process("train", *TINY, "hydra.run.dir=run", cwd=root)
    assert result.returncode == 0, result.stderr
    return root / "run"


@pytest.fixture
def run_copy(tiny_run, tmp_path) -> Path:
    return Path(shutil.copytree(tiny_run, tmp_path / "run"))


def test_train_writes_a_run_and_prints_the_verdict(tiny_run):
    summary = read_summary(tiny_run)
    assert summary["status"] == "completed" and summary["timing"]["steps"] == 60
    assert {"train", "dev"} <= set(summary["metrics"])
    assert (tiny_run / "checkpoints" / "last.pt").is_file() and (tiny_run / "metrics.jsonl").is_file()


def test_train_output_has_the_verdict(tmp_path):
    result = dlrun_in_process("train", *TINY, "trainer.steps=30", "hydra.run.dir=r", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Verdict:" in result.stdout and "avoidable bias" in result.stdout


def test_bad_input_is_one_message_and_exit_2(tmp_path):
    result = dlrun_in_process("train", *TINY, "optimizer.lr=-1", "hydra.run.dir=bad", cwd=tmp_path)
    assert result.returncode == 2 and "optimizer.lr" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "bad").exists()


def test_sweep_runs_its_trials_and_names_the_best(tmp_path):
    result = dlrun_in_process(
        "sweep",
        "sweep=lr",
        *TINY,
        "hydra.sweeper.budget=2",
        "hydra.sweeper.rounds=1",
        "hydra.sweep.dir=s",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    records = sweep_ledger(tmp_path / "s")
    assert sorted(r["number"] for r in records) == [0, 1]
    assert all(r["status"] == "completed" for r in records)
    assert (tmp_path / "s" / "best.yaml").is_file() and "Best: trial" in result.stdout


def test_report_writes_a_page_and_its_figures(run_copy, tmp_path):
    result = dlrun_in_process("report", str(run_copy), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    page = run_copy / "report.html"
    assert page.is_file() and "<img" in page.read_text()
    assert list((run_copy / "report").glob("*.png"))


def test_show_prints_the_resolved_config(tmp_path):
    result = dlrun_in_process("show", "model=logreg", "optimizer.lr=0.003", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "lr: 0.003" in result.stdout and "dlrunner.models.build_logreg" in result.stdout


def test_ls_lists_a_group(tmp_path):
    result = dlrun_in_process("ls", "model", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "mlp" in result.stdout and "logreg" in result.stdout


def test_summary_prints_the_layers(tmp_path):
    result = dlrun_in_process("summary", "model=mlp", "--input-shape", "2", "--outputs", "2", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Linear" in result.stdout and "parameters" in result.stdout.lower()


def test_gradcheck_passes_on_the_default_mlp(tmp_path):
    result = dlrun_in_process("gradcheck", "data=moons", "--steps", "2", "--batch", "4", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    [saved] = tmp_path.glob("outputs/*/*-gradcheck/gradcheck.json")
    assert json.loads(saved.read_text())["verdict"] == "pass"


def test_check_runs_the_sanity_checks(tmp_path):
    result = dlrun_in_process("check", "data=moons", "--steps", "40", "--batch", "8", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 of 4 checks passed" in result.stdout


def test_learning_curve_trains_on_fractions_and_its_report_shows_the_curve(tmp_path):
    result = dlrun_in_process("learning-curve", *TINY, "--fractions", "0.5,1", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (
        "Reading:" in result.stdout and len(list(tmp_path.glob("multirun/*/*-learning-curve/learning_curve.png"))) == 1
    )
    [folder] = tmp_path.glob("multirun/*/*-learning-curve")
    assert dlrun_in_process("report", str(folder), cwd=tmp_path).returncode == 0
    page = (folder / "report.html").read_text()
    reading = json.loads((folder / "learning_curve.json").read_text())["reading"]
    assert "<h2>Learning curve</h2>" in page and (folder / "report" / "learning_curve.png").is_file()
    assert html.escape(reading["advice"][0]) in page


def test_analyze_writes_a_sheet(run_copy, tmp_path):
    result = dlrun_in_process("analyze", str(run_copy), "--limit", "5", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (run_copy / "error_analysis" / "sheet.csv").is_file()


def test_compare_tabulates_runs(tiny_run, tmp_path):
    other = dlrun_in_process("train", *TINY, "optimizer.lr=0.05", "hydra.run.dir=other", cwd=tmp_path)
    assert other.returncode == 0, other.stderr
    out = tmp_path / "comparison.json"
    result = dlrun_in_process("compare", str(tiny_run), str(tmp_path / "other"), "--json", str(out), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    comparison = json.loads(out.read_text())
    assert len(comparison["runs"]) == 2 and comparison["differing"] == ["optimizer.lr"]


def test_compare_says_when_runs_measure_their_errors_on_different_dev_sets(tiny_run, tmp_path):
    same = dlrun_in_process("compare", str(tiny_run), str(tiny_run), cwd=tmp_path)
    assert same.returncode == 0 and "different dev sets" not in same.stdout
    other = Path(shutil.copytree(tiny_run, tmp_path / "other-data"))
    summary = json.loads((other / "summary.json").read_text())
    summary["config"]["data"]["source"]["_target_"] = "dlrunner.data.sources.spiral"
    (other / "summary.json").write_text(json.dumps(summary))
    result = dlrun_in_process("compare", str(tiny_run), str(other), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "note: the runs differ in data.source._target_: their errors are measured on different dev sets" in " ".join(
        result.stdout.split()
    )


def test_compare_lists_a_sweeps_trials_in_number_order_with_short_numbers(tiny_run, tmp_path):
    for number, lr in ((2, 0.0002483570014489514), (10, 0.05)):  # a sweep's folders 2 and 10
        trial = Path(shutil.copytree(tiny_run, tmp_path / "sweep" / str(number)))
        summary = json.loads((trial / "summary.json").read_text())
        summary["config"]["optimizer"]["lr"] = lr
        (trial / "summary.json").write_text(json.dumps(summary))
    out = tmp_path / "comparison.json"
    result = dlrun_in_process("compare", str(tmp_path / "sweep"), "--json", str(out), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert [Path(r["run"]).name for r in json.loads(out.read_text())["runs"]] == ["2", "10"]  # not "10", "2"
    assert "0.0002484" in result.stdout and "0.000248357" not in result.stdout  # as the sweep's table shows it


def test_compare_never_picks_a_pruned_or_interrupted_run_and_marks_it(tiny_run, tmp_path):
    """A pruned trial's numbers are its rung's, an interrupted run's its last evaluation's: shown, marked,
    never the best."""
    import shutil

    pruned = tmp_path / "pruned"
    shutil.copytree(tiny_run, pruned)
    summary = json.loads((pruned / "summary.json").read_text())
    summary["status"], summary["metrics"]["dev"]["error"] = "pruned", 0.0  # better than any real run
    (pruned / "summary.json").write_text(json.dumps(summary))
    out = tmp_path / "comparison.json"
    result = dlrun_in_process("compare", str(tiny_run), str(pruned), "--json", str(out), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    comparison = json.loads(out.read_text())
    assert comparison["best"] == str(tiny_run) and "pruned (pruned)" in result.stdout
    summary["status"] = "interrupted"  # stopped part-way too: marked, never best
    (pruned / "summary.json").write_text(json.dumps(summary))
    again = dlrun_in_process("compare", str(tiny_run), str(pruned), cwd=tmp_path)
    assert again.returncode == 0 and "pruned (interrupted)" in again.stdout and f"best: {tiny_run}" in again.stdout
    alone = dlrun_in_process("compare", str(pruned), cwd=tmp_path)
    assert alone.returncode == 0 and "No run finished its training: none is best" in alone.stdout


def test_evaluate_scores_the_test_set_of_a_finished_run(run_copy, tmp_path):
    result = dlrun_in_process("evaluate", str(run_copy), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    record = json.loads((run_copy / "evaluations.json").read_text())[0]
    assert record["split"] == "test" and 0 <= record["metrics"]["test"]["error"] <= 1


def test_predict_writes_a_row_per_input(tiny_run, tmp_path):
    (tmp_path / "points.csv").write_text("x1,x2\n0,0.5\n1,-0.5\n-1,0.2\n")
    result = dlrun_in_process("predict", str(tiny_run), "points.csv", "-o", "out.csv", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert len((tmp_path / "out.csv").read_text().splitlines()) == 4  # the header and a row per input
