"""End-to-end: the real `dlrun` command in a subprocess, as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import REPO, dlrun_in_process, read_metrics, read_summary, run_dirs

QUICK = ("trainer=quick",)


@pytest.mark.slow  # measures a fresh process's imports
def test_help_answers_without_importing_torch_or_hydra():
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from dlrunner.cli import app\n"
        "for args in (['--help'], ['train', '--help'], ['ls']):\n"
        "    result = CliRunner().invoke(app, args)\n"
        "    assert result.exit_code == 0, result.output\n"
        "heavy = [m for m in ('torch', 'hydra', 'wandb') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_checking_a_config_and_its_search_ranges_imports_no_torch():
    # A parallel sweep's process checks its ranges while its workers import torch on the same cores:
    # importing torch there too (for the builders' signatures) held up the first trials by seconds.
    code = (
        "import sys\n"
        "from dlrunner.cli.base import compose\n"
        "from dlrunner.config.validate import validate\n"
        "from dlrunner.search.space import LogUniform\n"
        "from dlrunner.sweep.ends import end_problems\n"
        "config = compose(['model.layers=[8]'])\n"
        "validate(config)\n"
        "assert not end_problems(config, {'optimizer.lr': LogUniform(1e-4, 1.0)})\n"
        "assert end_problems(config, {'model.keep_prob': LogUniform(0.5, 1.5)})\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_help_lists_the_commands(tmp_path):
    result = dlrun_in_process("--help", cwd=tmp_path)
    assert result.returncode == 0
    for command in ("train", "show", "ls"):
        assert command in result.stdout
    train_help = dlrun_in_process("train", "--help", cwd=tmp_path).stdout
    assert "optimizer.lr" in train_help and "-m" in train_help


def test_ls_lists_groups_with_descriptions_and_defaults(tmp_path):
    result = dlrun_in_process("ls", cwd=tmp_path)
    assert result.returncode == 0
    for text in ("mnist1d *", "logreg", "momentum", "inverse_time", "early_stopping", "MNIST-1D"):
        assert text in result.stdout
    only_model = dlrun_in_process("ls", "model", cwd=tmp_path).stdout
    assert "mlp *" in only_model and "adam" not in only_model
    assert "a[l+2] = g(z[l+2] + a[l])" in " ".join(only_model.split())  # brackets shown, not taken for markup
    launchers = dlrun_in_process("ls", "hydra/launcher", cwd=tmp_path).stdout  # Hydra's groups for sweeps too
    assert "stacked" in launchers and "max_stack" in launchers and "basic *" in launchers and "mlp" not in launchers
    bad = dlrun_in_process("ls", "modle", cwd=tmp_path)
    assert bad.returncode == 2 and "no config group 'modle' (did you mean 'model'?)" in bad.stderr


def test_show_prints_the_resolved_config(tmp_path):
    result = dlrun_in_process("show", "model=logreg", "optimizer.lr=0.003", cwd=tmp_path)
    assert result.returncode == 0
    assert "dlrunner.models.build_logreg" in result.stdout and "lr: 0.003" in result.stdout
    assert run_dirs(tmp_path) == []


@pytest.mark.slow  # the default experiment: 6000 steps
def test_default_train_runs_end_to_end(tmp_path):
    result = dlrun_in_process("train", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    [run] = run_dirs(tmp_path / "outputs")
    summary = read_summary(run)
    assert summary["status"] == "completed" and summary["timing"]["steps"] == 6000
    assert summary["diagnosis"]["verdict"] == "high variance"  # the 2x100 MLP on MNIST-1D overfits
    for name in (
        "metrics.jsonl",
        "summary.json",
        "provenance.json",
        "checkpoints/best.pt",
        "checkpoints/last.pt",
        ".hydra/config.yaml",
    ):
        assert (run / name).is_file(), name
    assert len(read_metrics(run)) == 6000 // 250
    provenance = json.loads((run / "provenance.json").read_text())
    assert provenance["seed"] == 0 and "torch" in provenance["versions"]
    # Not a terminal: plain progress lines, then the verdict table.
    assert "step 250/6000" in result.stdout and "Verdict: high variance" in result.stdout
    assert not list(run.glob("**/.*.tmp"))  # no temp files left from atomic writes


def test_overrides_reach_the_run(tmp_path):
    result = dlrun_in_process(
        "train",
        *QUICK,
        "data=moons",
        "model.layers=[16,8]",
        "model.activation=tanh",
        "optimizer=momentum",
        "optimizer.lr=0.05",
        "+data.source.factor=1",
        cwd=tmp_path,
    )
    # +data.source.factor adds a key that make_moons does not take: a clear error, not a crash.
    assert result.returncode == 2 and "data.source.factor" in result.stderr
    result = dlrun_in_process(
        "train",
        *QUICK,
        "data=moons",
        "model.layers=[16,8]",
        "model.activation=tanh",
        "optimizer=momentum",
        "optimizer.lr=0.05",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    [run] = run_dirs(tmp_path / "outputs")
    summary = read_summary(run)
    assert summary["config"]["model"]["layers"] == [16, 8]
    assert summary["config"]["optimizer"]["_target_"] == "dlrunner.optim.build_momentum"
    assert summary["n_params"] == (2 * 16 + 16) + (16 * 8 + 8) + (8 + 1)


def test_cfg_job_prints_without_training(tmp_path):
    result = dlrun_in_process("train", "--cfg", "job", "optimizer=rmsprop", cwd=tmp_path)
    assert result.returncode == 0
    assert "build_rmsprop" in result.stdout
    assert run_dirs(tmp_path) == []


@pytest.mark.parametrize("launcher", ["basic", "stacked", "joblib"])
def test_multirun_runs_one_job_per_value_and_ends_with_their_table(tmp_path, launcher):
    chosen = [] if launcher == "basic" else [f"hydra/launcher={launcher}"]
    result = dlrun_in_process("train", "-m", *QUICK, "data=moons", "optimizer.lr=0.01,0.1", *chosen, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    runs = run_dirs(tmp_path / "multirun")
    assert len(runs) == 2
    assert sorted(read_summary(r)["config"]["optimizer"]["lr"] for r in runs) == [0.01, 0.1]
    # whichever launcher ran them (joblib: in other processes; stacked: not through dlrun's task)
    folder = runs[0].parent.relative_to(tmp_path)
    assert f"Multirun: 2 runs in {folder}" in result.stdout and f"Report: dlrun report {folder}" in result.stdout


def test_resume_continues_exactly_where_it_stopped(tmp_path):
    steps = ("data=moons", "trainer.eval_every=50", "trainer.checkpoint_every=1", "model.keep_prob=0.9")
    straight = dlrun_in_process("train", *QUICK, *steps, "trainer.steps=300", "hydra.run.dir=straight", cwd=tmp_path)
    first = dlrun_in_process("train", *QUICK, *steps, "trainer.steps=150", "hydra.run.dir=part", cwd=tmp_path)
    assert straight.returncode == 0 and first.returncode == 0, first.stderr
    # From a checkpoint path into a new folder...
    other = dlrun_in_process(
        "train",
        *QUICK,
        *steps,
        "trainer.steps=300",
        "trainer.resume=part/checkpoints/last.pt",
        "hydra.run.dir=other",
        cwd=tmp_path,
    )
    assert other.returncode == 0, other.stderr
    # ...and, separately, continuing the same folder.
    again = dlrun_in_process(
        "train", *QUICK, *steps, "trainer.steps=300", "trainer.resume=true", "hydra.run.dir=part", cwd=tmp_path
    )
    assert again.returncode == 0, again.stderr
    expected = read_metrics(tmp_path / "straight")
    assert read_metrics(tmp_path / "part") == expected  # bit for bit, steps 50..300
    assert [r["step"] for r in read_metrics(tmp_path / "other")] == [r["step"] for r in expected]
    assert read_metrics(tmp_path / "other")[-1] == expected[-1]


def test_show_checks_values_like_train(tmp_path):
    result = dlrun_in_process("show", "optimizer.lr=-1", cwd=tmp_path)
    assert result.returncode == 2 and "optimizer.lr=-1: a number > 0" in result.stderr
    assert "lr: -1.0" in result.stdout  # the config is still shown


def test_bad_input_leaves_no_empty_folders(tmp_path):
    result = dlrun_in_process("train", *QUICK, "optimizer.lr=-1", cwd=tmp_path)
    assert result.returncode == 2
    assert list(tmp_path.iterdir()) == []


def test_resume_errors_are_clear(tmp_path):
    ok = dlrun_in_process("train", *QUICK, "data=moons", "hydra.run.dir=r", cwd=tmp_path)
    assert ok.returncode == 0
    assert not (tmp_path / "r" / "train.log").exists()  # no empty log files
    best = dlrun_in_process(
        "train", *QUICK, "data=moons", "trainer.steps=600", "trainer.resume=r/checkpoints/best.pt", cwd=tmp_path
    )
    assert best.returncode == 2 and "only the best weights" in best.stderr
    done = dlrun_in_process("train", *QUICK, "data=moons", "trainer.resume=r", cwd=tmp_path)
    assert done.returncode == 2 and "already at step 300" in done.stderr
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes((tmp_path / "r" / "checkpoints" / "last.pt").read_bytes()[:500])
    broken = dlrun_in_process("train", *QUICK, "data=moons", f"trainer.resume={corrupt}", cwd=tmp_path)
    assert broken.returncode == 2 and "not a readable checkpoint" in broken.stderr
    more = dlrun_in_process(
        "train", *QUICK, "data=moons", "trainer.steps=400", "trainer.resume=r", "hydra.run.dir=r2", cwd=tmp_path
    )
    assert more.returncode == 0 and "Resuming from r/checkpoints/last.pt at step 300" in more.stdout
    assert read_summary(tmp_path / "r2")["resumed_from"] == {"checkpoint": "r/checkpoints/last.pt", "step": 300}


def test_bad_input_never_removes_an_earlier_result(tmp_path):
    ok = dlrun_in_process("train", *QUICK, "data=moons", "hydra.run.dir=kept", cwd=tmp_path)
    assert ok.returncode == 0
    bad = dlrun_in_process("train", *QUICK, "data=moons", "optimizer.lr=-1", "hydra.run.dir=kept", cwd=tmp_path)
    assert bad.returncode == 2
    assert read_summary(tmp_path / "kept")["status"] == "completed"


def test_users_config_dir_adds_and_overrides_options(tmp_path):
    mine = tmp_path / "mine"
    (mine / "model").mkdir(parents=True)
    (mine / "data").mkdir()
    (mine / "model" / "tiny.yaml").write_text(
        "# My tiny network\ndefaults:\n  - /schema/model/mlp@_here_\n  - _self_\n"
        "layers: [3]\nactivation: tanh\ninit: xavier\n"
    )
    builtin_moons = (REPO / "conf" / "data" / "moons.yaml").read_text()
    (mine / "data" / "moons.yaml").write_text(builtin_moons.replace("n_samples: 1000", "n_samples: 250"))
    listing = dlrun_in_process("--config-dir", str(mine), "ls", "model", cwd=tmp_path)
    assert "tiny (yours)" in listing.stdout and "My tiny network" in listing.stdout
    result = dlrun_in_process("train", "--config-dir", str(mine), *QUICK, "model=tiny", "data=moons", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    [run] = run_dirs(tmp_path / "outputs")
    summary = read_summary(run)
    assert summary["config"]["model"]["layers"] == [3]
    assert sum(summary["sizes"].values()) == 250  # the user's moons.yaml replaced the built-in one
    via_env = dlrun_in_process("show", "data=moons", cwd=tmp_path, env={"DLRUN_CONFIG_DIR": str(mine)})
    assert "n_samples: 250" in via_env.stdout


@pytest.mark.parametrize("where", ["override", "config-dir", "-cd=DIR"])
def test_a_config_that_sets_hydra_mode_still_chooses_multirun(tmp_path, where):
    """dlrun skips Hydra's mode probe (a whole extra compose) only where no config can set hydra.mode:
    a mode set on the command line or in the user's own config still turns a train into a multirun."""
    if where == "override":
        args = ("hydra.mode=MULTIRUN", "optimizer.lr=0.01,0.1")
    else:
        mine = tmp_path / "mine" / "experiment"
        mine.mkdir(parents=True)
        (mine / "two_lrs.yaml").write_text(
            "# @package _global_\nhydra:\n  mode: MULTIRUN\n  sweeper:\n    params:\n      optimizer.lr: 0.01,0.1\n"
        )
        args = (
            ("--config-dir", str(tmp_path / "mine"), "experiment=two_lrs")
            if where == "config-dir"
            else (f"-cd={tmp_path / 'mine'}", "experiment=two_lrs")
        )
    result = dlrun_in_process("train", *args, *QUICK, "data=moons", "trainer.progress=none", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    runs = run_dirs(tmp_path / "multirun")
    assert sorted(read_summary(r)["config"]["optimizer"]["lr"] for r in runs) == [0.01, 0.1]
    assert not (tmp_path / "outputs").exists()


@pytest.mark.slow  # builds and installs a wheel into a new virtual environment
def test_installed_wheel_works_from_any_directory(tmp_path):
    """Build the wheel, install it into a fresh virtual environment, run dlrun from elsewhere.

    The new environment sees the wheel and, through a .pth file, the packages of the interpreter that
    runs the tests (the system's or a contributor's venv), but not their .pth files: the editable
    checkout of dlrunner stays out of it."""
    wheel_dir = tmp_path / "wheel"
    build = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheel_dir)]
    subprocess.run([*build, str(REPO)], check=True)
    [wheel] = wheel_dir.glob("dlrunner-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    purelib = subprocess.run(
        [venv / "bin" / "python", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    ours = [p for p in sys.path if p.endswith(("site-packages", "dist-packages")) and Path(p).is_dir()]
    (Path(purelib) / "test_dependencies.pth").write_text("\n".join(ours) + "\n")
    subprocess.run([venv / "bin" / "python", "-m", "pip", "install", "-q", "--no-deps", str(wheel)], check=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    check = subprocess.run(
        [venv / "bin" / "python", "-c", "import dlrunner, sys; print(dlrunner.__file__)"],
        cwd=elsewhere,
        capture_output=True,
        text=True,
        check=True,
    )
    assert str(venv) in check.stdout  # the wheel, not the editable checkout
    result = subprocess.run(
        [venv / "bin" / "dlrun", "train", "trainer=quick", "data=moons", "trainer.progress=none"],
        cwd=elsewhere,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert len(run_dirs(elsewhere / "outputs")) == 1
    listing = subprocess.run([venv / "bin" / "dlrun", "ls", "data"], cwd=elsewhere, capture_output=True, text=True)
    assert "mnist1d" in listing.stdout and "site-packages" in listing.stdout


def test_a_crash_mid_run_leaves_a_failed_summary(tmp_path):
    # A schedule of the user's that raises in epoch 3: a real exception inside training.
    (tmp_path / "my_schedules.py").write_text(
        "def explode_at_epoch_3():\n"
        "    def factor(epoch, step, total_steps):\n"
        "        if epoch >= 3:\n"
        "            raise RuntimeError('schedule exploded')\n"
        "        return 1.0\n"
        "    return factor\n"
    )
    result = dlrun_in_process(
        "train",
        *QUICK,
        "data=moons",
        "optimizer.batch_size=full",
        "trainer.eval_every=1",
        "schedule._target_=my_schedules.explode_at_epoch_3",
        "hydra.run.dir=crashed",
        cwd=tmp_path,
        env={
            "PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
            "DLRUN_ALLOWED_TARGETS": "my_schedules",
        },
    )
    assert result.returncode == 1
    assert "schedule exploded" in result.stderr and "Traceback" not in result.stderr
    summary = read_summary(tmp_path / "crashed")
    assert summary["status"] == "failed" and "schedule exploded" in summary["message"]
    assert [r["step"] for r in read_metrics(tmp_path / "crashed")] == [1, 2]  # what it reached is kept


@pytest.mark.slow  # signals a real process
def test_ctrl_c_saves_a_checkpoint_and_resumes(tmp_path):
    import signal
    import time

    from helpers import dlrun_executable

    args = [
        "train",
        "data=moons",
        "trainer=quick",
        "trainer.steps=400000",
        "trainer.eval_every=100",
        "trainer.checkpoint_every=1000",
        "hydra.run.dir=long",
    ]
    process = subprocess.Popen(
        dlrun_executable() + args, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    metrics = tmp_path / "long" / "metrics.jsonl"
    deadline = time.time() + 60
    while time.time() < deadline and not (metrics.exists() and metrics.read_text().count("\n") >= 2):
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    _out, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    summary = read_summary(tmp_path / "long")
    assert summary["status"] == "interrupted"
    state_step = summary["timing"]["steps"]
    assert 200 <= state_step < 400000
    resumed = dlrun_in_process(
        "train",
        "data=moons",
        "trainer=quick",
        f"trainer.steps={state_step + 100}",
        "trainer.eval_every=100",
        "trainer.resume=true",
        "hydra.run.dir=long",
        cwd=tmp_path,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert read_summary(tmp_path / "long")["status"] == "completed"
    assert read_metrics(tmp_path / "long")[-1]["step"] == state_step + 100


def test_resume_refuses_a_checkpoint_of_another_model_and_finds_the_matching_run(tmp_path):
    first = dlrun_in_process("train", *QUICK, "data=moons", "model.layers=[8]", "trainer.steps=100", cwd=tmp_path)
    second = dlrun_in_process("train", *QUICK, "data=moons", "model=logreg", "trainer.steps=100", cwd=tmp_path)
    assert first.returncode == 0 and second.returncode == 0
    mlp_run = next(r for r in run_dirs(tmp_path / "outputs") if read_summary(r)["config"]["model"].get("layers") == [8])
    wrong = dlrun_in_process(
        "train", *QUICK, "data=moons", "model.layers=[16]", f"trainer.resume={mlp_run}", cwd=tmp_path
    )
    assert wrong.returncode == 2 and "model config differs" in wrong.stderr
    # trainer.resume=true picks the latest run with the same data and model (not the newer logreg
    # run), and may change the learning rate.
    again = dlrun_in_process(
        "train",
        *QUICK,
        "data=moons",
        "model.layers=[8]",
        "trainer.steps=200",
        "optimizer.lr=0.001",
        "trainer.resume=true",
        cwd=tmp_path,
    )
    assert again.returncode == 0, again.stderr
    newest = max(run_dirs(tmp_path / "outputs"), key=lambda r: r.name)
    records = read_metrics(newest)
    assert records[0]["step"] == 100 and records[0]["lr"] == 0.01  # history carried over
    assert records[-1]["step"] == 200 and records[-1]["lr"] == 0.001


@pytest.mark.slow  # the whole process's exit
def test_dlrun_exits_without_teardown_after_running_exit_handlers_and_flushing(tmp_path):
    """main() ends a process that loaded torch with os._exit (internals.exit_without_teardown): exit
    handlers must still run, buffered output reach its file, and the exit code stay the command's."""
    script = (
        "import atexit, sys\n"
        "atexit.register(lambda: open('handler-ran', 'w').write('yes'))\n"
        "sys.argv = ['dlrun', 'train', 'trainer.steps=5', 'trainer.progress=none', 'hydra.run.dir=run']\n"
        "from dlrunner.cli import main\n"
        "main()\n"
        "print('not reached')\n"
    )
    with open(tmp_path / "out.txt", "w") as out:
        done = subprocess.run(
            [sys.executable, "-c", script], cwd=tmp_path, stdout=out, stderr=subprocess.PIPE, text=True, timeout=300
        )
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "handler-ran").read_text() == "yes"
    printed = (tmp_path / "out.txt").read_text()
    assert "Run folder:" in printed and "not reached" not in printed  # block-buffered stdout, flushed before the exit
    assert read_summary(tmp_path / "run")["status"] == "completed"
    bad = subprocess.run(
        [sys.executable, "-c", script.replace("trainer.steps=5", "trainer.steps=-5").replace("dir=run", "dir=bad")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert bad.returncode == 2 and "trainer.steps" in bad.stderr and "Traceback" not in bad.stderr


@pytest.mark.slow  # the whole process's exit
def test_dlrun_waits_for_a_running_thread_instead_of_exiting_without_teardown(tmp_path):
    script = (
        "import threading, time, sys\n"
        "import torch\n"
        "from dlrunner.internals import exit_without_teardown\n"
        "threading.Thread(target=lambda: (time.sleep(0.5), open('thread-done', 'w').close())).start()\n"
        "exit_without_teardown(3)\n"
        "sys.exit(4)  # the normal exit, which waits for the thread\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 4 and (tmp_path / "thread-done").is_file()


@pytest.mark.slow  # the whole process's exit
def test_a_script_that_calls_main_gets_its_system_exit_back(tmp_path):
    script = (
        "import sys\n"
        "sys.argv = ['wrapper.py', 'train', 'trainer.steps=5', 'trainer.progress=none', 'hydra.run.dir=run']\n"
        "from dlrunner.cli import main\n"
        "try:\n"
        "    main()\n"
        "except SystemExit as done:\n"
        "    print('caught', done.code)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "caught 0" in done.stdout, done.stderr[-2000:]


def test_a_run_folder_that_holds_a_run_is_not_trained_over(tmp_path):
    """dlrun train hydra.run.dir=FOLDER where a run already is: refused before Hydra writes there
    (its .hydra/ files included), so the first run is whole; trainer.resume=true continues it."""
    short = ("trainer.steps=20", "trainer.eval_every=20", "hydra.run.dir=mine")
    assert dlrun_in_process("train", *short, cwd=tmp_path).returncode == 0
    before = {p: p.read_bytes() for p in (tmp_path / "mine").rglob("*") if p.is_file()}
    again = dlrun_in_process("train", *short, "optimizer.lr=0.5", cwd=tmp_path)
    assert again.returncode == 2 and "Traceback" not in again.stderr
    assert "hydra.run.dir=mine: holds a run already (status: completed)" in again.stderr
    assert "trainer.resume=true" in again.stderr
    assert {p: p.read_bytes() for p in (tmp_path / "mine").rglob("*") if p.is_file()} == before
    longer = dlrun_in_process("train", "trainer.steps=40", *short[1:], "trainer.resume=true", cwd=tmp_path)
    assert longer.returncode == 0, longer.stderr
    assert read_summary(tmp_path / "mine")["resumed_from"]["step"] == 20
