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
    python scripts/bench_search.py --in-process --seeds 3 --budget 25 --steps 500 \\
        --strategies random,coarse_to_fine_old,coarse_to_fine,optuna_tpe --out outputs/bench-search-ip

The --in-process run (~10 min on 2 cores) trains the same trials without a sweep process per run;
there coarse_to_fine_old is the previous algorithm itself (3 equal rounds around the top 3, no
exploration), Optuna's TPE runs through its ask/tell API, and coarse_to_fine_halving is coarse to
fine with the sweep's successive halving (hydra.sweeper.pruner=halving: rungs at 1/9 and 1/3 of
the steps, each trial evaluated every 1/9 of them), for which the training steps spent are reported.
"""

from __future__ import annotations

import argparse
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


def train_in_process(params: dict, args, run_dir: Path, pruning: tuple[Path, int] | None = None):
    """The trial's dev error (None if it failed); with ``pruning`` (the rung file, the trial's number)
    the trial reports to the sweep's successive halving as a pruned sweep's trial does, and the
    result is (dev error, status, steps trained)."""
    import os

    from rich.console import Console

    from dlrunner.cli.base import compose
    from dlrunner.search.pruning import PRUNING_ENV, TRIAL_ENV
    from dlrunner.train.run import train

    every = max(1, args.steps // 9) if pruning else args.steps
    overrides = [*COMMON, f"trainer.steps={args.steps}", f"trainer.eval_every={every}"]
    overrides += ["optimizer=adam", "regularization=l2", *(f"{k}={v}" for k, v in params.items())]
    if pruning:
        os.environ[PRUNING_ENV] = json.dumps({"path": str(pruning[0]), "reduction_factor": 3, "direction": "minimize"})
        os.environ[TRIAL_ENV] = str(pruning[1])
    try:
        summary = train(compose(overrides), run_dir, Console(quiet=True))
    finally:
        os.environ.pop(PRUNING_ENV, None)
        os.environ.pop(TRIAL_ENV, None)
    status = summary.get("status")
    error = summary["metrics"]["dev"]["error"] if status in ("completed", "pruned") else None
    if not pruning:
        return error if status == "completed" else None
    return error, status, summary["timing"]["steps"]


def run_in_process(name: str, seed: int, args, out: Path) -> list[float | None]:
    sweep_dir = out / name / f"seed{seed}"
    cached = sweep_dir / "values.json"
    if cached.exists():
        return json.loads(cached.read_text())
    values = []
    if name == "optuna_tpe":
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=seed))
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
            value = train_in_process(params, args, sweep_dir / str(number))
            study.tell(trial, value if value is not None else 1.0)
            values.append(value)
    elif name == "coarse_to_fine_halving":
        from dlrunner.search import CoarseToFine

        search = CoarseToFine(mlp_basic_space(), budget=args.budget, seed=seed, direction="minimize")
        steps = []
        while not search.done:
            for trial in search.ask():
                pruning = (sweep_dir / "pruning.jsonl", trial.number)
                value, status, trained = train_in_process(trial.params, args, sweep_dir / str(trial.number), pruning)
                status = status if value is not None else "failed"
                search.tell(trial.number, value, status=status, step=trained if status == "pruned" else None)
                values.append(value if status == "completed" else None)  # a pruned trial is never picked
                steps.append(trained)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        (sweep_dir / "steps.json").write_text(json.dumps(steps))
    else:
        from dlrunner.search import CoarseToFine

        settings = {"random": dict(method="random"), "coarse_to_fine_old": PREVIOUS, "coarse_to_fine": {}}[name]
        search = CoarseToFine(mlp_basic_space(), budget=args.budget, seed=seed, direction="minimize", **settings)
        while not search.done:
            for trial in search.ask():
                value = train_in_process(trial.params, args, sweep_dir / str(trial.number))
                search.tell(trial.number, value, status="completed" if value is not None else "failed")
                values.append(value)
    sweep_dir.mkdir(parents=True, exist_ok=True)
    cached.write_text(json.dumps(values))
    return values


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
        "coarse_to_fine, optuna_tpe without hydra-optuna-sweeper)",
    )
    args = parser.parse_args()

    curves = {}
    for name in args.strategies.split(","):
        for seed in range(args.seeds):
            values = (run_in_process if args.in_process else run_strategy)(name, seed, args, args.out)
            if values:
                curves[(name, seed)] = values
                print(
                    f"{name:15s} seed {seed}: best dev error {min(v for v in values if v is not None):.4f}", flush=True
                )
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
    print("\nBest dev error found after n trials (median over seeds):\n")
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
            cells.append(f"{statistics.median(bests):.3f}")
            results[name][f"best_after_{n}"] = bests
        print(f"| {name} | " + " | ".join(cells) + " |")
    spent = {}
    for name in results:
        per_seed = []
        for seed in range(args.seeds):
            path = args.out / name / f"seed{seed}" / "steps.json"
            per_seed.append(sum(json.loads(path.read_text())) if path.exists() else args.budget * args.steps)
        spent[name] = statistics.median(per_seed) / (args.budget * args.steps)
    print("\nTraining steps spent, share of every trial trained to the end (median over seeds):\n")
    print("| strategy | steps spent |")
    print("| --- | --- |")
    for name, share in spent.items():
        print(f"| {name} | {share:.2f} |")
    (args.out / "results.json").write_text(
        json.dumps(
            {"best": best, "target": target, "args": {k: str(v) for k, v in vars(args).items()}, "results": results},
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
