#!/usr/bin/env python
"""How many trials each search strategy needs on a real problem (measured, not asserted).

Problem: MNIST-1D, the MLP, the sweep `mlp_basic` (lr and lambda log-uniform, beta1 on a log
scale of 1 - beta, batch size a power of two, width a choice), each trial a short training run.
Strategies, each over several seeds with the same trial budget, all through the real commands:

  grid                dlrun sweep hydra.sweeper.method=grid (3 points per numeric axis, a seeded subset)
  random              dlrun sweep hydra.sweeper.method=random (log scales)
  coarse_to_fine_old  dlrun sweep with the sweep's settings (3 rounds, top 3)
  coarse_to_fine      dlrun sweep with the search's own defaults for the budget (rounds from
                      dlrunner.search.narrowing.default_rounds; growing rounds, exploration, no duplicates)
  optuna_tpe      dlrun train -m hydra/sweeper=optuna (hydra-optuna-sweeper, if installed;
                  optuna has no 1 - beta log scale, so beta1 is uniform there)

Reported: for each run, the number of trials until the best dev error so far is within
`--tolerance` (absolute, default 0.01 = one percentage point) of the best dev error any run found;
the median and the spread over seeds. Runs already finished in --out are read, not rerun.

    python scripts/bench_search.py --seeds 3 --budget 30 --steps 1000 --out outputs/bench-search
    python scripts/bench_search.py --in-process --seeds 5 --budget 25 --steps 500 --out outputs/bench-search-ip \\
        --strategies random,coarse_to_fine,optuna_tpe,coarse_to_fine_halving,optuna_tpe_hyperband

The --in-process run (~10 min on 2 cores) trains the same trials without a sweep process per run;
there coarse_to_fine_old is the previous algorithm itself (3 equal rounds around the top 3, no
exploration), Optuna's TPE runs through its ask/tell API, coarse_to_fine_halving is coarse to fine
with the sweep's successive halving (hydra.sweeper.pruner=halving: rungs at 1/9 and 1/3 of the
steps, rounded up, each trial evaluated every 1/9 of them), and optuna_tpe_hyperband is
TPE with Optuna's Hyperband pruner (the same first rung and reduction factor, told the dev error at
each evaluation). Each trial's steps trained and wall time (of the train call) are kept in
--out/<strategy>/seed<n>/trials.json; reported per strategy: the steps and wall time spent (shares
of the full trainings and of coarse_to_fine's wall time), and those spent until the best dev error
so far reached the median over seeds of coarse_to_fine's best (the quality without pruning).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import shutil
import statistics
import subprocess
from pathlib import Path

from dlrunner.search.narrowing import default_rounds

COMMON = ["data=mnist1d", "model=mlp", "trainer.device=cpu", "trainer.progress=none"]
OURS = {
    "grid": ["hydra.sweeper.method=grid", "hydra.sweeper.grid_points=3"],
    "random": ["hydra.sweeper.method=random"],
    "coarse_to_fine_old": ["hydra.sweeper.method=coarse_to_fine", "hydra.sweeper.rounds=3", "hydra.sweeper.top_k=3"],
    # The sweeper passes rounds and top_k explicitly, so the search's defaults are spelt out here.
    "coarse_to_fine": ["hydra.sweeper.method=coarse_to_fine", "hydra.sweeper.top_k=3"],
}
OPTUNA_SPACE = [
    "optimizer=adam",
    "regularization=l2",
    "optimizer.lr=tag(log, interval(1e-4, 1e-1))",
    "optimizer.beta1=interval(0.8, 0.999)",
    "regularization.l2=tag(log, interval(1e-3, 10))",
    "optimizer.batch_size=choice(32,64,128,256,512)",
    "model.layers=choice([32,32],[64,64],[128,128],[256,256])",
]


# --in-process: the same space and trainings, each trial composed and trained in this process
# (dlrunner.train.run.train), so that any search settings can be compared, the previous
# algorithm's included, and Optuna's TPE without hydra-optuna-sweeper.
LAYERS = ["[32,32]", "[64,64]", "[128,128]", "[256,256]"]
# The algorithm before issue 24
PREVIOUS = dict(rounds=3, top_k=3, top_share=0.0, explore=0.0, growth=1.0, stratified=False)


def mlp_basic_space() -> dict:
    from dlrunner.search import Choice, LogUniform, OneMinusLogUniform, Pow2

    return {
        "optimizer.lr": LogUniform(1e-4, 1e-1),
        "optimizer.beta1": OneMinusLogUniform(0.8, 0.999),
        "regularization.l2": LogUniform(1e-3, 10),
        "optimizer.batch_size": Pow2(32, 512),
        "model.layers": Choice(LAYERS),
    }


def train_in_process(params: dict, args, run_dir: Path, pruning=None) -> dict:
    """One trial, composed and trained in this process: {"params", "error": its last dev error (None
    if it failed), "status", "steps": the steps it trained, "seconds": the wall time of the train
    call}. With ``pruning`` (halving_pruning, optuna_pruning: what gives train() its pruner) the
    trial is evaluated every 1/9 of its steps, as a pruned sweep's trial is."""
    import time

    from rich.console import Console

    from dlrunner.cli.base import compose
    from dlrunner.train.run import train

    every = -(-args.steps // 9) if pruning else args.steps
    overrides = [*COMMON, f"trainer.steps={args.steps}", f"trainer.eval_every={every}"]
    overrides += ["optimizer=adam", "regularization=l2", *(f"{k}={v}" for k, v in params.items())]
    cfg = compose(overrides)
    with pruning or contextlib.nullcontext():
        start = time.perf_counter()
        summary = train(cfg, run_dir, Console(quiet=True))
        seconds = time.perf_counter() - start
    status = summary.get("status")
    error = summary["metrics"]["dev"]["error"] if status in ("completed", "pruned") else None
    steps = summary["timing"]["steps"]
    return {"params": params, "error": error, "status": status, "steps": steps, "seconds": round(seconds, 3)}


def counted(record: dict) -> float | None:
    """The dev error a trial counts with: a trial that failed or was pruned is never picked as best."""
    return record["error"] if record["status"] == "completed" else None


@contextlib.contextmanager
def halving_pruning(path: Path, number: int):
    """The sweep's successive halving, given to the trial as hydra.sweeper.pruner=halving gives it:
    the rung file and the trial's number in the environment (dlrunner.search.pruning.trial_pruner)."""
    import os

    from dlrunner.search.pruning import PRUNING_ENV, TRIAL_ENV

    os.environ[PRUNING_ENV] = json.dumps({"path": str(path), "reduction_factor": 3, "direction": "minimize"})
    os.environ[TRIAL_ENV] = str(number)
    try:
        yield
    finally:
        os.environ.pop(PRUNING_ENV, None)
        os.environ.pop(TRIAL_ENV, None)


class OptunaPruner:
    """An Optuna trial behind the interface dlrunner's training loop reports to at each evaluation
    (FitSettings.pruner, as search.pruning.TrialPruner): report(step, dev error) -> stop?, explain."""

    def __init__(self, trial, max_steps: int):
        self.trial, self.max_steps = trial, max_steps
        self.pruned_at = None

    def report(self, step: int, value: float) -> bool:
        if step >= self.max_steps:
            return False  # the trial has finished: stopping it now would save nothing (as TrialPruner)
        self.trial.report(value, step)
        if self.trial.should_prune():
            self.pruned_at = (step, value)
        return self.pruned_at is not None

    def explain(self, what: str = "objective") -> str:
        step, value = self.pruned_at
        return f"pruned by Optuna's {type(self.trial.study.pruner).__name__} at step {step}: {what} {value:.4g}"


@contextlib.contextmanager
def optuna_pruning(trial, max_steps: int):
    """Optuna's pruner for one trial. An in-process train() gets its pruner only from the
    environment, through dlrunner.search.pruning.trial_pruner (called by train.setup.sweep_pruner),
    which builds dlrunner's own halving; for this trial that function hands it an OptunaPruner instead."""
    from unittest import mock

    from dlrunner.search import pruning

    given = []

    def trial_pruner(environ, max_steps_, eval_every=1):
        given.append(OptunaPruner(trial, max_steps))
        return given[-1]

    with mock.patch.object(pruning, "trial_pruner", trial_pruner):
        yield
    if not given:
        raise RuntimeError("train() no longer asks dlrunner.search.pruning.trial_pruner for its pruner: fix this hook")


def run_optuna(seed: int, args, sweep_dir: Path, hyperband: bool) -> list[dict]:
    """Optuna's TPE through its ask/tell API; with ``hyperband`` its Hyperband pruner too (the first
    rung at the sweep halving's, reduction factor 3), told the dev error at each evaluation."""
    import optuna

    from dlrunner.search.pruning import default_min_steps

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    every = -(-args.steps // 9)
    pruner = (
        optuna.pruners.HyperbandPruner(
            min_resource=default_min_steps(args.steps, 3, every), max_resource=args.steps, reduction_factor=3
        )
        if hyperband
        else optuna.pruners.NopPruner()
    )
    # Hyperband puts a trial in a bracket by a hash of the study's name: named, a seed reruns the same.
    study = optuna.create_study(
        study_name=f"bench-search-{seed}", sampler=optuna.samplers.TPESampler(seed=seed), pruner=pruner
    )
    records = []
    for number in range(args.budget):
        trial = study.ask()
        params = {
            "optimizer.lr": trial.suggest_float("lr", 1e-4, 1e-1, log=True),
            # beta1 = 1 - 10^r, r uniform: the same 1 - beta log scale as dlrunner's
            "optimizer.beta1": 1 - 10 ** trial.suggest_float("r", -3, -math.log10(5)),
            "regularization.l2": trial.suggest_float("l2", 1e-3, 10, log=True),
            "optimizer.batch_size": trial.suggest_categorical("batch_size", [32, 64, 128, 256, 512]),
            "model.layers": trial.suggest_categorical("layers", LAYERS),
        }
        pruning = optuna_pruning(trial, args.steps) if hyperband else None
        record = train_in_process(params, args, sweep_dir / str(number), pruning)
        if record["status"] == "pruned":
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)  # its value: the last one reported
        else:
            study.tell(trial, counted(record) if counted(record) is not None else 1.0)
        records.append(record)
    return records


def run_in_process(name: str, seed: int, args, out: Path) -> list[dict]:
    """Each trial's record (train_in_process), in trial order; read from --out when already run."""
    sweep_dir = out / name / f"seed{seed}"
    cached = sweep_dir / "trials.json"
    if cached.exists():
        return json.loads(cached.read_text())
    if name in ("optuna_tpe", "optuna_tpe_hyperband"):
        records = run_optuna(seed, args, sweep_dir, hyperband=name == "optuna_tpe_hyperband")
    else:
        from dlrunner.search import CoarseToFine

        settings = {"random": dict(method="random"), "coarse_to_fine_old": PREVIOUS}.get(name, {})
        search = CoarseToFine(mlp_basic_space(), budget=args.budget, seed=seed, direction="minimize", **settings)
        records = []
        while not search.done:
            for trial in search.ask():
                pruning = None
                if name == "coarse_to_fine_halving":
                    pruning = halving_pruning(sweep_dir / "pruning.jsonl", trial.number)
                record = train_in_process(trial.params, args, sweep_dir / str(trial.number), pruning)
                if record["status"] in ("completed", "pruned") and record["error"] is not None:
                    pruned = record["status"] == "pruned"
                    search.tell(
                        trial.number, record["error"], status=record["status"], step=record["steps"] if pruned else None
                    )
                else:
                    search.tell(trial.number, None, status="failed")
                records.append(record)
    sweep_dir.mkdir(parents=True, exist_ok=True)
    cached.write_text(json.dumps(records, indent=1))
    return records


def run_strategy(name: str, seed: int, args, out: Path) -> list[float | None]:
    """Dev error of each trial, in trial order (None for a trial without a result)."""
    sweep_dir = out / name / f"seed{seed}"
    steps = [f"trainer.steps={args.steps}", f"trainer.eval_every={args.steps}"]
    if name in OURS:
        ledger = sweep_dir / "trials.jsonl"
        if not ledger.exists() or len(ledger.read_text().splitlines()) < args.budget:
            rounds = [f"hydra.sweeper.rounds={default_rounds(args.budget)}"] if name == "coarse_to_fine" else []
            command = [
                args.dlrun,
                "sweep",
                "sweep=mlp_basic",
                *COMMON,
                *steps,
                *OURS[name],
                *rounds,
                f"hydra.sweeper.budget={args.budget}",
                f"hydra.sweeper.seed={seed}",
                f"hydra.sweep.dir={sweep_dir}",
            ]
            subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        records = sorted(
            (json.loads(line) for line in ledger.read_text().splitlines() if line.strip()), key=lambda r: r["number"]
        )
        return [r["objective"] for r in records]
    if shutil.which(args.dlrun) is None and not Path(args.dlrun).exists():
        return []
    if not (sweep_dir / "optimization_results.yaml").exists():
        command = [
            args.dlrun,
            "train",
            "-m",
            "hydra/sweeper=optuna",
            *COMMON,
            *steps,
            *OPTUNA_SPACE,
            f"hydra.sweeper.n_trials={args.budget}",
            f"hydra.sweeper.sampler.seed={seed}",
            f"hydra.sweep.dir={sweep_dir}",
        ]
        if subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE).returncode != 0:
            print("optuna_tpe: skipped (install hydra-optuna-sweeper to include it)")
            return []
    values = []
    for number in range(args.budget):
        summary = sweep_dir / str(number) / "summary.json"
        values.append(json.loads(summary.read_text())["metrics"]["dev"]["error"] if summary.exists() else None)
    return values


def trials_to_reach(values: list[float | None], target: float) -> int | None:
    best = float("inf")
    for index, value in enumerate(values, start=1):
        if value is not None:
            best = min(best, value)
        if best <= target:
            return index
    return None


def spent_to_reach(records: list[dict], target: float) -> tuple[int, float | None] | None:
    """Training steps and wall time (None if not timed) spent until the best dev error so far was
    first <= target, that trial included; None if it never was."""
    index = trials_to_reach([counted(r) for r in records], target)
    if index is None:
        return None
    done = records[:index]
    seconds = None if any(r["seconds"] is None for r in done) else sum(r["seconds"] for r in done)
    return sum(r["steps"] for r in done), seconds


def median_reached(values: list[float | None]) -> float:
    """The median over runs, a run that never got there (None) counting as infinite."""
    return statistics.median(math.inf if v is None else v for v in values)


def mean_se(values: list[float]) -> str:
    se = statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.3f} ± {se:.3f}"


def share(value: float | None, of: float | None, unit: str = "") -> str:
    """A cell: the value and its share of ``of``; "never" for a median past the runs that got there."""
    if value is None or of is None:
        return "–"
    if math.isinf(value):
        return "never"
    return f"{value:.0f}{unit} ({value / of:.2f})"


def report_spent(runs: dict, args, results: dict) -> None:
    """Training steps and wall time spent, in all and until a target dev error: the median over
    seeds of the best dev error coarse to fine reaches at the full budget, without pruning."""
    full = args.budget * args.steps
    by_name = {}
    for (name, _), records in runs.items():
        by_name.setdefault(name, []).append(records)
    reference = by_name.get("coarse_to_fine")
    target = wall = None
    if reference is None:
        print("\n(no coarse_to_fine runs: no target dev error, no wall-time shares)")
    else:
        target = statistics.median(min(v for v in map(counted, records) if v is not None) for records in reference)
        wall = total_seconds(reference)
        print(
            f"\nTraining spent, and spent until the best dev error so far was <= {target:.4f} (the target: the "
            f"median over seeds of coarse_to_fine's best at {args.budget} trials, without pruning). Medians over "
            f"seeds, a run that never got there counting as infinite; in brackets, the share of {args.budget} "
            f"full trainings ({full} steps) and of coarse_to_fine's wall time ({wall or 0:.0f} s):\n"
        )
    print(
        "| strategy | steps spent | wall time spent | runs that reached the target | steps to the target "
        "| wall time to the target |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    for name, seeds in by_name.items():
        reached = [spent_to_reach(records, target) if target is not None else None for records in seeds]
        results[name].update(
            steps_spent=[sum(r["steps"] for r in records) for records in seeds],
            seconds_spent=[total_seconds([records]) for records in seeds],
            steps_to_target=[r and r[0] for r in reached],
            seconds_to_target=[r and r[1] for r in reached],
        )
        steps, seconds = results[name]["steps_spent"], results[name]["seconds_spent"]
        wall_spent = None if None in seconds else statistics.median(seconds)
        to_steps = median_reached(results[name]["steps_to_target"]) if target is not None else None
        to_wall = median_reached(results[name]["seconds_to_target"]) if wall_spent is not None else None
        print(
            f"| {name} | {share(statistics.median(steps), full)} | {share(wall_spent, wall, ' s')} "
            f"| {sum(r is not None for r in reached)} of {len(reached)} "
            f"| {share(to_steps, full)} | {share(to_wall, wall, ' s')} |"
        )
    print("\nPer seed (steps spent; wall time spent, s; steps to the target; wall time to the target, s):\n")
    for name in by_name:
        cells = [
            " ".join("–" if v is None else f"{v:.0f}" for v in results[name][key])
            for key in ("steps_spent", "seconds_spent", "steps_to_target", "seconds_to_target")
        ]
        print(f"- {name}: " + "; ".join(cells))
    results["quality_target"] = target
    if wall is None:
        return
    print("\nWhere the wall time went (all seeds' trials together):\n")
    print("| strategy | trials trained to the end | their median wall time | their share of the wall time |")
    print("| --- | --- | --- | --- |")
    for name, seeds in by_name.items():
        trials = [r for records in seeds for r in records]
        full_ones = [r["seconds"] for r in trials if r["steps"] >= args.steps]
        shown = f"{statistics.median(full_ones):.2f} s" if full_ones else "–"
        spent = sum(full_ones) / sum(r["seconds"] for r in trials)
        print(f"| {name} | {len(full_ones)} of {len(trials)} | {shown} | {spent:.2f} |")


def total_seconds(runs: list[list[dict]]) -> float | None:
    """The median over runs of their trials' total wall time; None if a trial was not timed."""
    totals = [[r["seconds"] for r in records] for records in runs]
    return None if any(None in t for t in totals) else statistics.median(sum(t) for t in totals)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--budget", type=int, default=30)
    parser.add_argument("--steps", type=int, default=1000, help="training steps per trial")
    parser.add_argument("--tolerance", type=float, default=0.01)
    parser.add_argument("--strategies", default="grid,random,coarse_to_fine_old,coarse_to_fine,optuna_tpe")
    parser.add_argument(
        "--dlrun", default="dlrun", help="the dlrun executable (e.g. one in a venv with hydra-optuna-sweeper)"
    )
    parser.add_argument("--out", type=Path, default=Path("outputs/bench-search"))
    parser.add_argument(
        "--in-process",
        action="store_true",
        help="train each trial in this process (random, coarse_to_fine_old = the previous algorithm, "
        "coarse_to_fine, optuna_tpe without hydra-optuna-sweeper, coarse_to_fine_halving, optuna_tpe_hyperband)",
    )
    args = parser.parse_args()

    runs = {}
    for name in args.strategies.split(","):
        for seed in range(args.seeds):
            if args.in_process:
                records = run_in_process(name, seed, args, args.out)
            else:  # each trial trained to the end; not timed
                records = [
                    {"error": v, "status": "failed" if v is None else "completed", "steps": args.steps, "seconds": None}
                    for v in run_strategy(name, seed, args, args.out)
                ]
            if records:
                runs[(name, seed)] = records
                best = min(v for v in map(counted, records) if v is not None)
                print(f"{name:15s} seed {seed}: best dev error {best:.4f}", flush=True)
    curves = {key: [counted(r) for r in records] for key, records in runs.items()}
    best = min(v for values in curves.values() for v in values if v is not None)
    target = best + args.tolerance
    print(
        f"\nBest dev error found by any run: {best:.4f}; target: <= {target:.4f} "
        f"({args.budget} trials per run, {args.steps} steps per trial)\n"
    )
    print("| strategy | trials to reach the target, per seed | median | best dev error, per seed |")
    print("| --- | --- | --- | --- |")
    results = {}
    for name in dict.fromkeys(n for n, _ in curves):
        reached = [trials_to_reach(curves[(name, s)], target) for s in range(args.seeds) if (name, s) in curves]
        bests = [min(v for v in curves[(name, s)] if v is not None) for s in range(args.seeds) if (name, s) in curves]
        # A run that never reached the target counts as budget + 1 for the median.
        median = statistics.median(r if r is not None else args.budget + 1 for r in reached)
        shown = ", ".join(str(r) if r is not None else f">{args.budget}" for r in reached)
        print(f"| {name} | {shown} | {median:g} | {', '.join(f'{b:.3f}' for b in bests)} |")
        results[name] = {"trials_to_target": reached, "median": median, "best_per_seed": bests}
    checkpoints = sorted({n for n in (5, 10, 20, 30, args.budget) if n <= args.budget})
    print("\nBest dev error found after n trials (median over seeds; mean ± s.e.):\n")
    print("| strategy | " + " | ".join(f"n = {n}" for n in checkpoints) + " |")
    print("| --- | " + " | ".join("---" for _ in checkpoints) + " |")
    for name in results:
        cells = []
        for n in checkpoints:
            bests = [
                min([v for v in curves[(name, s)][:n] if v is not None] or [float("nan")])
                for s in range(args.seeds)
                if (name, s) in curves
            ]
            cells.append(f"{statistics.median(bests):.3f}; {mean_se(bests)}")
            results[name][f"best_after_{n}"] = bests
        print(f"| {name} | " + " | ".join(cells) + " |")
    report_spent(runs, args, results)
    (args.out / "results.json").write_text(
        json.dumps(
            {"best": best, "target": target, "args": {k: str(v) for k, v in vars(args).items()}, "results": results},
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
