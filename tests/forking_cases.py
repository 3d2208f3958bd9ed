"""The cases of tests/test_stack_processes.py that train a split stack in the test's own process.

A stack splits only where no other thread runs (a fork copies the forking thread alone), and the
threads that earlier tests leave in a pytest process (joblib's worker pool, W&B's telemetry) stay
to its end: so ``test_stack_processes.py`` runs this file in a fresh pytest process of its own.
Its name keeps pytest from collecting it with the others."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from dlrunner.stack import processes
from dlrunner.stack import train as train_module
from dlrunner.stack.processes import process_shares
from dlrunner.stack.train import train_stacked
from dlrunner.train.run import train
from helpers import compose, read_metrics, read_summary
from test_stack import QUIET, assert_same_curve

LRS = [0.001 * 1.6**k for k in range(8)]
ONE_CORE = ("model=mlp", "trainer.progress=none")  # a solo MNIST-1D run's own choice: one thread
TWO_CORES = (*ONE_CORE, "trainer.threads=2")  # a stack of 8 on two: two processes of one thread each


@pytest.fixture(autouse=True)
def only_this_thread():
    deadline = time.monotonic() + 10  # a timer an earlier case started ends by itself
    while threading.active_count() > 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    others = [thread.name for thread in threading.enumerate() if thread is not threading.main_thread()]
    assert not others, f"threads running in this process, where a stack would not split: {others}"


def children() -> set[str]:
    """This process's child processes, as Linux lists them."""
    return set(Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children").read_text().split())


def test_eight_trials_on_two_cores_train_as_two_stacks_in_two_processes_each_trial_as_its_solo_run(tmp_path):
    common = ("trainer.steps=60", "trainer.eval_every=20")
    cfgs = [compose(*TWO_CORES, *common, f"optimizer.lr={lr}") for lr in LRS]
    finished, before = [], children()
    summaries = train_stacked(
        cfgs,
        [tmp_path / f"stacked{k}" for k in range(8)],
        QUIET,
        on_finish=lambda k, summary: finished.append((k, summary["status"], os.getpid())),
    )
    # every trial's result handed back here, once; two stacks of four (every other trial in each)
    assert sorted(finished) == [(k, "completed", os.getpid()) for k in range(8)]
    assert [s["timing"]["stacked_with"] for s in summaries] == [4] * 8
    assert children() == before  # the other process has ended
    for k in (0, 1):  # a trial of each process: its solo run's numbers, bit for bit
        # (on one thread: on two, a solo run's evaluation sums its losses in two parts, ~1e-9 apart)
        solo = train(compose(*ONE_CORE, *common, f"optimizer.lr={LRS[k]}"), tmp_path / f"solo{k}", QUIET)
        assert summaries[k]["metrics"] == solo["metrics"] == read_summary(tmp_path / f"stacked{k}")["metrics"]
        assert_same_curve(read_metrics(tmp_path / f"stacked{k}"), read_metrics(tmp_path / f"solo{k}"))
        assert (tmp_path / f"stacked{k}" / "checkpoints" / "last.pt").is_file()


@pytest.mark.timeout(120)
def test_more_threads_than_processes_still_train_each_process_on_one_thread(tmp_path):
    """trainer.threads=4 with 8 rows: two processes of 4 (ROWS_EACH). A fork that ran OpenMP on 2
    threads after its parent had would hang (GNU OpenMP's pool does not survive a fork): each
    process trains on one."""
    cfgs = [compose(*ONE_CORE, "trainer.threads=4", "trainer.steps=40", f"optimizer.lr={lr}") for lr in LRS]
    summaries = train_stacked(cfgs, [tmp_path / f"t{k}" for k in range(8)], QUIET)
    assert [s["status"] for s in summaries] == ["completed"] * 8
    assert [s["timing"]["stacked_with"] for s in summaries] == [4] * 8
    assert torch.get_num_threads() == 1


def test_a_stop_signal_to_this_process_alone_stops_the_other_process_too_and_every_trial_resumes(tmp_path):
    """Trial 0 (this process's share) stops early and then sends SIGTERM to this process only: the
    other process gets it passed on, and both stacks stop at their next step with a last.pt for each
    trial. Each trial resumed alone ends with the curve of a run that never stopped."""
    common = ("trainer.steps=400", "trainer.eval_every=20")
    stops_early = ("optimizer.lr=1000", "regularization.early_stopping=true", "regularization.patience=1")
    cfgs = [compose(*TWO_CORES, *common, *stops_early)]
    cfgs += [compose(*TWO_CORES, *common, f"optimizer.lr={lr}") for lr in LRS[1:]]
    before = children()
    summaries = train_stacked(
        cfgs,
        [tmp_path / f"t{k}" for k in range(8)],
        QUIET,
        on_finish=lambda k, summary: k == 0 and os.kill(os.getpid(), signal.SIGTERM),
    )
    assert summaries[0]["status"] == "completed" and summaries[0]["stopped_early"]
    assert children() == before
    for k in range(1, 8):  # both processes' trials (odd ones trained in the other): stopped, not lost
        assert summaries[k]["status"] == "interrupted" and summaries[k]["signal"] == "SIGTERM", k
        stopped = torch.load(tmp_path / f"t{k}" / "checkpoints" / "last.pt", weights_only=True)
        assert 0 < stopped["step"] < 400
    for k in (1, 2):
        lr = f"optimizer.lr={LRS[k]}"
        resumed = train(compose(*ONE_CORE, *common, lr, f"trainer.resume={tmp_path / f't{k}'}"), tmp_path / "r", QUIET)
        straight = train(compose(*ONE_CORE, *common, lr), tmp_path / f"straight{k}", QUIET)
        assert resumed["status"] == "completed" and resumed["metrics"] == straight["metrics"]
        assert read_metrics(tmp_path / "r") == read_metrics(tmp_path / f"straight{k}")


def fork_and(then):
    """os.fork that does ``then(pid)`` to each process it forks, in the parent, at once."""
    fork = os.fork

    def forked():
        pid = fork()
        if pid > 0:
            then(pid)
        return pid

    return forked


def test_a_process_killed_leaves_its_trials_interrupted_for_the_rerun_and_the_others_keep_their_results(
    tmp_path, monkeypatch
):
    """The other process killed (SIGKILL, as the OOM killer does) while it trains: this process's
    trials finish and are handed on; the other's are interrupted, without a summary.json, as a sweep
    killed whole leaves them (the rerun sweep goes on from their checkpoints), not failed."""
    monkeypatch.setattr(processes.os, "fork", fork_and(lambda pid: os.kill(pid, signal.SIGKILL)))
    cfgs = [compose(*TWO_CORES, "trainer.steps=40", "trainer.eval_every=20", f"optimizer.lr={lr}") for lr in LRS]
    finished, before = [], children()
    summaries = train_stacked(
        cfgs, [tmp_path / f"t{k}" for k in range(8)], QUIET, on_finish=lambda k, summary: finished.append(k)
    )
    assert sorted(finished) == [0, 2, 4, 6] and children() == before
    for k in range(8):
        if k % 2:
            assert summaries[k]["status"] == "interrupted" and summaries[k]["signal"] == "SIGKILL", k
            assert "killed (SIGKILL)" in summaries[k]["message"]
            assert not (tmp_path / f"t{k}" / "summary.json").exists()
        else:
            assert summaries[k]["status"] == "completed"


@pytest.mark.timeout(120)
def test_a_third_signal_kills_a_process_that_does_not_stop(tmp_path, monkeypatch):
    """The other process stopped (SIGSTOP: it hangs); three SIGTERMs to this one: this process's stack
    stops at its next step, and the other process is killed rather than waited for forever."""
    monkeypatch.setattr(processes.os, "fork", fork_and(lambda pid: os.kill(pid, signal.SIGSTOP)))
    common = ("trainer.steps=400", "trainer.eval_every=20")
    stops_early = ("optimizer.lr=1000", "regularization.early_stopping=true", "regularization.patience=1")
    cfgs = [compose(*TWO_CORES, *common, *stops_early)]
    cfgs += [compose(*TWO_CORES, *common, f"optimizer.lr={lr}") for lr in LRS[1:]]

    def three_times(k, summary):
        if k == 0:
            for _ in range(3):
                os.kill(os.getpid(), signal.SIGTERM)

    summaries = train_stacked(cfgs, [tmp_path / f"t{k}" for k in range(8)], QUIET, on_finish=three_times)
    assert [summaries[k]["signal"] for k in (1, 3, 5, 7)] == ["SIGKILL"] * 4
    assert [summaries[k]["signal"] for k in (2, 4, 6)] == ["SIGTERM"] * 3


def test_a_requeue_signal_after_this_process_finished_its_share_still_requeues(tmp_path):
    """On SLURM, submitit requeues on SIGUSR2. It comes once this process's trials are done and the
    other's still train: they stop at their next step, and submitit's handler still gets the signal
    (a stand-in here), so that the requeued job goes on from their checkpoints."""
    requeued = []
    previous = signal.signal(signal.SIGUSR2, lambda signum, frame: requeued.append(signum))
    try:
        common = ("trainer.steps=400", "trainer.eval_every=20")
        stops_early = ("optimizer.lr=1000", "regularization.early_stopping=true", "regularization.patience=1")
        # this process's share (trials 0, 2, 4, 6) and trial 1 of the other stop early; 3, 5, 7 train on
        early = (0, 1, 2, 4, 6)
        lrs = [stops_early if k in early else (f"optimizer.lr={LRS[k]}",) for k in range(8)]
        cfgs = [compose(*TWO_CORES, *common, *lr) for lr in lrs]

        def requeue_at_trial_1(k, summary):
            if k == 1:
                os.kill(os.getpid(), signal.SIGUSR2)

        summaries = train_stacked(cfgs, [tmp_path / f"t{k}" for k in range(8)], QUIET, on_finish=requeue_at_trial_1)
    finally:
        signal.signal(signal.SIGUSR2, previous)
    assert requeued == [signal.SIGUSR2]
    assert [summaries[k]["status"] for k in (3, 5, 7)] == ["interrupted"] * 3
    assert [summaries[k]["signal"] for k in (3, 5, 7)] == ["SIGUSR2"] * 3
    for k in (3, 5, 7):
        assert (tmp_path / f"t{k}" / "checkpoints" / "last.pt").is_file()


def test_without_prctl_the_other_process_still_trains_its_share(tmp_path, monkeypatch):
    monkeypatch.setattr(processes, "stop_with_parent", lambda signum: False)
    cfgs = [compose(*TWO_CORES, "trainer.steps=40", "trainer.eval_every=20", f"optimizer.lr={lr}") for lr in LRS]
    summaries = train_stacked(cfgs, [tmp_path / f"t{k}" for k in range(8)], QUIET)
    assert [s["status"] for s in summaries] == ["completed"] * 8
    assert [s["timing"]["stacked_with"] for s in summaries] == [4] * 8


def test_a_share_whose_fork_fails_trains_in_this_process_after_the_first(tmp_path, monkeypatch):
    def no_more_processes():
        raise OSError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(processes.os, "fork", no_more_processes)
    cfgs = [compose(*TWO_CORES, "trainer.steps=40", "trainer.eval_every=20", f"optimizer.lr={lr}") for lr in LRS]
    finished = []
    summaries = train_stacked(
        cfgs, [tmp_path / f"t{k}" for k in range(8)], QUIET, on_finish=lambda k, summary: finished.append(k)
    )
    assert finished == [0, 2, 4, 6, 1, 3, 5, 7]  # the two stacks of four, one after the other
    assert [s["status"] for s in summaries] == ["completed"] * 8
    assert [s["timing"]["stacked_with"] for s in summaries] == [4] * 8


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"threads": 1}, "one core: one stack"),
        ({"rows": 7}, "fewer than 4 rows for each process"),
        ({"device": torch.device("meta")}, "not the CPU"),
        ({"resume": "one stack"}, "trials of a stack that stopped in one process go on in one"),
        ({"backend": "wandb"}, "a W&B logger"),
        ({"thread": True}, "another thread runs: a fork would copy its locks, held"),
    ],
)
def test_a_stack_stays_in_one_process_where_a_fork_would_not_pay_or_not_be_safe(change, why):
    def trial(k, change):
        resume = stopped_at(300, seed=0) if change.get("resume") and k >= 3 else None
        cfg = SimpleNamespace(logger=SimpleNamespace(backend=change.get("backend", "none")))
        return SimpleNamespace(number=k, resume=resume, cfg=cfg)

    plain = [trial(k, {}) for k in range(8)]
    assert [[t.number for t in share] for share in process_shares(plain, torch.device("cpu"), 2, 8)] == [
        [0, 2, 4, 6],
        [1, 3, 5, 7],
    ]
    trials = [trial(k, change) for k in range(8)]
    device, threads, rows = change.get("device", torch.device("cpu")), change.get("threads", 2), change.get("rows", 8)
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    if change.get("thread"):
        other.start()
    try:
        assert process_shares(trials, device, threads, rows) is None, why
    finally:
        stop.set()


def stopped_at(position: int, seed: int) -> dict:
    """What resumed_runs reads of a stopped stack's checkpoint: its place in the epoch and the random
    state of the process it trained in."""
    return {
        "position": position,
        "order": torch.arange(10),
        "rng_state": {"torch": torch.manual_seed(seed).get_state()},
    }


def test_trials_resume_as_the_stacks_they_stopped_in_each_in_a_process_of_its_own():
    """Resumed trials go on as the stacks they stopped in: by place in the epoch and process (random
    state); the trials that had not started are dealt out among them. One stack goes on in one
    process; with more stacks than threads, a process trains several, one after another."""
    cfg = SimpleNamespace(logger=SimpleNamespace(backend="none"))
    places = {1: (300, 1), 3: (300, 1), 5: (300, 1), 7: (300, 1), 2: (200, 0), 4: (200, 0), 6: (200, 0)}
    trials = [
        SimpleNamespace(number=k, resume=stopped_at(*places[k]) if k in places else None, cfg=cfg) for k in range(9)
    ]

    def numbers(shares):
        return None if shares is None else [[t.number for t in share] for share in shares]

    cpu = torch.device("cpu")
    assert numbers(processes.resumed_runs(trials)) == [[1, 3, 5, 7], [2, 4, 6]]
    assert numbers(process_shares(trials, cpu, 2, 9)) == [[1, 3, 5, 7, 0], [2, 4, 6, 8]]
    assert numbers(process_shares(trials[1:8], cpu, 2, 7)) == [[1, 3, 5, 7], [2, 4, 6]]  # fewer than 4 rows each
    assert process_shares(trials, cpu, 1, 9) is None  # one thread: one after the other, here
    assert numbers(processes.runs_in_turn(trials)) == [[1, 3, 5, 7, 0, 8], [2, 4, 6]]
    # the same place, another process: its own dropout draws, so a stack of its own
    trials[6].resume = stopped_at(300, 1)
    trials[2].resume = stopped_at(300, 2)
    assert numbers(processes.resumed_runs(trials)) == [[1, 3, 5, 6, 7], [2], [4]]
    # three stacks on two threads: one process takes two of them, one after the other
    assert numbers(process_shares(trials, cpu, 2, 9)) == [[1, 3, 5, 6, 7, 4, 0], [2, 8]]
    assert numbers(processes.runs_in_turn([trials[k] for k in (1, 3, 5, 6, 7, 4, 0)])) == [[1, 3, 5, 6, 7, 0], [4]]
    assert numbers(process_shares(trials, cpu, 3, 9)) == [[1, 3, 5, 6, 7, 0], [2, 8], [4]]
    assert numbers(processes.runs_in_turn(trials[1:8])) == [[1, 3, 5, 6, 7], [2], [4]]


def test_a_split_stack_stopped_by_a_signal_goes_on_split_each_trial_to_its_uninterrupted_curve(tmp_path, monkeypatch):
    """A stack of 8 with dropout trains as two processes; trial 0 stops early and sends SIGTERM, which
    stops both stacks at their next step. Run again, trials 1-7 go on as the two stacks they were
    (each process's trials with its own random state, for its dropout masks), again in two
    processes, and each ends with the curve of a stack that never stopped, bit for bit. Where a
    stack stays in one process, the two go on one after another there, with the same curves."""
    common = ("trainer.steps=300", "trainer.eval_every=20", "model.keep_prob=0.8")
    stops_early = ("optimizer.lr=1000", "regularization.early_stopping=true", "regularization.patience=1")
    lrs = [stops_early] + [(f"optimizer.lr={lr}",) for lr in LRS[1:]]
    straight = train_stacked(
        [compose(*TWO_CORES, *common, *lr) for lr in lrs], [tmp_path / f"s{k}" for k in range(8)], QUIET
    )
    assert [s["timing"]["stacked_with"] for s in straight] == [4] * 8

    shares = []  # each split's shares, by the trials' folder names
    split = train_module.train_shares
    monkeypatch.setattr(
        train_module,
        "train_shares",
        lambda s, *rest: shares.append([[int(t.run_dir.name) for t in x] for x in s]) or split(s, *rest),
    )
    cfgs = [compose(*TWO_CORES, *common, *lr) for lr in lrs]
    for name in ("split", "in turn"):
        folders = [tmp_path / name / str(k) for k in range(8)]

        def stop_when_trial_0_finishes(k, summary):
            if k == 0:
                os.kill(os.getpid(), signal.SIGTERM)

        stopped = train_stacked(cfgs, folders, QUIET, on_finish=stop_when_trial_0_finishes)
        assert [s["status"] for s in stopped[1:]] == ["interrupted"] * 7
        steps = {torch.load(f / "checkpoints" / "last.pt", weights_only=True)["step"] for f in folders[1:]}
        assert max(steps) < 300, steps  # each process at a step of its own, or at one by chance

        shares.clear()
        if name == "in turn":  # where a stack stays in one process (one thread, a GPU, a W&B logger)
            monkeypatch.setattr(train_module, "process_shares", lambda *args: None)
        resumed = train_stacked(cfgs[1:], folders[1:], QUIET)
        assert [s["status"] for s in resumed] == ["completed"] * 7, name
        assert shares == ([[[1, 3, 5, 7], [2, 4, 6]]] if name == "split" else []), name
        for k in range(1, 8):
            assert resumed[k - 1]["resumed_from"] is not None, (name, k, resumed[k - 1])
            assert read_metrics(folders[k]) == read_metrics(tmp_path / f"s{k}"), (name, k)


def test_more_stopped_stacks_than_threads_go_on_several_to_a_process_one_after_another(tmp_path, monkeypatch):
    """Three stopped stacks on two threads (here: the two of a stopped split stack, the first cut in
    two, which without dropout changes no number): one process trains two of them, one after the
    other, the other process the third; every trial ends with the curve of a stack that never stopped."""
    common = ("trainer.steps=300", "trainer.eval_every=20")
    stops_early = ("optimizer.lr=1000", "regularization.early_stopping=true", "regularization.patience=1")
    cfgs = [compose(*TWO_CORES, *common, *lr) for lr in [stops_early] + [(f"optimizer.lr={lr}",) for lr in LRS[1:]]]
    train_stacked(cfgs, [tmp_path / f"s{k}" for k in range(8)], QUIET)

    def stop_when_trial_0_finishes(k, summary):
        if k == 0:
            os.kill(os.getpid(), signal.SIGTERM)

    folders = [tmp_path / str(k) for k in range(8)]
    train_stacked(cfgs, folders, QUIET, on_finish=stop_when_trial_0_finishes)
    two_runs = processes.resumed_runs

    def three_runs(trials):
        first, *others = two_runs(trials)
        return [first[:2], first[2:], *others] if len(first) > 2 else [first, *others]

    monkeypatch.setattr(processes, "resumed_runs", three_runs)
    shares = []
    split = train_module.train_shares
    monkeypatch.setattr(
        train_module,
        "train_shares",
        lambda s, *rest: shares.append([[int(t.run_dir.name) for t in x] for x in s]) or split(s, *rest),
    )
    resumed = train_stacked(cfgs[1:], folders[1:], QUIET)
    assert shares == [[[1, 3, 2, 4, 6], [5, 7]]]  # runs [1, 3], [5, 7] and [2, 4, 6]: the first and third together
    assert [s["status"] for s in resumed] == ["completed"] * 7
    for k in range(1, 8):
        assert read_metrics(folders[k]) == read_metrics(tmp_path / f"s{k}"), k
