"""A sweep process's stop signals: between its trials, and passed on to its worker processes.

Trials stop at a safe point on their own (``train.signals``). ``SweepStop`` makes SIGTERM end the
sweep between two trials as Ctrl-C does; ``ForwardedStop`` makes sure that a signal sent to the
sweep process alone (``kill -INT``, a scheduler) reaches a joblib sweep's workers, and that the
sweep waits for their summaries instead of killing the pool.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from pathlib import Path

# A signal of the same kind this soon after the first is the same request arriving twice (`timeout`
# and job schedulers signal the process and then its whole group, and a joblib sweep passes it on
# to its workers too), not a user asking a second time.
SAME_REQUEST_S = 1.0


class StopHandlers:
    """SIGINT and SIGTERM handled by ``_handle`` while in the ``with`` block (main thread only:
    Python sets handlers there alone); the previous handlers after it."""

    def __init__(self):
        self._previous = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc) -> bool:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        return False

    def _handle(self, signum, frame) -> None:
        raise NotImplementedError


class SweepStop(StopHandlers):
    """While a sweep runs: SIGTERM ends it as Ctrl-C does, with the command that resumes it
    (``SystemExit`` 143 where Ctrl-C raises KeyboardInterrupt). Without it, a SIGTERM that came
    between two trials (while the launcher composed the next one) ended the process at once,
    silently. A trial that trains in this process installs its own handlers, which stop it at a safe
    point, and hands back a signal that came while it wrote its result (``takes_late_signals``): the
    sweep then stops before its next trial instead of forgetting the signal."""

    received: int | None = None

    def _handle(self, signum, frame) -> None:
        self.received = signum  # for library code that catches what this raises (``raise_if_stopped``)
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise SystemExit(128 + signum)

    _handle.takes_late_signals = True

    def raise_if_stopped(self) -> None:
        """Stop now if a signal came and its exception did not: a library that caught it (Hydra's
        job runner records any Exception as a failed job, the error that hid the signal included)."""
        if self.received is not None:
            raise SystemExit(128 + self.received)


# The libraries whose own errors can take a stop signal's place (``stop_code``).
HIDING_LIBRARIES = ("omegaconf", "hydra", "yaml")


def stop_code(error: BaseException) -> int | None:
    """130 (Ctrl-C) or 143 (SIGTERM) where ``error`` is a stop, or an error of the libraries that
    compose configs which hides one; None otherwise. A signal's exception raised inside OmegaConf
    can be replaced by the error its cleanup then meets: interrupted while it builds a node, it
    restores flags across the half-built node in a ``finally``, fails there, and reports a config
    error (seen as a sweep that ended with "invalid config"). Other errors are real even when they
    came while a stop was handled (a disk full while the interrupted run saved its checkpoint)."""
    if isinstance(error, (KeyboardInterrupt, SystemExit)):
        return _code_of(error)
    if not _from_library(error):
        return None
    seen, chain = set(), [error.__cause__, error.__context__]
    while chain:
        error = chain.pop()
        if error is None or id(error) in seen:
            continue
        seen.add(id(error))
        if (code := _code_of(error)) is not None:
            return code
        chain += [error.__cause__, error.__context__]
    return None


def exit_if_stop(error: BaseException) -> None:
    """End as the stop (``SystemExit`` 130 or 143, which passes through Hydra's job runner) where
    ``error`` is or hides one (``stop_code``); otherwise return, for the caller to handle ``error``."""
    if (code := stop_code(error)) is not None:
        raise SystemExit(code) from None


def _from_library(error: BaseException) -> bool:
    """Whether ``error`` is one of those libraries' errors, or was raised in their code."""
    if type(error).__module__.split(".")[0] in HIDING_LIBRARIES:
        return True
    frame = error.__traceback__
    while frame is not None and frame.tb_next is not None:
        frame = frame.tb_next
    return frame is not None and str(frame.tb_frame.f_globals.get("__name__", "")).split(".")[0] in HIDING_LIBRARIES


def _code_of(error: BaseException) -> int | None:
    if isinstance(error, KeyboardInterrupt):  # Ctrl-C, or a trial's stop by signal (``train.signals.Interrupted``)
        return 128 + getattr(error, "signum", signal.SIGINT)
    if isinstance(error, SystemExit) and error.code in (130, 143):
        return error.code
    return None


class ForwardedStop(StopHandlers):
    """While a pool of worker processes (a joblib sweep) trains trials: the sweep process passes a
    stop signal on to its workers, whose trials then stop at a safe point and write their
    interrupted summary and checkpoint, and lets the pool finish instead of killing it
    (``received`` says what came). A Ctrl-C on a terminal already reached every process of the
    foreground group, so it is not sent twice (a second signal stops a trial at once). Asked
    twice (not one request delivered twice), the sweep process stops at once (KeyboardInterrupt).
    ``on_stop`` is called at the first signal, before it is passed on (a pool that must not start
    more trials)."""

    def __init__(self, on_stop=None):
        super().__init__()
        self.received: int | None = None
        self._on_stop = on_stop
        self._at = 0.0

    def _handle(self, signum, frame) -> None:
        if self.received is not None:
            if signum == self.received and time.monotonic() - self._at < SAME_REQUEST_S:
                return  # one request delivered twice (to this process, then to its group)
            raise KeyboardInterrupt
        self.received, self._at = signum, time.monotonic()
        if self._on_stop is not None:
            self._on_stop()
        if signum == signal.SIGINT and _foreground_group():
            return  # the terminal sent it to every worker too
        for pid in _children(os.getpid()):
            with contextlib.suppress(OSError):  # ended meanwhile
                os.kill(pid, signum)

    @property
    def exit_code(self) -> int:
        """The shell's convention: 128 + the signal's number (130 for Ctrl-C)."""
        return 128 + (self.received or signal.SIGINT)


def _foreground_group() -> bool:
    """Whether this process's group is its terminal's foreground group (where Ctrl-C goes)."""
    try:
        with open("/dev/tty") as tty:
            return os.tcgetpgrp(tty.fileno()) == os.getpgrp()
    except OSError:
        return False


def _children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (Linux /proc; elsewhere none: the signal then reaches
    the workers only through the terminal). Children only: a worker's own children -- W&B's service
    process above all, which its trial still needs to close its run -- must not get the signal."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if parent == pid:
            found.append(int(stat.parent.name))
    return found
