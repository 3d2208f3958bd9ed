"""The sweep loop: ask the search for a round, launch the trials through Hydra's launcher, read
each trial's outcome, append the ledger, tell the search; then report the best.

Any Hydra app can be swept. A trial's objective is what its task function returns: a number, or a
mapping read at ``hydra.sweeper.objective`` (dlrun's task returns its summary, so that path is a
``summary.json`` path); a trial with neither whose folder holds a ``summary.json`` (a stacked
dlrun trial) is read from that file. Nothing is added to a trial's config: its number and round
reach dlrun's logger as environment variables set through ``hydra.job.env_set``.

Resuming is re-running the same command with the same hydra.sweep.dir: trial parameters are
deterministic, so every trial already in trials.jsonl (or finished in its folder) is told to the
search from its record instead of being run again.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path

from omegaconf import OmegaConf

from dlrunner.errors import ConfigError, Problem
from dlrunner.files import write_json_atomic, write_text_atomic
from dlrunner.loggers.wandb_logger import SWEEP_ENV
from dlrunner.search import CoarseToFine
from dlrunner.search.constraints import check_constraints, lookup
from dlrunner.search.ledger import append_ledger, read_ledger
from dlrunner.sweep.best import is_dlrun_task
from dlrunner.sweep.outcome import is_number, outcome, read_summary
from dlrunner.sweep.settings import check_settings, parallelism
from dlrunner.sweep.space import fill, parse_space

FINAL = {"completed", "diverged", "failed", "pruned"}  # an interrupted trial is run again when the sweep resumes
# Sweeper settings that do not change which trials a sweep runs (resuming may change them).
NOT_IDENTITY = {"export_wandb", "max_batch_size", "max_failure_rate"}
# Settings added since sweep.json was first written: a sweep folder without them had these values.
ADDED_SETTINGS = {"pruner": "none", "pruning": {"min_steps": None, "reduction_factor": 3}}
RUNG_FILE = "pruning.jsonl"  # the rungs every trial reports to (search.pruning.SharedHalving)


class SweepFailed(RuntimeError):
    pass


class SweepRunner:
    def __init__(self, sweeper, settings: dict):
        self.sweeper = sweeper
        self.settings = settings
        self.sweep_dir = Path(sweeper.config.hydra.sweep.dir)
        self.ledger_path = self.sweep_dir / "trials.jsonl"
        self.dlrun = is_dlrun_task(sweeper.task_function)
        self._opening: str | None = None
        self._validated = set()  # override lists that Hydra has composed once already, by _form()
        # The job returns: one list per launch when hydra.sweeper.max_batch_size is set (as Hydra's
        # basic sweeper returns its batches), else one list per round.
        self.returns: dict[int, list] = {}
        self._pool = None  # joblib's workers, each trial on the first free one (sweep/parallel.py)

    def run(self, arguments: list[str]):
        from hydra.core.override_parser.overrides_parser import OverridesParser

        s = self.settings
        parser = OverridesParser.create(config_loader=self.sweeper.hydra_context.config_loader)
        space, template = parse_space(dict(s["params"] or {}), arguments, parser)
        check_settings(self.settings, self.sweeper.config.hydra.launcher)
        if s.get("pruner", "none") == "none" and dict(s.get("pruning") or {}) != ADDED_SETTINGS["pruning"]:
            print("note: hydra.sweeper.pruning applies with hydra.sweeper.pruner=halving only: ignored", flush=True)
        if self.dlrun and (note := self._direction_note()):
            print(f"note: {note}", flush=True)
        if not space and s.get("export_wandb"):
            raise ConfigError(
                Problem("hydra.sweeper.params", {}, "no parameter to export: pick a sweep (dlrun ls sweep) or give one")
            )
        if not space:
            return self._single_job(fill(template, {}))
        if not s.get("export_wandb"):
            self._pool = self._start_pool()
        try:
            return self._sweep(space, template, arguments)
        finally:
            if self._pool is not None:
                self._pool.close()

    def _sweep(self, space: dict, template, arguments: list[str]):
        s = self.settings
        # Compose one sample trial now, so that a bad key fails before anything is written.
        sample = CoarseToFine(space, budget=1, rounds=1, method="random", seed=s["seed"]).ask()[0]
        overrides = fill(template, sample.params)
        # Hydra's check that a trial composes (its Sweeper.validate_batch_is_legal), once, and the config
        # the checks below read
        config = self.sweeper.hydra_context.config_loader.load_sweep_config(self.sweeper.config, overrides)
        self._validated.add(_form(overrides))  # the trials of its form compose alike
        self._check_pruning_fits(config)
        if self.dlrun:  # each parameter at the ends of its range passes dlrun's checks (sweep/ends.py)
            from dlrunner.sweep.ends import end_problems

            problems = end_problems(config, space)
            if problems:
                raise ConfigError(problems)
        if s.get("export_wandb"):
            from dlrunner.sweep.wandb_export import caveats, export

            path = Path(s["export_wandb"]).resolve()
            export(space, [o for _, o in template if o is not None], s, path)
            print(f"Wrote the W&B sweep configuration to {path}; run it with: wandb sweep {path}", flush=True)
            for note in caveats(s):
                print(f"note: {note}", flush=True)
            return None
        self.template = template
        self.launcher_overrides = self._thread_limit(template)
        from dlrunner.workers import SweepStop, stop_code

        try:
            with SweepStop() as self._sweep_stop:  # from the first file it writes, a stopped sweep says how to go on
                self.sweep_dir.mkdir(parents=True, exist_ok=True)
                done = {r["number"]: r for r in read_ledger(self.ledger_path)}
                self.changed = self._changed_settings(bool(done))
                self._check_same_pruning()
                search = self._search_for(space, resuming=bool(done))
                write_text_atomic(OmegaConf.to_yaml(self.sweeper.config), self.sweep_dir / "multirun.yaml")
                self._write_space(space)
                self._opening = self._opening_line(done)  # said once the first round's trials match the ledger
                self._search(search, done)
        except BaseException as error:  # KeyboardInterrupt also when asked twice while workers trained
            code = stop_code(error)
            if code is None:
                raise
            print(f"Interrupted. Resume the sweep with: {self._resume_command(arguments)}", flush=True)
            raise SystemExit(code) from None
        self._write_regions(search)
        from dlrunner.sweep.report import finish

        finish(search, self.sweep_dir, self.settings, self.dlrun)
        # As Hydra's sweepers: the job returns (trials resumed from the ledger were not launched and have none).
        return [self.returns[r] for r in sorted(self.returns)]

    def _opening_line(self, done: dict) -> str:
        """Where the sweep writes, and what a rerun resumes: finished trials (the ledger) and trials
        stopped part-way (their folders' interrupted summaries, continued from their checkpoints)."""
        trial_folders = [f for f in self.sweep_dir.iterdir() if f.name.isdigit() and int(f.name) not in done]
        statuses = {folder: read_summary(folder).get("status") for folder in trial_folders}
        # finished trials the ledger has not recorded yet (a stack stopped before its round ended)
        finished = len(done) + sum(1 for status in statuses.values() if status in FINAL)
        interrupted = sum(  # a summary that says so, or a checkpoint without a summary (SIGKILL)
            1
            for folder, status in statuses.items()
            if status == "interrupted" or (status is None and (folder / "checkpoints" / "last.pt").is_file())
        )
        if not finished and not interrupted:
            return f"Sweep folder: {self.sweep_dir}"
        parts = [f"{finished} {'trial' if finished == 1 else 'trials'} already done"]
        if interrupted:
            they = "it continues from its checkpoint" if interrupted == 1 else "they continue from their checkpoints"
            parts.append(f"{interrupted} stopped part-way ({they})")
        # launched but never started (waiting for a stack's row, or a worker): only Hydra's .hydra/
        waiting = len(statuses) - interrupted - sum(1 for status in statuses.values() if status in FINAL)
        if waiting:
            parts.append(f"{waiting} not started yet ({'it starts' if waiting == 1 else 'they start'} afresh)")
        return f"Resuming the sweep in {self.sweep_dir}: {', '.join(parts)}"

    def _resume_command(self, arguments: list[str]) -> str:
        """The command that resumes this sweep: the same arguments, in this sweep's folder."""
        import shlex
        import sys

        hydra_overrides = list(self.sweeper.config.hydra.overrides.get("hydra") or [])
        own = ("hydra.sweep.dir=", "++hydra.sweep.dir=", "hydra.mode=") + (("hydra/sweeper=",) if self.dlrun else ())
        kept = [a for a in [*hydra_overrides, *arguments] if not a.lstrip("+").startswith(own)]
        words = [*kept, f"hydra.sweep.dir={self.sweep_dir}"]
        head = "dlrun sweep" if self.dlrun else f"python {shlex.quote(sys.argv[0] or 'your_app.py')} -m"
        return f"{head} {' '.join(shlex.quote(w) for w in words)}"

    def _single_job(self, overrides: list[str]) -> list:
        """Nothing to search: the one job, as Hydra's basic sweeper runs it."""
        print("note: nothing to search (no distribution in hydra.sweeper.params or the overrides): one job", flush=True)
        self.sweeper.validate_batch_is_legal([overrides])
        return [list(self.sweeper.launcher.launch([overrides], initial_job_idx=0))]

    def _search(self, search, done: dict) -> None:
        while not search.done:
            trials = search.ask()
            to_run = []
            for trial in trials:
                self._check_same_sweep(done.get(trial.number), trial)
                record = done.get(trial.number) or self._finished_in_folder(trial)
                if record is not None and record.get("params") == _jsonable(trial.params):
                    if trial.number not in done:
                        append_ledger(self.ledger_path, record)  # finished but never written: the sweep was killed
                    _tell(search, record)
                else:
                    to_run.append(trial)
            if self._opening:
                print(self._opening, flush=True)
                self._opening = None
            for chunk in _chunks(to_run, self._batch_size()):
                self._launch(chunk, search)
            self._check_failures(search)

    # ------------------------------------------------------------------ launching

    def _launch(self, chunk, search) -> None:
        batch = [self._launched_overrides(trial) for trial in chunk]
        self._validate([self._trial_overrides(trial) for trial in chunk])
        # Trials are numbered across the whole sweep, so their folders keep their names on resume.
        group = len(self.returns) if self.settings.get("max_batch_size") else chunk[0].round
        if self._pool is not None:
            return self._launch_on_free_workers(chunk, batch, group, search)
        launcher = self.sweeper.launcher
        # Hydra's launch() numbers its jobs up from the first: one launch per run of consecutive
        # trials, except where the launcher takes their numbers (the stacked one: one stack)
        numbered = hasattr(launcher, "job_numbers")
        for start, run in [(chunk[0].number, chunk)] if numbered else _contiguous(chunk):
            recorded = set()

            def write(i: int, job, run=run, recorded=recorded) -> None:
                record = self._record(run[i], job)
                append_ledger(self.ledger_path, record)
                _tell(search, record)
                recorded.add(i)

            if hasattr(launcher, "on_return"):  # the stacked launcher: each trial's line as it leaves its stack
                launcher.on_return = write
            if numbered:
                launcher.job_numbers = [trial.number for trial in run]
            try:
                with self._stop_for_workers() as stop:
                    returns = launcher.launch([batch[chunk.index(t)] for t in run], initial_job_idx=start)
            finally:
                if hasattr(launcher, "on_return"):
                    launcher.on_return = None
                if numbered:
                    launcher.job_numbers = None
            if stop is not None and stop.received:  # the workers' trials stopped and wrote their summaries
                raise SystemExit(stop.exit_code)
            self._sweep_stop.raise_if_stopped()  # before a job that the signal failed is written as failed
            for i, job in enumerate(returns):
                self.returns.setdefault(group, []).append(job)
                if i not in recorded:
                    write(i, job)

    def _start_pool(self):
        """With joblib's workers: started now, so that they import what a trial needs while this
        process composes; None where the launcher's own launch() runs the trials (sweep/parallel.py)."""
        from dlrunner.sweep.parallel import pool_for

        pool = pool_for(self.sweeper.launcher, self._parallelism(), self.dlrun)
        if pool is not None:
            pool.warm()
        return pool

    def _launch_on_free_workers(self, chunk, batch, group, search) -> None:
        """The chunk on joblib's workers, each trial on the first free one, and its ledger line
        written as it finishes. After a stop, only final results are written (an interrupted
        trial runs again when the sweep resumes)."""
        trials, jobs = {trial.number: trial for trial in chunk}, {}
        results = self._pool.run([(trial.number, b) for trial, b in zip(chunk, batch)])
        with self._stop_for_workers(self._pool.stop) as stop:
            try:
                for number, job in results:
                    if job is None:  # not started: the sweep was stopped first
                        continue
                    jobs[number] = job
                    record = self._record(trials[number], job)
                    if stop.received is None or record["status"] in FINAL:
                        append_ledger(self.ledger_path, record)
                        _tell(search, record)
            except Exception:
                self._pool.drain(results)
                raise
        if stop.received is not None:  # the workers' trials stopped and wrote their summaries
            raise SystemExit(stop.exit_code)
        self.returns.setdefault(group, []).extend(jobs[trial.number] for trial in chunk)

    def _stop_for_workers(self, on_stop=None):
        """With joblib's worker processes, a stop signal is passed on to the workers and the pool is
        left to finish, so that every running trial writes its interrupted summary and checkpoint
        (joblib would kill them). Other launchers run trials in this process or their own way."""
        import contextlib

        if "joblib" not in str(self.sweeper.config.hydra.launcher.get("_target_", "")):
            return contextlib.nullcontext()
        from dlrunner.workers import ForwardedStop

        return ForwardedStop(on_stop)

    def _validate(self, batch: list[list[str]]) -> None:
        """Hydra's check that each trial's overrides compose, done once per form of override list.

        Hydra composes the whole config for every list it checks (~0.2-0.5 s each on a 2-core
        machine), in the sweep process, where it competed with the workers for the cores: with 2
        joblib workers the sweep process took about a third of a core. The trials of a sweep differ
        in sampled numbers for the same keys, so one list per form -- the same keys, the same
        words (config group choices are checked for each), numbers as numbers -- is checked."""
        new = {}
        for overrides in batch:
            new.setdefault(_form(overrides), overrides)
        for form in set(new) - self._validated:
            self.sweeper.validate_batch_is_legal([new[form]])
            self._validated.add(form)

    def _record(self, trial, job) -> dict:
        """One ledger line, from what the trial returned (or its summary.json, or its exception)."""
        run_dir = self._run_dir(trial.number, job)
        result, status, message = outcome(job, run_dir)
        if isinstance(result, Mapping):
            objective = lookup(result, self.settings["objective"]) if status == "completed" else None
            meets, constraint_values = check_constraints(result, self.settings["constraints"])
            if status == "completed":
                self._check_paths(result, objective, constraint_values)
        else:
            objective = result if status == "completed" else None
            meets, constraint_values = check_constraints({}, self.settings["constraints"])
            if status == "completed" and not is_number(result):
                message = (
                    f"the task returned {type(result).__name__}, not a number or a mapping with "
                    f"hydra.sweeper.objective={self.settings['objective']}"
                )
            elif status == "completed" and self.settings["constraints"]:
                self._check_paths({}, objective, constraint_values)
        pruned = self._pruned().get(trial.number) if status not in ("failed", "interrupted") else None
        if pruned is not None:  # scored at its rung only: comparable with the other trials there, never best
            status, objective = "pruned", pruned.get("value")
            message = message if "pruned" in message else f"pruned at step {pruned.get('step')}"
        finite = is_number(objective) and math.isfinite(objective)
        return {
            "number": trial.number,
            "round": trial.round,
            "params": _jsonable(trial.params),
            "status": status,
            "objective": float(objective) if finite else None,
            "constraints": constraint_values,
            "eligible": bool(status == "completed" and finite and meets),
            "run_dir": str(run_dir),
            "verdict": lookup(result, "diagnosis.verdict") if isinstance(result, Mapping) else None,
            "message": message,
            # dlrun keeps a failed trial's traceback in its folder (its stderr is the job's .err log on SLURM)
            "error_log": str(run_dir / "error.log") if (run_dir / "error.log").is_file() else None,
            "objective_from": "mapping" if isinstance(result, Mapping) else "return value",
            "overrides": self._trial_overrides(trial),
            "launcher_overrides": self.launcher_overrides,
            **({"step": pruned.get("rung"), "stopped_at": pruned.get("step")} if pruned is not None else {}),
        }

    def _pruned(self) -> dict:
        """The trials pruned so far (their rung, score and step), from what they recorded."""
        if self.settings.get("pruner", "none") != "halving":
            return {}
        from dlrunner.search.pruning import PRUNED_FILE, read_pruned

        return read_pruned(self.sweep_dir / PRUNED_FILE)

    def _search_for(self, space: dict, resuming: bool):
        """The search: a coarse-to-fine sweep resumed with a larger budget keeps the search it
        started with (its budget in sweep.json) and adds the new trials after it (sweep/continued.py)."""
        budget = self.settings["budget"]
        started_with = self._started_budget() if resuming else None
        if self.settings["method"] != "coarse_to_fine" or not started_with or budget <= started_with:
            return self._new_search(space, budget)
        from dlrunner.sweep.continued import Continued

        self.changed = [c for c in self.changed if not c.startswith("hydra.sweeper.budget ")]
        print(
            f"The budget went from {started_with} to {budget}: the {budget - started_with} "
            "added trials are one more round, zoomed in around the best trials so far",
            flush=True,
        )
        return Continued(self._new_search(space, started_with), budget - started_with)

    def _write_space(self, space: dict) -> None:
        """space.json: each parameter's distribution, for the sweep report."""
        write_json_atomic(
            {
                name: {"kind": p.kind, **({"values": p.values} if p.kind == "choice" else {"lo": p.lo, "hi": p.hi})}
                for name, p in space.items()
            },
            self.sweep_dir / "space.json",
        )

    def _new_search(self, space: dict, budget: int) -> CoarseToFine:
        s = self.settings
        return CoarseToFine(
            space,
            budget=budget,
            rounds=s["rounds"],
            top_k=s["top_k"],
            margin=s["margin"],
            seed=s["seed"],
            method=s["method"],
            grid_points=s["grid_points"],
            direction=s["direction"],
        )

    def _started_budget(self) -> int | None:
        path = self.sweep_dir / "sweep.json"
        return json.loads(path.read_text()).get("budget") if path.is_file() else None

    def _changed_settings(self, resuming: bool) -> list[str]:
        """sweep.json keeps the settings a sweep started with, so that resuming with other ones can
        say what changed in the user's terms."""
        path = self.sweep_dir / "sweep.json"
        now = {k: v for k, v in self.settings.items() if k not in NOT_IDENTITY}
        now = json.loads(json.dumps(OmegaConf.to_container(OmegaConf.create(now)), default=str))
        before = json.loads(path.read_text()) if path.is_file() else None
        if not resuming or before is None:
            write_json_atomic(now, path)
            return []
        before = {**ADDED_SETTINGS, **before}
        return [
            f"hydra.sweeper.{key} was {before.get(key)!r}, now {now.get(key)!r}"
            for key in sorted(set(before) | set(now))
            if before.get(key) != now.get(key)
        ]

    def _direction_note(self) -> str | None:
        """dlrun's metrics say which way is better: minimizing an accuracy (the default direction)
        would pick the worst trial as best."""
        from dlrunner.diagnostics.decide import OPTIMIZING

        objective, direction = str(self.settings["objective"]), self.settings["direction"]
        higher_is_better = {**OPTIMIZING, "loss": False}.get(objective.rsplit(".", 1)[-1])
        if higher_is_better is None or higher_is_better == (direction == "maximize"):
            return None
        better, worst = ("higher", "lowest") if higher_is_better else ("lower", "highest")
        return (
            f"{better} is better for hydra.sweeper.objective={objective}, but hydra.sweeper.direction={direction} "
            f"picks the trial with the {worst} as best; add hydra.sweeper.direction="
            f"{'maximize' if higher_is_better else 'minimize'}"
        )

    def _check_same_pruning(self) -> None:
        """Pruning decisions replay the sweep's rung file: other pruning settings would judge the
        trials still to run by other rules than the ones already judged."""
        changed = [c for c in self.changed if c.startswith(("hydra.sweeper.pruner ", "hydra.sweeper.pruning "))]
        if changed:
            raise ConfigError(
                Problem(
                    "hydra.sweep.dir",
                    str(self.sweep_dir),
                    f"holds a sweep run with other pruning settings ({'; '.join(changed)}); rerun the same "
                    "command to resume it, or choose a new hydra.sweep.dir",
                )
            )

    def _check_same_sweep(self, record: dict | None, trial) -> None:
        """Resuming means the same search: a ledger written with other settings would mix two sweeps.
        A launcher's own settings (another launcher, its thread limit) are not part of a trial."""
        if record is None:
            return
        now = self._trial_overrides(trial)
        before = _without_legacy(record.get("overrides", []), now)
        if sorted(before) == sorted(now) and record.get("params") == _jsonable(trial.params):
            return
        changes = [*self.changed]
        if set(before) - set(now) or set(now) - set(before):
            removed, added = [o for o in before if o not in now], [o for o in now if o not in before]
            changes.append(f"trial {trial.number} had {removed or 'nothing more'}, now {added or 'nothing more'}")
        raise ConfigError(
            Problem(
                "hydra.sweep.dir",
                str(self.sweep_dir),
                "holds a sweep run with other settings ("
                + "; ".join(changes or [f"trial {trial.number}'s parameters differ"])
                + "); rerun the same command to resume it (a larger hydra.sweeper.budget adds trials), "
                "or choose a new hydra.sweep.dir",
            )
        )

    def _trial_overrides(self, trial) -> list[str]:
        """The trial as the user would write it: their overrides with the sampled values in place."""
        return fill(self.template, trial.params)

    def _sweep_name(self) -> str:
        """The sweep's folder as given, e.g. 2026-12-06_10-30-00-123456 for Hydra's default
        multirun/DATE/TIME, or lr-search: what tells a sweep's trials from another's in a tracker."""
        given = Path(str(self.sweeper.config.hydra.sweep.dir))
        parts = list(given.parts[-2:] if given.is_absolute() else given.parts)
        if len(parts) > 1 and parts[0] == "multirun":
            parts = parts[1:]
        return "_".join(parts)

    def _launched_overrides(self, trial) -> list[str]:
        """What the launcher gets: the trial, the launcher's share of threads (dlrun only) and the
        trial's place in the sweep as environment variables (Hydra's config, not the app's)."""
        name_env, trial_env, round_env = SWEEP_ENV
        tracking = [
            f"++hydra.job.env_set.{name_env}='{self._sweep_name()}'",
            f"++hydra.job.env_set.{trial_env}={trial.number}",
            f"++hydra.job.env_set.{round_env}={trial.round}",
        ]
        return self._trial_overrides(trial) + self.launcher_overrides + tracking + self._pruning_env()

    def _pruning_env(self) -> list[str]:
        """With hydra.sweeper.pruner=halving, the rung file and the settings, as JSON in one variable
        (search.pruning.trial_pruner reads it): every launcher passes hydra.job.env_set on, and a
        stacked trial keeps it in its own config."""
        if self.settings.get("pruner", "none") != "halving":
            return []
        from dlrunner.search.pruning import PRUNING_ENV

        pruning = self.settings.get("pruning") or {}
        value = json.dumps(
            {
                "path": str((self.sweep_dir / RUNG_FILE).resolve()),
                "min_steps": pruning.get("min_steps"),
                "reduction_factor": pruning.get("reduction_factor", 3),
                # dlrun's trials report their dev error; another app reports its objective
                "direction": "minimize" if self.dlrun else self.settings["direction"],
            }
        )
        quoted = value.replace("\\", "\\\\").replace("'", "\\'")
        return [f"++hydra.job.env_set.{PRUNING_ENV}='{quoted}'"]

    def _finished_in_folder(self, trial) -> dict | None:
        """A dlrun trial that finished (its summary.json is final) but was never written to the ledger."""
        run_dir = self.sweep_dir / str(trial.number)
        if read_summary(run_dir).get("status") not in FINAL:
            return None
        record = self._record(trial, None)
        saved_path = run_dir / ".hydra" / "overrides.yaml"
        saved = list(OmegaConf.load(saved_path)) if saved_path.is_file() else []
        # the user's overrides come first; what a launcher added (maybe another one) follows
        return record if saved[: len(record["overrides"])] == record["overrides"] else None

    def _check_paths(self, summary: dict, objective, constraint_values: dict) -> None:
        """A misspelt objective or constraint path would make every trial ineligible: stop at the first one."""
        from dlrunner.loggers import flatten

        known = sorted(
            k.replace("/", ".")
            for k, v in flatten({k: v for k, v in summary.items() if k != "config"}).items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)
        )
        problems = []
        if not isinstance(objective, (int, float)):
            problems.append(
                Problem(
                    "hydra.sweeper.objective",
                    self.settings["objective"],
                    f"not a number in what the trial returned (dlrun: its summary.json); numbers there: {known}",
                )
            )
        for text, value in constraint_values.items():
            if not isinstance(value, (int, float)):
                problems.append(
                    Problem(
                        "hydra.sweeper.constraints",
                        text,
                        f"its path is not a number in what the trial returned (dlrun: its summary.json); "
                        f"numbers there: {known}",
                    )
                )
        if problems:
            raise ConfigError(problems)

    def _run_dir(self, number: int, job) -> Path:
        hydra_cfg = getattr(job, "hydra_cfg", None)  # None for a trial recovered from its folder
        if hydra_cfg is not None:
            return Path(hydra_cfg.hydra.runtime.output_dir)
        return self.sweep_dir / str(number)

    # ------------------------------------------------------------------ settings

    def _check_pruning_fits(self, config) -> None:
        """A first rung at or past a dlrun trial's last step could never prune: say so before anything
        runs, for the default first rung too (a whole number of evaluations: evaluations as far apart
        as the training is long leave no rung). ``config``: a trial's, composed."""
        from dlrunner.search.pruning import default_min_steps

        min_steps = (self.settings.get("pruning") or {}).get("min_steps")
        steps, every = OmegaConf.select(config, "trainer.steps"), OmegaConf.select(config, "trainer.eval_every")
        if self.settings.get("pruner", "none") != "halving" or not self.dlrun or not isinstance(steps, int):
            return
        interval = every if isinstance(every, int) and every >= 1 else 1  # null (once per epoch): not known here
        latest = interval * ((steps - 1) // interval)  # the last evaluation before the last step: the latest rung
        if latest == 0 and interval > 1:
            raise ConfigError(
                Problem(
                    "trainer.eval_every",
                    every,
                    f"no evaluation before the last step (trainer.steps={steps}), and pruning judges a trial "
                    f"at an evaluation before its last step: at most {steps - 1}",
                )
            )
        factor = (self.settings.get("pruning") or {}).get("reduction_factor", 3)
        first = default_min_steps(steps, factor, interval) if min_steps is None else min_steps
        if first > latest:  # judged at its first evaluation at or past the rung: the last step, or none
            raise ConfigError(
                Problem(
                    "hydra.sweeper.pruning.min_steps",
                    min_steps,
                    f"a trial is judged at its first evaluation at or past the first rung, which must come "
                    f"before its last step (trainer.steps={steps}"
                    + (f", trainer.eval_every={every}" if interval > 1 else "")
                    + f"): at most {latest}",
                )
            )

    def _parallelism(self) -> int:
        return parallelism(self.sweeper.config.hydra.launcher)

    def _batch_size(self) -> int:
        """Trials per launch. The ledger is written after each launch, so keep it to the
        launcher's parallelism: a killed sweep then loses at most one batch of results."""
        if self.settings.get("max_batch_size"):
            return int(self.settings["max_batch_size"])
        if self._pool is not None:
            return 10**9  # each trial goes to the first free worker, and is written to the ledger as it finishes
        if any(name in str(self.sweeper.config.hydra.launcher.get("_target_", "")) for name in ("submitit", "stacked")):
            return 10**9  # a cluster runs a whole round at once; a stack trains it at once
        return self._parallelism()

    def _thread_limit(self, template) -> list[str]:
        """Parallel dlrun workers on one machine share its cores: give each worker its share of threads.
        A launcher setting, not part of the trial (a sweep may be resumed with another launcher)."""
        workers = self._parallelism()
        if not self.dlrun or workers <= 1 or any(key.lstrip("+") == "trainer.threads" for key, _ in template):
            return []
        return [f"trainer.threads={max(1, (os.cpu_count() or 1) // workers)}"]

    def _check_failures(self, search) -> None:
        finished = [t for t in search.trials if t.status != "pending"]
        failed = [t for t in finished if t.status == "failed"]
        if finished and len(failed) / len(finished) > self.settings["max_failure_rate"]:
            records = {r["number"]: r for r in read_ledger(self.ledger_path)}
            first = records.get(failed[0].number, {}).get("message", "")
            raise SweepFailed(
                f"{len(failed)} of {len(finished)} trials failed (more than hydra.sweeper.max_failure_rate="
                f"{self.settings['max_failure_rate']}); first error: {first}. See {self.ledger_path}"
            )

    def _write_regions(self, search) -> None:
        write_json_atomic(
            [{"round": i + 1, "region": r} for i, r in enumerate(search.regions)], self.sweep_dir / "regions.json"
        )


def _without_legacy(overrides: list[str], now: list[str]) -> list[str]:
    """A ledger line written before trials kept only the user's overrides (dlrunner 0.2) also held
    the logger's place in the sweep and the launcher's thread limit, mixed in: not the trial's."""
    added = ("logger.sweep_trial=", "logger.sweep_round=", "logger.group=", "trainer.threads=")
    return [o for o in overrides if o in now or not o.startswith(added)]


def _tell(search, record: dict) -> None:
    """A ledger record told to the search (a pruned trial with the rung its score was measured at)."""
    search.tell(record["number"], record["objective"], record["status"], record["eligible"], record.get("step"))


def _jsonable(params: dict) -> dict:
    return json.loads(json.dumps(params, default=str))


def _form(overrides: list[str]) -> tuple:
    """An override list with its numbers replaced by "<number>": lists of one form compose alike."""
    form = []
    for override in overrides:
        key, _, value = override.partition("=")
        try:
            float(value)
            value = "<number>"
        except ValueError:
            pass
        form.append((key, value))
    return tuple(form)


def _chunks(items: list, size: int):
    for start in range(0, len(items), max(1, size)):
        yield items[start : start + size]


def _contiguous(trials):
    """Split trials into runs of consecutive numbers: (first number, trials)."""
    run = []
    for trial in trials:
        if run and trial.number != run[-1].number + 1:
            yield run[0].number, run
            run = []
        run.append(trial)
    if run:
        yield run[0].number, run
