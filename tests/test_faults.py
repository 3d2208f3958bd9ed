"""Crashes and kills, for real: `dlrun` subprocesses stopped with SIGKILL, SIGINT and SIGTERM at
random (seeded, bounded) points, then resumed and compared with an uninterrupted run; a truncated
checkpoint; a sweep whose trials diverge or run out of memory; a sweep killed and rerun.
"""

from __future__ import annotations

import json
import random
import signal
import time
from pathlib import Path

import pytest

from helpers import last_step, output, read_metrics, read_summary, run_dlrun, start_dlrun, sweep_ledger, wait_for

pytestmark = pytest.mark.slow  # kills and signals real processes

# MNIST-1D, the default MLP: ~3 s of training on 2 cores, a checkpoint at every evaluation.
TRAIN = ("trainer.steps=4000", "trainer.eval_every=100", "trainer.checkpoint_every=1", "trainer.progress=none")
INTERVAL = 100  # steps between checkpoints: eval_every x checkpoint_every


def checkpoint_step(path: Path) -> int:
    import torch

    return torch.load(path, map_location="cpu", weights_only=False)["step"]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> Path:
    """The reference: the same run, never stopped."""
    root = tmp_path_factory.mktemp("reference")
    result = run_dlrun("train", *TRAIN, "hydra.run.dir=run", cwd=root)
    assert result.returncode == 0, result.stderr
    return root / "run"


def assert_same_result(run_dir: Path, reference: Path) -> None:
    """Resuming repeats the uninterrupted run exactly: model, optimizer, RNG and shuffle state are all saved."""
    assert read_metrics(run_dir) == read_metrics(reference)  # every evaluation, bit for bit
    ours, theirs = read_summary(run_dir), read_summary(reference)
    assert ours["status"] == "completed"
    assert ours["metrics"] == theirs["metrics"]
    assert ours["diagnosis"]["verdict"] == theirs["diagnosis"]["verdict"]
    assert ours["timing"]["steps"] == theirs["timing"]["steps"]


def test_sigkill_at_random_points_then_resume_matches_an_uninterrupted_run(tmp_path, uninterrupted):
    rng = random.Random(9)
    run_dir = tmp_path / "run"
    resumed_steps = []
    for kill in range(3):
        args = ["train", *TRAIN, "hydra.run.dir=run"] + (["trainer.resume=true"] if kill else [])
        process = start_dlrun(*args, cwd=tmp_path)
        before = last_step(run_dir)
        # Wait for training to make progress past where it (re)started, then kill at a random moment:
        # mid-step, mid-evaluation or mid-checkpoint, wherever it falls.
        wait_for(lambda before=before: last_step(run_dir) > before, "training progressed", process)
        time.sleep(rng.uniform(0, 0.8))
        process.kill()
        process.wait(timeout=60)
        assert process.returncode == -signal.SIGKILL
        assert not (run_dir / "summary.json").exists()  # killed: no result pretends to be one
        # The checkpoints are whole (written to a temp file, flushed, renamed) ...
        saved = checkpoint_step(run_dir / "checkpoints" / "last.pt")
        checkpoint_step(run_dir / "checkpoints" / "best.pt")
        # ... and at most one checkpoint interval behind the last evaluation the run reached.
        reached = last_step(run_dir)
        assert reached - INTERVAL <= saved <= reached
        resumed_steps.append(saved)
    assert resumed_steps == sorted(resumed_steps) and resumed_steps[-1] < 4000

    final = run_dlrun("train", *TRAIN, "trainer.resume=true", "hydra.run.dir=run", cwd=tmp_path)
    assert final.returncode == 0, final.stderr
    assert f"at step {resumed_steps[-1]}" in final.stdout
    assert read_summary(run_dir)["resumed_from"]["step"] == resumed_steps[-1]
    assert_same_result(run_dir, uninterrupted)
    assert not list((run_dir / "checkpoints").glob("*.tmp"))  # leftovers of killed writes are cleared


def test_a_truncated_checkpoint_is_detected_not_loaded(tmp_path):
    first = run_dlrun("train", "data=moons", "trainer=quick", "trainer.steps=100", "hydra.run.dir=run", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    last = tmp_path / "run" / "checkpoints" / "last.pt"
    whole = last.read_bytes()
    for size in (0, 100, len(whole) // 2, len(whole) - 1):
        last.write_bytes(whole[:size])
        again = run_dlrun(
            "train",
            "data=moons",
            "trainer=quick",
            "trainer.steps=200",
            "trainer.resume=true",
            "hydra.run.dir=run",
            cwd=tmp_path,
        )
        assert again.returncode == 2, (size, again.stderr)
        assert "trainer.resume=" in again.stderr and "last.pt" in again.stderr
        assert "not a readable checkpoint" in again.stderr and "Traceback" not in again.stderr
        assert read_summary(tmp_path / "run")["timing"]["steps"] == 100  # the earlier result is untouched


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_sigint_and_sigterm_checkpoint_finish_wandb_and_resume(tmp_path, uninterrupted, signum, code):
    pytest.importorskip("wandb", reason="wandb is a test extra: pip install -e '.[test]'")
    from wandb_files import payloads

    run_dir = tmp_path / "run"
    process = start_dlrun("train", *TRAIN, "logger=wandb", "logger.mode=offline", "hydra.run.dir=run", cwd=tmp_path)
    wait_for(lambda: last_step(run_dir) >= 300, "three evaluations", process)
    time.sleep(random.Random(signum).uniform(0, 0.3))
    process.send_signal(signum)
    _out, err = output(process)
    assert process.returncode == code, err[-3000:]
    summary = read_summary(run_dir)
    name = signal.Signals(signum).name
    assert summary["status"] == "interrupted" and summary["signal"] == name
    assert summary["message"].startswith(f"{name}: interrupted at step")
    stopped = summary["timing"]["steps"]
    # The checkpoint holds the very step it stopped at: nothing is lost.
    assert checkpoint_step(run_dir / "checkpoints" / "last.pt") == stopped
    assert 300 <= stopped < 4000
    # W&B was finished: its offline run holds the summary and an exit record.
    from wandb.proto import wandb_internal_pb2 as pb

    [wandb_file] = run_dir.glob("wandb/offline-run-*/run-*.wandb")
    records = [pb.Record.FromString(p) for p in payloads(wandb_file)]
    kinds = [r.WhichOneof("record_type") for r in records]
    assert "exit" in kinds, kinds
    logged_status = [
        json.loads(i.value_json)
        for r in records
        if r.WhichOneof("record_type") == "summary"
        for i in r.summary.update
        if i.key == "status"
    ]
    assert logged_status[-1] == "interrupted"

    resumed = run_dlrun("train", *TRAIN, "trainer.resume=true", "hydra.run.dir=run", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert read_summary(run_dir)["resumed_from"]["step"] == stopped
    assert_same_result(run_dir, uninterrupted)


def test_divergence_and_out_of_memory_are_recorded_and_the_sweep_goes_on(tmp_path):
    # A grid of 4 trials: a normal one, one whose loss explodes (SGD, lr 1e8), and two whose hidden
    # layer of 2^40 units cannot be allocated (a real out-of-memory error from torch's allocator).
    huge = 2**40
    result = run_dlrun(
        "sweep",
        "data=moons",
        "trainer=quick",
        "trainer.steps=60",
        "trainer.eval_every=20",
        "optimizer=sgd",
        f"model.layers=[8],[{huge}]",
        "optimizer.lr=0.1,100000000",
        "hydra.sweeper.method=grid",
        "hydra.sweeper.budget=4",
        "hydra.sweeper.rounds=1",
        "hydra.sweeper.max_failure_rate=0.75",
        "hydra.sweep.dir=s",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    records = sweep_ledger(tmp_path / "s")
    assert sorted(r["number"] for r in records) == [0, 1, 2, 3]
    by_params = {(r["params"]["model.layers"], r["params"]["optimizer.lr"]): r for r in records}
    normal, diverged = by_params[("[8]", 0.1)], by_params[("[8]", 1e8)]
    assert normal["status"] == "completed" and normal["eligible"]
    assert diverged["status"] == "diverged" and not diverged["eligible"] and "the loss became" in diverged["message"]
    for lr in (0.1, 1e8):
        oom = by_params[(f"[{huge}]", lr)]
        assert oom["status"] == "failed" and not oom["eligible"]
        assert oom["message"].startswith("out of memory") and "can't allocate memory" in oom["message"]
    for record in records:  # each trial's own folder says the same as the ledger
        summary = read_summary(Path(record["run_dir"]))
        assert (summary["status"], summary["message"]) == (record["status"], record["message"])
    assert f"Best: trial {normal['number']}" in result.stdout


SWEEP = (
    "sweep",
    "sweep=lr",
    "data=moons",
    "trainer=quick",
    "trainer.steps=800",
    "trainer.eval_every=100",
    "trainer.checkpoint_every=1",
    "hydra.sweeper.budget=6",
    "hydra.sweeper.rounds=2",
)


def unfinished_trials(sweep_dir: Path) -> dict:
    """Trial folders without a summary.json, with the last step each has reached."""
    return {int(d.name): last_step(d) for d in sweep_dir.glob("[0-9]*") if not (d / "summary.json").exists()}


def test_a_sweep_killed_at_random_points_and_rerun_matches_an_uninterrupted_sweep(tmp_path):
    straight = run_dlrun(*SWEEP, "hydra.sweep.dir=straight", cwd=tmp_path, timeout=600)
    assert straight.returncode == 0, straight.stderr[-3000:]
    rng = random.Random(3)
    sweep_dir = tmp_path / "killed"
    killed = {}  # trial number -> the step of its last checkpoint when the sweep was killed
    for kill in range(2):
        before = unfinished_trials(sweep_dir)
        process = start_dlrun(*SWEEP, "hydra.sweep.dir=killed", cwd=tmp_path)

        def trial_progressed(before=before):
            return any(step > before.get(n, 0) for n, step in unfinished_trials(sweep_dir).items())

        # Kill the sweep while a trial trains (the first time after 2 trials are done): once a
        # trial passed where it was, after a random delay.
        if kill == 0:
            wait_for(lambda: len(sweep_ledger(sweep_dir)) >= 2, "two trials", process, timeout=300)
        wait_for(trial_progressed, "a trial training", process, timeout=300)
        time.sleep(rng.uniform(0, 0.5))
        process.kill()
        process.wait(timeout=60)
        for number in unfinished_trials(sweep_dir):
            last = sweep_dir / str(number) / "checkpoints" / "last.pt"
            if last.exists():
                killed[number] = checkpoint_step(last)
    finished = {r["number"]: (Path(r["run_dir"]) / "summary.json").stat().st_mtime_ns for r in sweep_ledger(sweep_dir)}
    rerun = run_dlrun(*SWEEP, "hydra.sweep.dir=killed", cwd=tmp_path, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "Resuming the sweep" in rerun.stdout or not finished

    records = sweep_ledger(sweep_dir)
    numbers = [r["number"] for r in records]
    assert sorted(numbers) == list(range(6))  # each trial once: none run twice, none reused, none lost
    for number, mtime in finished.items():  # a trial finished before the kill did not run again
        assert (sweep_dir / str(number) / "summary.json").stat().st_mtime_ns == mtime
    assert all(r["status"] == "completed" for r in records)
    # A trial killed mid-training continued from its checkpoint rather than starting again ...
    assert killed
    for number, step in killed.items():
        assert read_summary(sweep_dir / str(number))["resumed_from"]["step"] == step
    # ... and the whole sweep came out as if it had never been stopped.
    expected = {r["number"]: (r["params"], r["objective"]) for r in sweep_ledger(tmp_path / "straight")}
    assert {r["number"]: (r["params"], r["objective"]) for r in records} == expected


def test_a_sigterm_between_two_trials_ends_the_sweep_with_the_command_that_resumes_it(tmp_path):
    # Trials of a few steps: the sweep process spends most of its time between them, while the
    # launcher composes the next one, where no trial's handler runs (it used to die there, silently).
    args = (
        "sweep",
        "sweep=lr",
        "data=moons",
        "trainer=quick",
        "trainer.steps=10",
        "hydra.sweeper.method=random",
        "hydra.sweeper.budget=12",
        "hydra.sweep.dir=s",
    )
    process = start_dlrun(*args, cwd=tmp_path)
    wait_for(lambda: len(sweep_ledger(tmp_path / "s")) >= 2, "two trials", process)
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=60)
    out, err = output(process)
    assert process.returncode == 143, err[-2000:]
    assert "Interrupted. Resume the sweep with: dlrun sweep " in out and "Traceback" not in err
    stopped = sweep_ledger(tmp_path / "s")
    assert 2 <= len(stopped) < 12
    rerun = run_dlrun(*args, cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert sorted(r["number"] for r in sweep_ledger(tmp_path / "s")) == list(range(12))


def test_a_sigterm_as_the_sweep_folder_appears_ends_the_sweep_with_the_command_that_resumes_it(tmp_path):
    # The sweep writes its settings (sweep.json) and prepares its first round before any trial runs;
    # a SIGTERM there used to end it silently, leaving a folder behind.
    args = ("sweep", "sweep=lr", "data=moons", "trainer=quick", "hydra.sweeper.budget=4", "hydra.sweep.dir=s")
    process = start_dlrun(*args, cwd=tmp_path)
    deadline = time.monotonic() + 120
    while not (tmp_path / "s" / "sweep.json").exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=60)
    out, err = output(process)
    assert process.returncode == 143, err[-2000:]
    assert "Interrupted. Resume the sweep with: dlrun sweep " in out and "Traceback" not in err
    assert not list((tmp_path / "s").glob("*/summary.json"))  # it came before any trial had finished
    rerun = run_dlrun(*args, cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert sorted(r["number"] for r in sweep_ledger(tmp_path / "s")) == list(range(4))


def test_a_signal_that_comes_while_a_trial_writes_its_result_stops_the_sweep_after_that_trial():
    import os

    from dlrunner.train.signals import STOP
    from dlrunner.workers import SweepStop

    with SweepStop():
        stop = STOP.install()  # a trial trains in the sweep's process
        stop.finish(False)  # ... and writes its result: a signal now does not stop it
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.05)
        with pytest.raises(SystemExit) as stopped:
            stop.restore()  # the trial is done: the sweep gets the signal
        assert stopped.value.code == 143
    # a run of its own (dlrun train) ends as it would have: the signal came too late to stop it
    stop = STOP.install()
    stop.finish(False)
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(0.05)
    stop.restore()
