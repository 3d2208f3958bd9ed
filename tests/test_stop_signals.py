"""A sweep's stop signals where a library stands in the way: the signal's exception, raised inside
OmegaConf or caught by Hydra's job runner, still ends the sweep with the command that resumes it.
The signals themselves, sent to real processes, are tested in test_faults.py."""

from __future__ import annotations

import os
import signal
import sys
import time

import pytest

from dlrunner.workers import SweepStop, stop_code


def _interrupted_at_each_line(build, library: str) -> list[BaseException]:
    """What ``build()`` raises when a signal's SystemExit(143) comes at each line of ``library``'s
    code that it runs, in turn (raised from a trace function, where a signal handler would raise it;
    only there: not in a callback the garbage collector runs meanwhile, which would swallow it)."""
    outcomes, line = [], 0
    while True:
        seen, target = 0, line + 1

        def tracer(frame, event, arg, target=target):
            nonlocal seen
            if event == "line" and library in frame.f_code.co_filename:
                seen += 1
                if seen == target:
                    raise SystemExit(143)
            return tracer

        sys.settrace(tracer)
        try:
            build()
        except BaseException as error:
            outcomes.append(error)
        finally:
            sys.settrace(None)
        if seen < target:  # ran to the end: every line has had its turn
            return outcomes
        line = target


def test_a_stop_that_omegaconf_hides_behind_its_own_error_is_still_a_stop():
    from omegaconf import OmegaConf

    def build():  # as Hydra composes a trial's config
        config = OmegaConf.create({"model": {"hidden": [8]}})
        OmegaConf.set_struct(config, True)

    outcomes = _interrupted_at_each_line(build, "omegaconf")
    hidden = [error for error in outcomes if not isinstance(error, SystemExit)]
    assert hidden, "OmegaConf no longer hides a stop behind its own error: this test guards nothing"
    assert {stop_code(error) for error in outcomes} == {143}
    assert stop_code(ValueError("a plain error")) is None and stop_code(SystemExit(2)) is None


def test_an_error_met_while_a_stop_was_handled_is_not_taken_for_the_stop():
    # A disk full while the interrupted run saved its checkpoint is an error to report, not a stop.
    try:
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt:
            raise OSError(28, "No space left on device") from None
    except OSError as error:
        assert error.__context__ is not None and stop_code(error) is None
    # A trial's own stop by SIGTERM (train.signals.Interrupted) keeps its code.
    from dlrunner.train.signals import Interrupted

    assert stop_code(Interrupted(signal.SIGTERM)) == 143 and stop_code(KeyboardInterrupt()) == 130


def test_a_stop_that_a_library_caught_ends_the_sweep_after_the_launch():
    with SweepStop() as sweep_stop:
        try:  # Hydra's job runner records an Exception as a failed job: the stop is gone from the stack
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.05)
        except SystemExit:
            pass
        with pytest.raises(SystemExit) as stopped:
            sweep_stop.raise_if_stopped()
        assert stopped.value.code == 143


@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_after_the_last_step_but_before_the_result_stops_the_sweep_after_that_trial(signum, code):
    from dlrunner.train.signals import STOP

    with SweepStop():
        stop = STOP.install()  # a trial (or a stack) trains in the sweep's process ...
        os.kill(os.getpid(), signum)  # ... its last rows leave, writing their results: no step is left to stop
        time.sleep(0.05)
        stop.finish(False)  # a completed run: not stopped by the signal
        with pytest.raises((SystemExit, KeyboardInterrupt)) as stopped:
            stop.restore()  # the sweep stops before its next trial instead of forgetting the signal
        assert getattr(stopped.value, "code", 130) == code
    # a run of its own (dlrun train) completes as it would have: the signal came too late to stop it
    stop = STOP.install()
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(0.05)
    stop.finish(False)
    stop.restore()
