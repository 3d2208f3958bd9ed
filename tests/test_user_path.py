"""What a new user tripped over (issue 23): each test reproduces one item as the user met it.

Signals and pipes are real: `dlrun` subprocesses stopped with SIGINT, read through a pipe that is
closed after one line (those tests are in the slow tier). The rest run the real CLI in this process.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
from pathlib import Path

import pytest

from helpers import (
    dlrun_executable,
    dlrun_in_process,
    last_step,
    output,
    read_summary,
    run_dlrun,
    start_dlrun,
    wait_for,
)

QUICK = ("data=moons", "trainer=quick", "trainer.eval_every=20", "trainer.progress=plain")


# ------------------------------------------------------------------ 1. the interrupt hint


@pytest.mark.slow
def test_the_interrupt_hint_is_a_command_that_resumes_this_run_and_not_another(tmp_path):
    # A finished run of another experiment (same data and model, another seed) under outputs/
    finished = run_dlrun("train", *QUICK, "trainer.steps=40", "trainer.seed=7", cwd=tmp_path)
    assert finished.returncode == 0, finished.stderr
    [other] = list((tmp_path / "outputs").glob("*/*"))
    other_summary = read_summary(other)

    process = start_dlrun(
        "train", *QUICK, "trainer.steps=200000", "trainer.checkpoint_every=1", "hydra.run.dir=runs/int1", cwd=tmp_path
    )
    wait_for(lambda: last_step(tmp_path / "runs/int1") >= 60, "three evaluations", process)
    process.send_signal(signal.SIGINT)
    out, err = output(process)
    assert process.returncode == 130, err[-2000:]
    summary = read_summary(tmp_path / "runs/int1")
    assert summary["status"] == "interrupted" and summary["message"].startswith("SIGINT: interrupted at step")
    [hint] = [line for line in out.splitlines() if "resume with:" in line]
    command = shlex.split(hint.split("resume with:", 1)[1])
    assert (
        command[:2] == ["dlrun", "train"] and "hydra.run.dir=runs/int1" in command and "trainer.resume=true" in command
    )

    # Doing exactly what it says resumes this run, in its folder (trainer.steps lowered to finish soon)
    stopped = summary["timing"]["steps"]
    command = [c if not c.startswith("trainer.steps=") else f"trainer.steps={stopped + 40}" for c in command]
    resumed = subprocess.run(
        dlrun_executable() + command[1:], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    summary = read_summary(tmp_path / "runs/int1")
    assert summary["status"] == "completed" and summary["resumed_from"]["step"] == stopped
    assert read_summary(other) == other_summary  # the unrelated run is untouched

    # In a fresh folder, trainer.resume=true never picks the finished run of other settings: it says so
    alone = run_dlrun("train", *QUICK, "trainer.steps=80", "trainer.resume=true", cwd=tmp_path)
    assert alone.returncode == 2 and "no interrupted run" in alone.stderr and "Traceback" not in alone.stderr
    assert read_summary(other) == other_summary


def test_trainer_resume_true_prefers_an_interrupted_run_and_says_which_and_why(tmp_path):
    done = dlrun_in_process("train", *QUICK, "trainer.steps=40", "hydra.run.dir=outputs/a/done", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    cut = dlrun_in_process("train", *QUICK, "trainer.steps=40", "hydra.run.dir=outputs/b/cut", cwd=tmp_path)
    assert cut.returncode == 0, cut.stderr
    summary_path = tmp_path / "outputs/b/cut/summary.json"  # as an interrupted run leaves it
    summary = json.loads(summary_path.read_text())
    summary_path.write_text(json.dumps({**summary, "status": "interrupted"}))
    (tmp_path / "outputs/a/done/checkpoints/last.pt").touch()  # the finished run is the most recent

    again = dlrun_in_process("train", *QUICK, "trainer.steps=60", "trainer.resume=true", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    resumed = [line for line in again.stdout.splitlines() if line.startswith("Resuming from")]
    assert resumed and "outputs/b/cut" in resumed[0] and "the most recent interrupted run" in resumed[0]


def test_a_finished_run_with_the_same_config_can_be_trained_further_with_resume_true(tmp_path):
    done = dlrun_in_process("train", *QUICK, "trainer.steps=40", "hydra.run.dir=outputs/a/done", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    again = dlrun_in_process("train", *QUICK, "trainer.steps=60", "trainer.resume=true", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "with this config but for its length and learning rate" in again.stdout


# ------------------------------------------------------------------ 4. a closed pipe


@pytest.mark.slow
def test_a_reader_that_goes_away_does_not_fail_the_run(tmp_path):
    process = subprocess.Popen(
        [*dlrun_executable(), "train", *QUICK, "trainer.steps=400", "hydra.run.dir=run"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    first = process.stdout.readline()  # `| head -1`: one line, then the pipe is closed
    process.stdout.close()
    _, err = process.communicate(timeout=300)
    assert first.startswith("Run folder: run")
    assert process.returncode == 0, err[-2000:]
    assert "BrokenPipe" not in err and "Traceback" not in err
    assert read_summary(tmp_path / "run")["status"] == "completed"


def run_with_reader_gone(args: list[str], cwd) -> subprocess.CompletedProcess:
    """``dlrun ARGS | head -1`` whose reader has already left: every write to stdout meets a closed pipe."""
    read, write = os.pipe()
    os.close(read)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # stdout buffered, as in a shell
    try:
        return subprocess.run(
            [*dlrun_executable(), *args], cwd=cwd, env=env, stdout=write, stderr=subprocess.PIPE, text=True, timeout=300
        )
    finally:
        os.close(write)


@pytest.mark.slow
@pytest.mark.parametrize(
    "command",
    [["ls"], ["show"], ["summary", "model=mlp"], ["train", "--cfg", "job"]],
    ids=["ls", "show", "summary", "train-cfg"],
)
def test_a_reader_gone_before_the_first_line_does_not_fail_a_command(tmp_path, command):
    process = run_with_reader_gone(command, tmp_path)
    assert process.returncode == 0, process.stderr[-2000:]
    assert "BrokenPipe" not in process.stderr and "Traceback" not in process.stderr


def test_the_guarded_stdout_is_a_whole_text_stream(tmp_path, monkeypatch):
    import copy
    import io

    from dlrunner.console import ConsoleStream

    real = io.StringIO()
    guarded = ConsoleStream(real)
    guarded.copy_to(tmp_path / "console.log")
    guarded.writelines(["a\n", "b\n"])  # through write: into the log copy as well
    guarded.flush()
    guarded.stop_copy()
    assert real.getvalue() == "a\nb\n" == (tmp_path / "console.log").read_text()
    assert guarded.getvalue() == "a\nb\n"  # what it does not handle itself is the stream's
    assert copy.copy(guarded).stream is real
    monkeypatch.setattr("sys.stdout", None)  # a process started with its stdout closed
    closed = ConsoleStream()
    assert closed.reader_gone and not closed.isatty() and closed.write("x") == 1
    closed.flush()


@pytest.mark.slow
@pytest.mark.parametrize("command", [["ls"], ["train", *QUICK, "hydra.run.dir=run"]], ids=["ls", "train"])
def test_a_command_started_with_stdout_closed_does_not_fail(tmp_path, command):
    process = subprocess.run(
        [*dlrun_executable(), *command], cwd=tmp_path, stderr=subprocess.PIPE, text=True, preexec_fn=lambda: os.close(1)
    )
    assert process.returncode == 0, process.stderr[-2000:]


@pytest.mark.slow
@pytest.mark.parametrize("launcher", [[], ["hydra/launcher=joblib"]], ids=["basic", "joblib"])
def test_a_reader_gone_fails_no_trial_of_a_sweep(tmp_path, launcher):
    args = ["sweep", "sweep=lr", "hydra.sweeper.budget=2", "trainer.steps=20", "hydra.sweep.dir=s", *launcher]
    process = run_with_reader_gone(args, tmp_path)  # each trial prints its line into the closed pipe
    assert process.returncode == 0, process.stderr[-2000:]
    assert "BrokenPipe" not in process.stderr and "Logging error" not in process.stderr
    trials = [json.loads(line) for line in (tmp_path / "s" / "trials.jsonl").read_text().splitlines()]
    assert [t["status"] for t in trials] == ["completed", "completed"]
    assert (tmp_path / "s" / "best.yaml").is_file()


# ------------------------------------------------------------------ 5 and 11. output to a file


def test_output_to_a_file_is_not_wrapped_and_is_kept_in_the_run_folder(tmp_path):
    result = dlrun_in_process(
        "train", *QUICK, "trainer.steps=40", "hydra.run.dir=run", cwd=tmp_path, env={"COLUMNS": ""}
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "Run folder: run"  # said when the run starts, not only at the end
    advice = [line for line in lines if "High avoidable bias" in line or "High variance" in line]
    assert advice and advice[0].rstrip().endswith(".")  # the advice is one line, not cut at 80 columns
    log = (tmp_path / "run" / "console.log").read_text()
    assert "Verdict:" in log and "step 40/40" in log and "\x1b[" not in log


# ------------------------------------------------------------------ 2. a learning rate far too large


def test_check_names_a_learning_rate_far_too_large(tmp_path):
    result = dlrun_in_process("check", "optimizer.lr=10", cwd=tmp_path)
    assert result.returncode != 0 or "failed" in result.stdout
    [saved] = tmp_path.glob("outputs/*/*-check/check.json")
    checks = {c["name"]: c for c in json.loads(saved.read_text())["checks"]}
    gd = checks["batch GD decreases J"]
    assert gd["passed"] is False and "the learning rate 10 is too large" in gd["message"]
    overfit = checks["overfit a small batch"]
    assert overfit["passed"] is False and "the learning rate 10 is too large" in overfit["message"]
    assert "too small" not in overfit["message"]
    shuffled = checks["real vs shuffled labels"]
    assert "data-pipeline" not in shuffled["message"] and "learning rate 10 is too large" in shuffled["message"]


# ------------------------------------------------------------------ 3. Ctrl-C on a joblib sweep


@pytest.mark.slow
@pytest.mark.parametrize("to_group", [False, True], ids=["sweep-process", "process-group"])
def test_a_stopped_joblib_sweep_says_how_to_resume_and_every_running_trial_keeps_its_work(tmp_path, to_group):
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher", reason="the joblib launcher is an extra")
    logs = tmp_path / "sweep.out"
    sweep = [
        *("sweep", "sweep=lr", "data=moons", "trainer=quick", "trainer.steps=100000", "trainer.eval_every=50"),
        *("trainer.checkpoint_every=1", "hydra.sweeper.budget=4", "hydra.sweeper.rounds=1"),
        *("hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "hydra.sweep.dir=s"),
    ]
    with open(logs, "w") as out:
        process = subprocess.Popen(
            [*dlrun_executable(), *sweep], cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    trials = [tmp_path / "s" / "0", tmp_path / "s" / "1"]
    wait_for(lambda: all(last_step(t) >= 100 for t in trials), "both trials training", process)
    if to_group:  # a scheduler or `timeout`: every process of the group gets it
        os.killpg(process.pid, signal.SIGINT)
    else:  # `kill -INT`: only the sweep process
        process.send_signal(signal.SIGINT)
    process.wait(timeout=300)
    text = logs.read_text()
    assert process.returncode == 130, text[-3000:]
    resume = next(line for line in text.splitlines() if "Resume the sweep with: " in line).split("with: ")[1]
    assert resume.startswith("dlrun sweep ") and resume.endswith("hydra.sweep.dir=s")
    assert "hydra/launcher=joblib" in resume and "sweep=lr" in resume and "hydra.sweeper.budget=4" in resume
    for trial in trials:
        summary = read_summary(trial)
        assert summary["status"] == "interrupted" and "rerun the same command" in summary["message"]
        assert (trial / "checkpoints" / "last.pt").is_file()


# ------------------------------------------------------------------ 7. class names of a CSV


def _iris_like(path: Path) -> None:
    import random

    rng = random.Random(0)
    rows = ["length,width,species"]
    for i in range(150):
        species = ("setosa", "versicolor", "virginica")[i % 3]
        centre = {"setosa": 1.0, "versicolor": 3.0, "virginica": 5.0}[species]
        rows.append(f"{centre + rng.gauss(0, 0.9):.3f},{centre + rng.gauss(0, 0.9):.3f},{species}")
    path.write_text("\n".join(rows) + "\n")


NAMES = ["setosa", "versicolor", "virginica"]
CSV = ("data=csv", "data.source.path=iris.csv", "data.source.label_column=species", "trainer=quick")


def test_csv_class_names_are_kept_and_shown(tmp_path):
    import torch

    _iris_like(tmp_path / "iris.csv")
    names = NAMES
    result = dlrun_in_process("train", *CSV, "trainer.steps=40", "hydra.run.dir=run", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    run = tmp_path / "run"
    assert read_summary(run)["class_names"] == names
    assert json.loads((run / "analysis.json").read_text())["class_names"] == names
    best = torch.load(run / "checkpoints" / "best.pt", weights_only=True)
    assert best["class_names"] == names
    shown = dlrun_in_process("analyze", "run", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    matrix = shown.stdout.split("Confusion matrix", 1)[1].split("\n\n", 1)[0]
    assert all(name in matrix for name in names)


def test_stacked_trials_keep_the_class_names_too(tmp_path):
    _iris_like(tmp_path / "iris.csv")
    result = dlrun_in_process(
        "train",
        "-m",
        *CSV,
        "trainer.steps=20",
        "optimizer.lr=0.01,0.1",
        "hydra/launcher=stacked",
        "hydra.sweep.dir=m",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    for trial in ("0", "1"):
        assert read_summary(tmp_path / "m" / trial)["class_names"] == NAMES
        assert json.loads((tmp_path / "m" / trial / "analysis.json").read_text())["class_names"] == NAMES


# ------------------------------------------------------------------ 9. a typed group option wins


def test_a_group_option_typed_beside_an_experiment_wins_and_is_said(tmp_path):
    result = dlrun_in_process("show", "experiment=mnist1d_cnn", "trainer=quick", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    import yaml

    shown = yaml.safe_load(result.stdout)
    assert shown["trainer"]["steps"] == 300 and shown["model"]["blocks"]  # quick's steps, the experiment's CNN
    assert "trainer=quick typed: trainer.steps=300 wins over experiment=mnist1d_cnn's 6000" in result.stderr
    explicit = dlrun_in_process("show", "experiment=mnist1d_cnn", "trainer=quick", "trainer.steps=77", cwd=tmp_path)
    assert yaml.safe_load(explicit.stdout)["trainer"]["steps"] == 77 and "trainer.steps=300" not in explicit.stderr


# ------------------------------------------------------------------ 17. epochs mean epochs


def test_giving_epochs_alone_trains_that_many_epochs(tmp_path):
    result = dlrun_in_process("train", *QUICK, "trainer.epochs=2", "hydra.run.dir=run", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    timing = read_summary(tmp_path / "run")["timing"]
    assert timing["epochs"] == 2


# ------------------------------------------------------------------ 5. compare shows whole values


@pytest.mark.parametrize("columns", ["160", "60"])
def test_compare_shows_config_values_and_verdicts_whole(tmp_path, columns):
    long_layers = "[64,64,64,64,64,64,64,64]"
    for layers, folder in ((long_layers, "a"), ("[8]", "b")):
        done = dlrun_in_process(
            "train", *QUICK, "trainer.steps=20", f"model.layers={layers}", f"hydra.run.dir={folder}", cwd=tmp_path
        )
        assert done.returncode == 0, done.stderr
    verdicts = {read_summary(tmp_path / f)["diagnosis"]["verdict"] for f in "ab"}
    result = dlrun_in_process("compare", "a", "b", cwd=tmp_path, env={"COLUMNS": columns})
    assert result.returncode == 0, result.stderr
    assert "[64, 64, 64, 64, 64, 64, 64, 64]" in result.stdout  # not cut to 24 characters
    lines = result.stdout.splitlines()
    assert all(any(verdict in line for line in lines) for verdict in verdicts)  # each verdict on one line
    assert max(len(line.rstrip()) for line in lines) <= int(columns) or columns == "160"


# ------------------------------------------------------------------ 6 and 15. --config-path, show SECTION


def _primary_config(folder: Path) -> None:
    """A primary config of the user's own, as a sweep's best.yaml is: the schema plus every value."""
    from omegaconf import OmegaConf

    from dlrunner.cli import compose

    folder.mkdir(parents=True)
    values = OmegaConf.to_yaml(compose(["data=moons", "trainer=quick", "trainer.steps=7"]))
    (folder / "best.yaml").write_text("defaults:\n- /schema/config@_here_\n- _self_\n" + values)


def test_a_relative_config_path_works_for_train_and_show(tmp_path):
    _primary_config(tmp_path / "sweeps" / "lr1")
    trained = dlrun_in_process(
        "train", "--config-path", "sweeps/lr1", "--config-name", "best", "hydra.run.dir=run", cwd=tmp_path
    )
    assert trained.returncode == 0, trained.stderr
    assert read_summary(tmp_path / "run")["timing"]["steps"] == 7
    shown = dlrun_in_process("show", "--config-path=sweeps/lr1", "--config-name", "best", "trainer", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    import yaml

    assert yaml.safe_load(shown.stdout) == {"trainer": read_summary(tmp_path / "run")["config"]["trainer"]}


def test_show_prints_one_section(tmp_path):
    import yaml

    result = dlrun_in_process("show", "trainer", "trainer=quick", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (
        list(yaml.safe_load(result.stdout)) == ["trainer"] and yaml.safe_load(result.stdout)["trainer"]["steps"] == 300
    )
    wrong = dlrun_in_process("show", "trainr", cwd=tmp_path)
    assert wrong.returncode == 2 and "no such section" in wrong.stderr and "trainer" in wrong.stderr


# ------------------------------------------------------------------ 12. resumed in a new folder


def test_a_run_resumed_in_a_new_folder_is_marked_continued_there(tmp_path):
    first = dlrun_in_process("train", *QUICK, "trainer.steps=40", "hydra.run.dir=outputs/a/first", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    old = tmp_path / "outputs/a/first"
    # The summary a stopped run leaves (test_faults stops real processes; here only its status matters)
    (old / "summary.json").write_text(json.dumps({**read_summary(old), "status": "interrupted"}))
    again = dlrun_in_process(
        "train", *QUICK, "trainer.steps=60", "trainer.resume=true", "hydra.run.dir=outputs/b/second", cwd=tmp_path
    )
    assert again.returncode == 0, again.stderr
    new = tmp_path / "outputs/b/second"
    marked = read_summary(old)
    assert marked["status"] == "continued" and Path(marked["continued_in"]).resolve() == new.resolve()
    assert marked["metrics"] and (old / "checkpoints" / "last.pt").is_file()  # nothing of it is lost
    compared = dlrun_in_process("compare", "outputs", cwd=tmp_path)
    assert compared.returncode == 0, compared.stderr
    assert "continued in" in compared.stdout and "★ best: outputs/b/second" in compared.stdout.replace(
        str(tmp_path) + "/", ""
    )


# ------------------------------------------------------------------ 11. W&B offline said


def test_an_offline_wandb_run_says_so_and_how_to_upload_it(tmp_path):
    pytest.importorskip("wandb", reason="wandb is a test extra: pip install -e '.[test]'")
    result = run_dlrun("train", *QUICK, "trainer.steps=20", "logger=wandb", "hydra.run.dir=r", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    [said] = [line for line in lines if line.startswith("W&B offline run (nothing uploaded): ")]
    [how] = [line for line in lines if "upload it with: wandb sync " in line]  # said once, as the run closes
    folder = how.split("wandb sync ", 1)[1]
    assert Path(folder).is_dir() and Path(folder).name.startswith("offline-run-") and said.endswith(folder)
    assert said in (tmp_path / "r" / "console.log").read_text()


# ------------------------------------------------------------------ 18. hints that fit the user


def test_a_setting_typed_without_its_section_gets_the_section(tmp_path):
    result = dlrun_in_process("train", "lr=0.1", cwd=tmp_path)
    assert result.returncode == 2 and "did you mean optimizer.lr?" in result.stderr


def test_the_missing_extra_hint_fits_how_dlrunner_was_installed(tmp_path):
    from importlib import metadata

    origin = json.loads(metadata.distribution("dlrunner").read_text("direct_url.json") or "{}")
    editable = origin.get("dir_info", {}).get("editable", False)
    result = dlrun_in_process("train", "-m", "hydra/launcher=joblibb", cwd=tmp_path)
    assert result.returncode == 2
    if editable:  # a clone installed with pip install -e: reinstall from that folder, not from PyPI
        folder = origin["url"].removeprefix("file://")
        assert f"pip install -e '{folder}[joblib]'" in result.stderr and "'dlrunner[joblib]'" not in result.stderr
    else:
        assert "pip install 'dlrunner[joblib]'" in result.stderr


# ------------------------------------------------------------------ 19. names users know


def test_summary_calls_a_conv1d_a_conv1d(tmp_path):
    result = dlrun_in_process("summary", "experiment=mnist1d_cnn", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Conv1d" in result.stdout and "Matmul" not in result.stdout


def test_gradcheck_names_the_layer_of_each_tensor(tmp_path):
    result = dlrun_in_process("gradcheck", "data=moons", "--steps", "2", "--batch", "4", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    [saved] = tmp_path.glob("outputs/*/*-gradcheck/gradcheck.json")
    rows = {row["name"]: row for row in json.loads(saved.read_text())["tensors"]}
    assert rows["1.weight"]["layer"] == "layer 0 (Linear)" and rows["5.bias"]["layer"] == "layer 2 (Linear)"
    assert "layer 0 (Linear)" in result.stdout


@pytest.mark.parametrize("command", ["report", "analyze", "compare", "summary", "gradcheck", "check"])
def test_help_shows_no_template_placeholders(tmp_path, command):
    result = dlrun_in_process(command, "--help", cwd=tmp_path)
    assert result.returncode == 0
    assert "{" not in result.stdout and "<int range>" not in result.stdout, result.stdout


@pytest.mark.parametrize("command", ["train", "sweep", "show", "summary", "check", "gradcheck", "learning-curve"])
def test_the_usage_line_of_a_command_that_takes_overrides_says_so(tmp_path, command):
    result = dlrun_in_process(command, "--help", cwd=tmp_path)
    assert result.returncode == 0
    assert f"Usage: dlrun {command} [OPTIONS] [KEY=VALUE]..." in result.stdout, result.stdout


@pytest.mark.parametrize("columns", ["200", "70"])
def test_check_cuts_no_number_name_at_any_width(tmp_path, columns):
    result = dlrun_in_process("check", "data=moons", "--steps", "40", cwd=tmp_path, env={"COLUMNS": columns})
    assert result.returncode == 0, result.stderr
    assert "…" not in result.stdout and "steps_to_half_shuffled = " in result.stdout
    assert "4 of 4 checks passed" in result.stdout


def test_a_search_distribution_given_to_train_m_points_to_dlrun_sweep(tmp_path):
    result = dlrun_in_process("train", "-m", "optimizer.lr=tag(log, interval(1e-4, 1))", cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "search them with dlrun sweep" in result.stderr and "key=a,b,c" in result.stderr
