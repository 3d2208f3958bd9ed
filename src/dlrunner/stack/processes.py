"""A stack on several CPU cores as one smaller stack per core, each in its own process.

One stack on two threads keeps both cores busy only inside its matrix products: autograd, the
optimizer's per-trial kernels and the Python between them run on one thread while the other waits,
and every product makes the threads meet. Beside another busy process (or on a host that lends its
cores out unevenly) each meeting waits for the slower core, and the stack slows down several times.
Split into one stack per core, each on one thread, nothing waits: measured with the K = 16 MLP
stack of ``scripts/bench_stack.py`` on 2 cores, two processes of 8 trained 1.1-1.3x the trial-steps
per second of one stack of 16 on two threads, and 3-4x beside one busy process (BENCHMARKS.md).

The other processes are forks of this one, taken once the data and every trial's model are built,
so they start at once and share those (copy-on-write). Each trains its share of the trials into
their own folders and sends each summary back through a pipe as the trial finishes; this process
trains the first share meanwhile and hands every trial's summary to ``on_finish`` here. A stop
signal this process gets is passed on to the others (``train.signals.StopSignals.forward_to``),
and they stop at a safe point as it does. The arithmetic of each trial is its solo run's either way.

Only where a fork is safe and pays: on Linux (each fork stops at a safe point when this process
dies: ``internals.stop_with_parent``), on the CPU, with at least ``ROWS_EACH`` rows per process, no
thread but this one running (a fork copies the forking thread alone: another thread's locks would
stay locked in the child), and no W&B logger (its service connection is this process's).

Trials resuming from checkpoints go on as the stacks they stopped in (``resumed_runs``): a stack
that was split goes on split, each process's trials in a process again, from their place in the
epoch and with their random state; trials that all stopped together go on as one stack here.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pickle
import select
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass

import torch

from dlrunner.internals import stop_with_parent
from dlrunner.train.signals import STOP

F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)  # Linux's, named by Python since 3.10
ROWS_EACH = 4  # smaller shares gain less from a process of their own than the stack gains from its rows


def process_shares(trials: list, device: torch.device, threads: int, rows: int) -> list[list] | None:
    """The trials in one share per process (every ``processes``-th trial, so each share gets a spread
    of the group), or None where the stack trains in this process alone. Resumed trials keep the
    stacks they stopped in (``resumed_runs``): one per process, or with more of them than threads,
    every ``threads``-th for each process to train one after another (``runs_in_turn``); the trials
    that had not started are dealt out among the processes. None for a single run: trials that
    stopped together go on together here."""
    if device.type != "cpu" or threads < 2 or sys.platform != "linux":
        return None
    if threading.active_count() > 1:
        return None
    if any(trial.cfg.logger.backend == "wandb" for trial in trials):
        return None
    runs = resumed_runs(trials)
    if runs:  # the alternative is one after another: a process each pays at any size
        if len(runs) < 2:
            return None
        processes = min(threads, len(runs))
        fresh = [trial for trial in trials if trial.resume is None]
        return [[t for run in runs[i::processes] for t in run] + fresh[i::processes] for i in range(processes)]
    processes = min(threads, rows // ROWS_EACH)
    return [trials[i::processes] for i in range(processes)] if processes >= 2 else None


def resumed_runs(trials: list) -> list[list]:
    """The trials resuming from checkpoints, by the stack they stopped in: those at one place in the
    epoch with one random state (a process's dropout draws) went on together there, and go on
    together again, so that each continues its curve bit for bit. In trial order."""
    runs: dict[tuple, list] = {}
    for trial in trials:
        state = trial.resume
        if state is not None:
            random = state["rng_state"]["torch"].numpy().tobytes()
            runs.setdefault((state["position"], state["order"] is None, random), []).append(trial)
    return list(runs.values())


def runs_in_turn(trials: list) -> list[list]:
    """The stacks to train one after another in this process: all the trials as one, or, when they
    resume from several stacks, each of those, the trials that had not started joining the first."""
    runs = resumed_runs(trials)
    if len(runs) < 2:
        return [trials]
    fresh = [trial for trial in trials if trial.resume is None]
    return [runs[0] + fresh, *runs[1:]]


def train_in_turn(stacks: list[list], rows: int, fit_share: Callable, progress: str, on_finish) -> dict[int, dict]:
    """Train ``stacks`` one after another in this process (``fit_share`` as in ``train_shares``);
    every trial's summary by its number. After a stop signal the stacks not yet trained are left as
    they are, for the rerun: their trials' summaries say so."""
    summaries: dict[int, dict] = {}
    for index, stack in enumerate(stacks):
        if index:
            STOP.go_on()
            if STOP.received is not None:
                summaries.update((trial.number, not_trained(STOP.name)) for trial in stack)
                continue
        summaries.update(
            (trial.number, summary) for trial, summary in zip(stack, fit_share(stack, rows, progress, on_finish))
        )
    return summaries


def not_trained(signal_name: str) -> dict:
    """The summary of a trial that a stop signal kept from training (it has no new files)."""
    return {"status": "interrupted", "signal": signal_name, "message": "stopped before it trained"}


class ShareFailed(RuntimeError):
    """A process that trained part of the stack failed (an error), or exited without the results of
    its trials. One killed by a signal leaves them interrupted instead, as a killed sweep does."""


@dataclass
class _Share:
    pid: int
    pipe: int  # the read end
    trials: list
    summaries: list | None = None  # its summaries, in its trials' order, once it is done
    failure: str | None = None  # an error it reported, or how it ended without its results
    killed_by: str | None = None  # the signal that ended it before it was done (SIGKILL, the OOM killer's)
    received: bytes = b""  # the start of a message not yet whole


def train_shares(
    shares: list[list],
    rows: int,
    fit_share: Callable,
    progress: str,
    on_finish: Callable[[int, dict], None] | None,
) -> dict[int, dict]:
    """Train each share as a stack in its own process, the first in this one: ``fit_share(trials,
    rows, progress, on_finish)`` is ``train_stacked``'s loop. Returns every trial's summary by its
    number; raises the first share's error, or ``ShareFailed``, once every process has ended."""
    rows_each = -(-rows // len(shares))
    summaries: dict[int, dict] = {}

    def take(number: int, summary: dict) -> None:
        summaries[number] = summary
        if on_finish is not None:
            on_finish(number, summary)

    sys.stdout.flush()  # what is buffered here would be written again by each fork
    sys.stderr.flush()
    others: list[_Share] = []
    here_too = [shares[0]]  # and a share whose fork failed (a process limit): after the first, in this process
    parent = os.getpid()
    for index, share in enumerate(shares[1:], start=1):
        read, write = os.pipe()
        try:
            pid = os.fork()
        except OSError:
            os.close(read)
            os.close(write)
            here_too.append(share)
            continue
        if pid == 0:  # never returns
            os.close(read)
            for other in others:
                os.close(other.pipe)
            _train_in_fork(share, rows_each, index, fit_share, write, parent)
        os.close(write)
        with contextlib.suppress(OSError):  # room for ~400 summaries: read as this process's trials finish
            fcntl.fcntl(read, F_SETPIPE_SZ, 1 << 20)
        others.append(_Share(pid, read, share))
        STOP.forward_to.append(pid)
    if STOP.received is not None:  # it came while they were forked: passed on to them by now, or here
        for share in others:
            with contextlib.suppress(ProcessLookupError):
                os.kill(share.pid, STOP.received)
    if progress != "none" and others:
        print(f"  split into {len(shares)} stacks of {rows_each}, one process per core", flush=True)

    def here(number: int, summary: dict) -> None:
        take(number, summary)
        _receive(others, take, timeout=0)  # the other processes' trials that finished meanwhile

    torch.set_num_threads(1)
    error = None
    try:
        summaries.update(train_in_turn(here_too, rows_each, fit_share, progress, here))
    except BaseException as err:  # the other processes' trials still finish, and are kept
        error = err
    waiting_error = _wait(others, take)
    error = error or waiting_error
    STOP.forward_to = []
    for share in others:
        if share.summaries is not None:  # those that never joined its stack, stopped: not handed on
            for trial, summary in zip(share.trials, share.summaries):
                summaries.setdefault(trial.number, summary)
        elif share.killed_by is not None:  # as if the whole sweep had been killed: the rerun goes on from
            for trial in share.trials:  # their checkpoints (their folders have no summary.json)
                summaries.setdefault(trial.number, _killed(share.killed_by))
    if any(summary["status"] == "interrupted" for summary in summaries.values()):
        STOP.count_late()  # a signal that stopped the other processes' trials after this one's had finished
    if error is not None:
        raise error
    failures = [share.failure for share in others if share.failure is not None]
    if failures:
        raise ShareFailed("; ".join(failures))
    return summaries


def _train_in_fork(share: list, rows: int, index: int, fit_share: Callable, pipe: int, parent: int) -> None:
    status = 1
    try:
        # SIGTERM if the sweep process dies (SIGKILL): a safe stop with checkpoints, not an orphan that
        # trains on. Without prctl it trains on and its results stay in its trials' folders.
        stop_with_parent(signal.SIGTERM)
        if os.getppid() != parent:  # it died before that: stop at the first step
            os.kill(os.getpid(), signal.SIGTERM)
        STOP.forward_to = []  # the parent's list: its other children are not this process's to stop
        # A process group of its own: a Ctrl-C (sent to the terminal's group) reaches it once, passed on
        # by the parent, not twice, which a late second copy would make a "stop now" in mid-step.
        os.setpgid(0, 0)
        # One thread: GNU OpenMP's thread pool does not survive a fork (a forked process that runs a
        # parallel region on 2 threads after its parent did hangs), and one is what pays here anyway.
        torch.set_num_threads(1)
        torch.manual_seed(torch.initial_seed() + index)  # random draws (dropout masks) of its own

        def finished(number: int, summary: dict) -> None:
            with contextlib.suppress(OSError):  # the parent is gone: the trial's files are written all the same
                _send(pipe, ("finished", number, summary))

        _send(pipe, ("done", fit_share(share, rows, "none", finished)))
        status = 0
    except BaseException as err:
        with contextlib.suppress(BaseException):
            _send(pipe, ("failed", f"{type(err).__name__}: {err}"))
    finally:
        with contextlib.suppress(BaseException):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(status)  # not the exit handlers (Hydra's, loggers'): they belong to the parent


def _send(pipe: int, message) -> None:
    body = pickle.dumps(message)
    data = memoryview(len(body).to_bytes(8, "little") + body)
    while data:
        data = data[os.write(pipe, data) :]


def _receive(shares: list[_Share], take: Callable, timeout: float) -> None:
    """Read what the other processes sent, handing each finished trial's summary to ``take``."""
    open_pipes = {share.pipe: share for share in shares if share.pipe >= 0}
    if not open_pipes:
        return
    ready, _, _ = select.select(list(open_pipes), [], [], timeout)
    for pipe in ready:
        share = open_pipes[pipe]
        chunk = os.read(pipe, 1 << 16)
        if not chunk:  # the process ended
            os.close(pipe)
            share.pipe = -1
            continue
        share.received += chunk
        while len(share.received) >= 8:
            size = int.from_bytes(share.received[:8], "little")
            if len(share.received) < 8 + size:
                break
            message = pickle.loads(share.received[8 : 8 + size])
            share.received = share.received[8 + size :]
            if message[0] == "finished":
                take(message[1], message[2])
            elif message[0] == "done":
                share.summaries = message[1]
            else:
                share.failure = f"the process that trained {_trials(share)} failed: {message[1]}"


def _wait(shares: list[_Share], take: Callable) -> BaseException | None:
    """Until every other process has ended; returns the first error met meanwhile (``take``'s).
    A stop signal here reaches them too (``forward_to``); a third one kills them (SIGKILL): a process
    that hangs can still be ended from the keyboard."""
    error = None
    while any(share.pipe >= 0 for share in shares):
        if STOP.signals >= 3:
            for share in shares:
                if share.pipe >= 0:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(share.pid, signal.SIGKILL)
        try:
            _receive(shares, take, timeout=0.5)
        except KeyboardInterrupt:  # "stop now": they got it as well; wait for them
            continue
        except Exception as err:  # handing a result on failed: still read the others', and reap them
            error = error or err
    for share in shares:
        while True:
            try:
                _, status = os.waitpid(share.pid, 0)
                break
            except KeyboardInterrupt:  # its pipe closed as it ended: it is gone or about to be
                continue
        if share.summaries is None and share.failure is None:
            if os.WIFSIGNALED(status):
                share.killed_by = signal.Signals(-os.waitstatus_to_exitcode(status)).name
            else:
                code = os.waitstatus_to_exitcode(status)
                share.failure = f"the process that trained {_trials(share)} exited with {code} before they finished"
    return error


def _killed(signal_name: str) -> dict:
    """The summary of a trial whose process was killed: interrupted, as a killed sweep leaves it."""
    return {
        "status": "interrupted",
        "signal": signal_name,
        "message": f"its process was killed ({signal_name}) before it finished; the rerun sweep goes on "
        "from where it was",
    }


def _trials(share: _Share) -> str:
    return "the trials in " + ", ".join(str(trial.run_dir) for trial in share.trials)
