"""The sweep loop: ask the search for a round, launch the trials through Hydra's launcher, read
each trial's summary.json, append the ledger, tell the search; then report the best.

Resuming is re-running the same command with the same hydra.sweep.dir: trial parameters are
deterministic, so every trial already in trials.jsonl (or finished in its folder) is told to the
search from its record instead of being run again.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

from omegaconf import OmegaConf

from dlrunner.errors import ConfigError, Problem
from dlrunner.search import CoarseToFine
from dlrunner.search.constraints import check_constraints, lookup, parse_constraint
from dlrunner.search.ledger import append_ledger, read_ledger
from dlrunner.sweep.space import as_override, parse_space

FINAL = {"completed", "diverged", "failed"}  # an interrupted trial is run again when the sweep resumes


class SweepFailed(RuntimeError):
    pass


class SweepRunner:
    def __init__(self, sweeper, settings: dict):
        self.sweeper = sweeper
        self.settings = settings
        self.sweep_dir = Path(sweeper.config.hydra.sweep.dir)
        self.ledger_path = self.sweep_dir / "trials.jsonl"
        self._validated = set()  # override lists that Hydra has composed once already, by _form()

    def run(self, arguments: list[str]):
        from hydra.core.override_parser.overrides_parser import OverridesParser

        s = self.settings
        parser = OverridesParser.create(config_loader=self.sweeper.hydra_context.config_loader)
        space, fixed = parse_space(dict(s["params"] or {}), arguments, parser)
        self._check_settings()
        # Compose one sample trial now, so that a bad key fails before anything is written.
        sample = CoarseToFine(space, budget=1, rounds=1, method="random", seed=s["seed"]).ask()[0]
        self.sweeper.validate_batch_is_legal([fixed + [as_override(k, v) for k, v in sample.params.items()]])
        if s.get("export_wandb"):
            from dlrunner.sweep.wandb_export import export

            path = Path(s["export_wandb"]).resolve()
            from dlrunner.sweep.wandb_export import caveats

            export(space, fixed, s, path)
            print(f"Wrote the W&B sweep configuration to {path}; run it with: wandb sweep {path}", flush=True)
            for note in caveats(s):
                print(f"note: {note}", flush=True)
            return None
        fixed += self._thread_limit(fixed)
        search = CoarseToFine(
            space,
            budget=s["budget"],
            rounds=s["rounds"],
            top_k=s["top_k"],
            margin=s["margin"],
            seed=s["seed"],
            method=s["method"],
            grid_points=s["grid_points"],
            minimize=s["direction"] == "minimize",
        )
        self.sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.sweeper.config, self.sweep_dir / "multirun.yaml")
        (self.sweep_dir / "space.json").write_text(
            json.dumps(
                {
                    name: {"kind": p.kind, **({"values": p.values} if p.kind == "choice" else {"lo": p.lo, "hi": p.hi})}
                    for name, p in space.items()
                },
                indent=2,
                default=str,
            )
        )
        done = {r["number"]: r for r in read_ledger(self.ledger_path)}
        if done:
            print(f"Resuming the sweep in {self.sweep_dir}: {len(done)} trials already done", flush=True)

        try:
            self._search(search, done, fixed)
        except (SystemExit, KeyboardInterrupt) as stop:  # KeyboardInterrupt: asked twice while workers trained
            code = getattr(stop, "code", 130)
            if code in (130, 143):  # Ctrl-C or SIGTERM
                print(
                    f"Interrupted. Rerun the same command (same hydra.sweep.dir={self.sweep_dir}) to resume the sweep.",
                    flush=True,
                )
            raise SystemExit(code) from None
        self._write_regions(search)
        from dlrunner.sweep.report import finish

        return finish(search, self.sweep_dir, self.settings)

    def _search(self, search, done: dict, fixed: list[str]) -> None:
        while not search.done:
            trials = search.ask()
            to_run = []
            for trial in trials:
                self._check_same_sweep(done.get(trial.number), trial, fixed)
                record = done.get(trial.number) or self._finished_in_folder(trial, fixed)
                if record is not None and record.get("params") == _jsonable(trial.params):
                    if trial.number not in done:
                        append_ledger(self.ledger_path, record)  # finished but never written: the sweep was killed
                    search.tell(trial.number, record["objective"], record["status"], record["eligible"])
                else:
                    to_run.append(trial)
            for chunk in _chunks(to_run, self._batch_size()):
                self._launch(chunk, fixed, search)
            self._check_failures(search)

    # ------------------------------------------------------------------ launching

    def _launch(self, chunk, fixed, search) -> None:
        batch = [self._trial_overrides(trial, fixed) for trial in chunk]
        self._validate(batch)
        # Trials are numbered across the whole sweep, so their folders keep their names on resume.
        for start, run in _contiguous(chunk):
            with self._stop_for_workers() as stop:
                returns = self.sweeper.launcher.launch([batch[chunk.index(t)] for t in run], initial_job_idx=start)
            if stop is not None and stop.received:  # the workers' trials stopped and wrote their summaries
                raise SystemExit(stop.exit_code)
            for trial, job in zip(run, returns):
                record = self._record(trial, job, fixed)
                append_ledger(self.ledger_path, record)
                search.tell(trial.number, record["objective"], record["status"], record["eligible"])

    def _stop_for_workers(self):
        """With joblib's worker processes, a stop signal is passed on to the workers and the pool is
        left to finish, so that every running trial writes its interrupted summary and checkpoint
        (joblib would kill them). Other launchers run trials in this process or their own way."""
        import contextlib

        if "joblib" not in str(self.sweeper.config.hydra.launcher.get("_target_", "")):
            return contextlib.nullcontext()
        from dlrunner.workers import ForwardedStop

        return ForwardedStop()

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

    def _record(self, trial, job, fixed) -> dict:
        """One ledger line, from the trial's summary.json (or from its exception if it wrote none)."""
        run_dir = self._run_dir(trial.number, job)
        summary = _read_summary(run_dir)
        status = summary.get("status", "failed")
        message = summary.get("message", "")
        if not summary:
            error = getattr(job, "_return_value", None)
            message = (
                f"{type(error).__name__}: {error}"
                if isinstance(error, BaseException)
                else "the trial wrote no summary.json"
            )
        objective = lookup(summary, self.settings["objective"]) if status == "completed" else None
        meets, constraint_values = check_constraints(summary, self.settings["constraints"])
        if status == "completed":
            self._check_paths(summary, objective, constraint_values)
        finite = isinstance(objective, (int, float)) and math.isfinite(objective)
        return {
            "number": trial.number,
            "round": trial.round,
            "params": _jsonable(trial.params),
            "status": status,
            "objective": objective if finite else None,
            "constraints": constraint_values,
            "eligible": bool(status == "completed" and finite and meets),
            "run_dir": str(run_dir),
            "verdict": lookup(summary, "diagnosis.verdict"),
            "message": message,
            "overrides": self._trial_overrides(trial, fixed),
        }

    def _check_same_sweep(self, record: dict | None, trial, fixed) -> None:
        """Resuming means the same command: a ledger written with other settings would mix two sweeps."""
        if record is None or record.get("overrides") == self._trial_overrides(trial, fixed):
            return
        before, now = set(record.get("overrides", [])), set(self._trial_overrides(trial, fixed))
        raise ConfigError(
            Problem(
                "hydra.sweep.dir",
                str(self.sweep_dir),
                f"holds a sweep run with other settings (trial {trial.number} was {sorted(before - now)}, "
                f"now {sorted(now - before)}); rerun the same command to resume it, or choose a new hydra.sweep.dir",
            )
        )

    def _trial_overrides(self, trial, fixed) -> list[str]:
        """The trial's sampled values, plus its place in the sweep for experiment trackers
        (W&B groups the trials under the sweep folder's name, with round and trial in the config)."""
        tracking = [f"logger.sweep_trial={trial.number}", f"logger.sweep_round={trial.round}"]
        if not any(o.startswith("logger.group=") for o in fixed):
            tracking.append(f"logger.group='{self.sweep_dir.name}'")
        return fixed + tracking + [as_override(k, v) for k, v in trial.params.items()]

    def _finished_in_folder(self, trial, fixed) -> dict | None:
        """A trial that finished (its summary.json is final) but was never written to the ledger."""
        run_dir = self.sweep_dir / str(trial.number)
        summary = _read_summary(run_dir)
        if summary.get("status") not in FINAL:
            return None

        class _Job:  # the record only needs the folder
            hydra_cfg = None

        record = self._record(trial, _Job(), fixed)
        saved = (
            OmegaConf.load(run_dir / ".hydra" / "overrides.yaml")
            if (run_dir / ".hydra" / "overrides.yaml").is_file()
            else []
        )
        return record if list(saved) == record["overrides"] else None

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
                    f"not a number in summary.json; numbers there: {known}",
                )
            )
        for text, value in constraint_values.items():
            if not isinstance(value, (int, float)):
                problems.append(
                    Problem(
                        "hydra.sweeper.constraints",
                        text,
                        f"its path is not a number in summary.json; numbers there: {known}",
                    )
                )
        if problems:
            raise ConfigError(problems)

    def _run_dir(self, number: int, job) -> Path:
        hydra_cfg = getattr(job, "hydra_cfg", None)
        if hydra_cfg is not None:
            return Path(hydra_cfg.hydra.runtime.output_dir)
        return self.sweep_dir / str(number)

    # ------------------------------------------------------------------ settings

    def _check_settings(self) -> None:
        s, problems = self.settings, []
        for key in ("budget", "rounds", "top_k", "grid_points"):
            if not isinstance(s[key], int) or s[key] < 1:
                problems.append(Problem(f"hydra.sweeper.{key}", s[key], "a whole number >= 1"))
        if s["method"] not in ("coarse_to_fine", "random", "grid"):
            problems.append(Problem("hydra.sweeper.method", s["method"], "coarse_to_fine, random or grid"))
        if s["direction"] not in ("minimize", "maximize"):
            problems.append(Problem("hydra.sweeper.direction", s["direction"], "minimize or maximize"))
        if not 0 <= s["max_failure_rate"] <= 1:
            problems.append(Problem("hydra.sweeper.max_failure_rate", s["max_failure_rate"], "a fraction in [0, 1]"))
        if s["margin"] < 0:
            problems.append(Problem("hydra.sweeper.margin", s["margin"], "a number >= 0"))
        launcher = self.sweeper.config.hydra.launcher
        if "stacked" in str(launcher.get("_target_", "")) and not (
            isinstance(launcher.get("max_stack"), int) and launcher.max_stack >= 1
        ):
            problems.append(
                Problem(
                    "hydra.launcher.max_stack",
                    launcher.get("max_stack"),
                    "a whole number >= 1: the most trials in one stack",
                )
            )
        for text in s["constraints"]:
            try:
                parse_constraint(text)
            except ValueError as err:
                problems.append(Problem("hydra.sweeper.constraints", text, str(err)))
        if problems:
            raise ConfigError(problems)

    def _parallelism(self) -> int:
        launcher = self.sweeper.config.hydra.launcher
        n_jobs = launcher.get("n_jobs") if "joblib" in str(launcher.get("_target_", "")) else None
        if n_jobs is None:
            return 1
        if n_jobs == 0:
            raise ConfigError(
                Problem("hydra.launcher.n_jobs", 0, "a number of parallel workers >= 1 (or -1 for one per core)")
            )
        return (os.cpu_count() or 1) if n_jobs < 0 else int(n_jobs)

    def _batch_size(self) -> int:
        """Trials per launch. The ledger is written after each launch, so keep it to the
        launcher's parallelism: a killed sweep then loses at most one batch of results."""
        if self.settings.get("max_batch_size"):
            return int(self.settings["max_batch_size"])
        if any(name in str(self.sweeper.config.hydra.launcher.get("_target_", "")) for name in ("submitit", "stacked")):
            return 10**9  # a cluster runs a whole round at once; a stack trains it at once
        return self._parallelism()

    def _thread_limit(self, fixed: list[str]) -> list[str]:
        """Parallel workers on one machine share its cores: give each worker its share of threads."""
        workers = self._parallelism()
        if workers <= 1 or any(o.startswith("trainer.threads=") for o in fixed):
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
        path = self.sweep_dir / "regions.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(
            json.dumps([{"round": i + 1, "region": r} for i, r in enumerate(search.regions)], indent=2, default=str)
        )
        os.replace(tmp, path)


def _read_summary(run_dir: Path) -> dict:
    try:
        return json.loads((run_dir / "summary.json").read_text())
    except (OSError, ValueError):
        return {}


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
