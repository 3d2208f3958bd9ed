"""Stopping a run cleanly on a signal.

SIGTERM is what `kill`, job schedulers and `scontrol requeue` send before they kill a process;
Ctrl-C sends SIGINT. While a run trains, both take the same path: the handler only records the
signal, and the training loop stops at its next step (a safe point: the last step, evaluation and
checkpoint are whole) by raising ``Interrupted``, a KeyboardInterrupt. The loop then saves its last
checkpoint, the run writes summary.json with status ``interrupted``, finishes its loggers and
exits with 128 + the signal's number (130 for SIGINT, 143 for SIGTERM); resuming it repeats the
uninterrupted run exactly. A second signal before that safe point raises at once (a step that
hangs can still be stopped). Once training is over (``finishing``), signals are ignored: the
run writes its result and stops as it would have.

On SLURM, submitit (hydra/launcher=submitit_slurm) handles SIGUSR2, which SLURM sends before a
time limit or a preemption, by requeuing the job and exiting. Where submitit has set that handler,
SIGUSR2 also stops the run at a safe point first, and is handed on to submitit once the
checkpoint and the summary are written (``restore``): the requeued job resumes exactly there.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time

from dlrunner.workers import SAME_REQUEST_S

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """A stop signal, raised where Ctrl-C's KeyboardInterrupt would be (the training loop catches both)."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class StopSignals:
    """Handlers for SIGINT and SIGTERM while a run trains; ``restore`` puts the previous ones back.

    There is one per process, ``STOP``: the training loop reads ``STOP.received`` once per step.
    """

    def __init__(self):
        self.received: int | None = None
        self.late: int | None = None  # a signal that came while the run wrote its result
        self.finishing = False
        self._at = 0.0
        self._previous = {}
        # Processes that train other shares of this process's stack (stack/processes.py): each signal
        # this process gets is passed on to them at once, so one sent to it alone stops them too.
        self.forward_to: list[int] = []
        self.signals = 0  # received since ``install``

    def install(self) -> StopSignals:
        self.received, self.late, self.finishing, self.forward_to, self.signals = None, None, False, [], 0
        # Python only lets the main thread set handlers; a run in a thread (a threaded launcher)
        # keeps the process's handlers, and Ctrl-C still reaches it as a KeyboardInterrupt.
        if threading.current_thread() is threading.main_thread():
            for signum in STOP_SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
            if callable(signal.getsignal(signal.SIGUSR2)):  # submitit's requeue handler
                self._previous[signal.SIGUSR2] = signal.signal(signal.SIGUSR2, self._handle)
        return self

    def finish(self, interrupted: bool) -> None:
        """Training is over: from now on signals do not stop it. A signal that came after the last
        step did not stop the run, so the run does not count as stopped by it (a completed SLURM
        job is not requeued); it is kept as a late signal, which a sweep training its trials in
        this process still gets (``restore``): it came while a stack's last trials wrote their
        results, say, and the user asked the sweep to stop."""
        self.finishing = True
        if not interrupted and self.received is not None:
            self.late, self.received = self.received, None

    def go_on(self) -> None:
        """Training goes on in this process after ``finish`` (the next of several stacks trained one
        after another): signals stop it again, and one that came while the last stack wrote its
        results stops it before it starts."""
        self.finishing = False
        self.count_late()

    def count_late(self) -> None:
        """A late signal stopped the trials still training in other processes (stack/processes.py):
        it stopped the run after all, so it counts as the run's (on SLURM, SIGUSR2 then requeues)."""
        if self.received is None and self.late is not None:
            self.received, self.late = self.late, None

    def restore(self) -> None:
        """Put the previous handlers back; hand a SIGUSR2 that stopped the run on to submitit's
        (which requeues and exits), and a signal that came while the run wrote its result on to a
        sweep running its trials in this process (``dlrunner.workers.SweepStop``), which stops."""
        received, previous = self.received, self._previous.get(signal.SIGUSR2)
        late, sweep = self.late, self._previous.get(self.late)
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}
        self.received = self.late = None
        if received == signal.SIGUSR2 and callable(previous):
            previous(received, None)
        elif late is not None and getattr(sweep, "takes_late_signals", False):
            sweep(late, None)

    def _handle(self, signum, frame) -> None:
        self.signals += 1
        for pid in self.forward_to:  # each in a process group of its own: this is how a Ctrl-C reaches it
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)
        if self.finishing:
            self.late = signum  # training is over: the result gets written either way
            return
        if self.received is None:
            self.received, self._at = signum, time.monotonic()  # the loop stops at its next step
        elif signum == self.received and time.monotonic() - self._at < SAME_REQUEST_S:
            return  # one request delivered twice: to the process group, and passed on by a sweep
        else:
            raise Interrupted(self.received)  # asked twice: stop now

    @property
    def name(self) -> str:
        """The signal that stopped the run (SIGINT when a KeyboardInterrupt came from elsewhere)."""
        return signal.Signals(self.received or signal.SIGINT).name


STOP = StopSignals()


def exit_code(signal_name: str | None) -> int:
    """The shell's convention for a process stopped by a signal: 128 + its number."""
    return 128 + signal.Signals[signal_name or "SIGINT"].value
