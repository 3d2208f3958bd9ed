"""A sweep's trials on joblib's worker processes, each trial handed to whichever worker is free.

Hydra's joblib launcher runs a list of jobs and returns when the slowest is done. Launched a worker
count at a time (so that the ledger is written as trials finish), each pair of trials waited for
its slower one; and the workers, fresh processes, imported torch, Hydra and dlrunner at their
first trial. Here the whole round goes to joblib at once and each trial's result is taken the
moment it finishes (``return_as="generator_unordered"``): a free worker takes the next trial, and
the ledger gets each line as its trial ends. The workers are started, and import what a trial
needs, while the sweep process still prepares its first round.

Each job runs exactly as the launcher runs it: its own per-job function (the sweep config composed
for the job, the job's id and number, Hydra's globals and singletons set in the worker), reached
through dlrunner.internals, which checks the plugin's version. Outside that range the sweep
launches through the launcher's public ``launch``, a worker count at a time (``pool_for`` is None).

Stopping (dlrunner.workers.ForwardedStop passes a stop signal on to the workers): the running
trials stop at a safe point and return their interrupted summaries; a trial not started yet is
skipped (``stop`` leaves a marker the workers look at before each trial); and a worker between two
trials ignores the signal -- loky's worker would die of it and take the other worker's running
trial down with the pool.
"""

from __future__ import annotations

import importlib
import os
import pickle
import signal
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path

# What a dlrun trial imports beyond the task's own module, loaded by the workers while the sweep
# process prepares (~2-3 s of a 2-core machine's time per worker, otherwise paid at its first trial).
DLRUN_MODULES = ("torch", "dlrunner.train.run")


def pool_for(launcher, workers: int, dlrun: bool) -> JoblibPool | None:
    """A pool for Hydra's joblib launcher with more than one worker, when the plugin's per-job
    function is the one dlrunner was written for; else None (the launcher's own ``launch``)."""
    if workers <= 1 or "joblib" not in type(launcher).__module__ or getattr(launcher, "joblib", None) is None:
        return None
    from dlrunner.internals import joblib_job_runner

    runner = joblib_job_runner()
    return JoblibPool(launcher, runner, workers, dlrun) if runner is not None else None


class JoblibPool:
    def __init__(self, launcher, runner, workers: int, dlrun: bool):
        self.launcher, self.workers = launcher, workers
        self.execute, clean, self.log = runner
        # As the launcher's launch(): loky (the threading backend cannot run Hydra jobs), the
        # settings cleaned as it cleans them.
        settings = dict(launcher.joblib)
        settings["backend"] = "loky"
        clean(settings)
        if settings.get("batch_size") == "auto":
            settings["batch_size"] = 1  # joblib could group short trials, whose results would then wait for each other
        self.settings = settings
        own = launcher.task_function.__module__  # __main__: an app run as a script, pickled by value
        self.modules = (*(DLRUN_MODULES if dlrun else ()), *([own] if own != "__main__" else []))
        self.folder = tempfile.TemporaryDirectory(prefix="dlrun-sweep-")  # removed when the sweep ends
        self.marker = Path(self.folder.name) / "stop"
        self.warming = None
        self.pids = set()  # the workers' process ids

    def _parallel(self):
        from joblib import Parallel

        return Parallel(**self.settings, return_as="generator_unordered")

    def warm(self) -> None:
        """Start the workers and let each import what a trial needs, in the background. They are
        loky's reusable workers: the round's trials then run in the same processes."""
        from joblib import delayed

        self.warming = self._parallel()(delayed(_warm)(self.modules, os.getpid()) for _ in range(self.workers))

    def close(self) -> None:
        """The sweep is over: end the idle workers now. Left to loky, the sweep process waited at
        its exit for each worker's interpreter to tear down torch (~1 s on 2 cores)."""
        import contextlib

        if self.warming is not None:  # nothing was launched (all done already, or a bad setting)
            self.pids.update(self.warming)
            self.warming = None
        for pid in self.pids - {os.getpid()}:
            with contextlib.suppress(OSError):  # ended already
                os.kill(pid, signal.SIGKILL)
        self.pids.clear()

    def stop(self) -> None:
        """A stop came: trials not started yet are skipped."""
        self.marker.touch()

    def run(self, jobs: list[tuple[int, list[str]]]) -> Iterator[tuple[int, object]]:
        """Run (number, overrides) jobs; yield (number, JobReturn) as each finishes, (number, None)
        for a job skipped after a stop. The sweep dir, logging and Hydra's globals are set up in
        this process as the launcher's launch() sets them up; the job's number is its Hydra job
        number (its folder), as the launcher's ``initial_job_idx`` + index."""
        from hydra.core.singleton import Singleton
        from hydra.core.utils import configure_log, filter_overrides, setup_globals
        from joblib import delayed

        launcher = self.launcher
        setup_globals()
        configure_log(launcher.config.hydra.hydra_logging, launcher.config.hydra.verbose)
        sweep_dir = Path(str(launcher.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        settings = ",".join(f"{k}={v}" for k, v in self.settings.items())
        self.log.info(f"Joblib.Parallel({settings}) is launching {len(jobs)} jobs")
        self.log.info(f"Launching jobs, sweep output dir : {sweep_dir}")
        for number, overrides in jobs:
            self.log.info(f"\t#{number} : {' '.join(filter_overrides(overrides))}")
        # What every job gets besides its overrides, pickled once for the round: joblib pickled
        # it again for each job (~0.2 MB, ~0.13 s of the sweep process's time on 2 cores, taken
        # from the workers' cores). cloudpickle, as loky: an app's task may be defined in __main__.
        shared = _pickler().dumps(
            (launcher.hydra_context, launcher.config, launcher.task_function, Singleton.get_state())
        )
        if self.warming is not None:  # all of the above done while the workers import; now they are free
            self.pids.update(self.warming)
            self.warming = None
        results = self._parallel()(
            delayed(_job)(self.execute, str(self.marker), os.getpid(), number, overrides, shared)
            for number, overrides in jobs
        )
        try:
            for pid, number, job in results:
                self.pids.add(pid)
                yield number, job
        finally:
            with warnings.catch_warnings():  # asked to stop at once (a second Ctrl-C): joblib ends the
                warnings.simplefilter("ignore")  # workers, and would warn that their trials were cancelled
                results.close()

    def drain(self, results) -> None:
        """The sweep stops on an error of its own (a misspelt objective): no waiting trial starts,
        and the running ones finish and write their summaries (a rerun finds them in their folders)."""
        import contextlib

        self.stop()
        with contextlib.suppress(Exception):
            for _ in results:
                pass


def _pickler():
    try:
        import cloudpickle  # a dependency of recent joblib releases
    except ImportError:
        from joblib.externals import cloudpickle  # older ones carry their own copy
    return cloudpickle


# ------------------------------------------------------------------ in the worker processes


def _ignore_stop_signals(sweep_pid: int) -> None:
    """A worker between two trials ignores stop signals: a trial installs its own handlers while it
    trains (dlrunner.train.signals) and puts these back after. Never in the sweep process itself
    (joblib runs jobs there when it cannot start workers)."""
    if os.getpid() != sweep_pid:
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, signal.SIG_IGN)


def _warm(modules: tuple[str, ...], sweep_pid: int) -> int:
    _ignore_stop_signals(sweep_pid)
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception:  # a head start only: the trial that needs the module reports the error
            break
    return os.getpid()


def _job(execute, marker: str, sweep_pid: int, number: int, overrides: list[str], shared: bytes):
    """(worker's process id, job number, its JobReturn, or None when skipped after a stop)."""
    _ignore_stop_signals(sweep_pid)
    if os.path.exists(marker):  # the sweep was stopped before this trial started
        return os.getpid(), number, None
    hydra_context, config, task_function, singleton_state = pickle.loads(shared)
    return os.getpid(), number, execute(number, overrides, hydra_context, config, task_function, singleton_state)
