#!/usr/bin/env python
"""Search strategies side by side on tabular MLP benchmarks: regret at 25, 50, 100 and 200 trials.

Each data set's table (scripts/bench_search_tables.py builds them: learning rate, L2, batch size,
width and depth of an MLP, several training seeds per configuration, valid accuracy at epochs 1, 3,
9 and 27) is the objective. A trial sees the valid accuracy of one training seed (drawn per trial:
the noise a real sweep sees); the regret of a search is that of the configuration it would pick
(its best observed trial), measured on the seed-averaged accuracy, in % of the table's best.
Continuous proposals are snapped to the table's nearest point in their search coordinate.

Strategies: random (log scales), coarse to fine with the previous defaults (3 equal rounds, top 3,
no exploration), coarse to fine with the new defaults, Optuna TPE (defaults).
With --pruning: coarse to fine with successive halving (dlrunner.search.pruning: min_steps 3 of
27 epochs, reduction factor 3, so rungs at epochs 3 and 9) and Optuna TPE with its Hyperband
pruner (min_resource 3, reduction factor 3); reported as regret, the share of training epochs
spent, and the training spent until the pick's regret reached --target.

    python scripts/bench_search_tables.py                  # once: the tables (~10 min on 1 core)
    python scripts/bench_search_tabular.py --seeds 10 --pruning    # ~10 min, Optuna's TPE most of it
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import time
from pathlib import Path

import numpy as np

from dlrunner.search import CoarseToFine, IntUniform, LogUniform, Pow2
from dlrunner.search.pruning import SuccessiveHalving

BUDGETS = (25, 50, 100, 200)
SPACE = {
    "lr": LogUniform(1e-4, 1.0),
    "l2": LogUniform(1e-5, 1e-1),
    "batch": Pow2(32, 256),
    "width": Pow2(16, 128),
    "depth": IntUniform(1, 2),
}
OLD = dict(rounds=3, top_k=3, top_share=0.0, explore=0.0, growth=1.0)


class Table:
    def __init__(self, path: Path):
        data = np.load(path)
        self.table = data["table"]  # lr, l2, batch, width, depth, seed, epoch
        self.axes = [np.log10(data["lr"]), np.log10(data["l2"]), data["batch"], data["width"], data["depth"]]
        self.epochs = [int(e) for e in data["epochs"]]
        self.mean = self.table[..., -1].mean(-1)
        self.best = float(self.mean.max())

    def index(self, params: dict) -> tuple:
        values = [math.log10(params["lr"]), math.log10(params["l2"]), params["batch"], params["width"], params["depth"]]
        return tuple(int(np.abs(axis - v).argmin()) for axis, v in zip(self.axes, values))

    def observe(self, params: dict, rng: random.Random, rung: int = -1) -> float:
        return float(self.table[(*self.index(params), rng.randrange(self.table.shape[5]), rung)])

    def regret(self, params: dict) -> float:
        return 100.0 * (self.best - float(self.mean[self.index(params)])) / self.best


def run_ours(table: Table, budget: int, seed: int, settings: dict, pruner: dict | None = None):
    """Regret after each trial count in BUDGETS <= budget, and the epochs spent."""
    search = CoarseToFine(dict(SPACE), budget=budget, seed=seed, direction="maximize", **settings)
    halving = SuccessiveHalving(**pruner, direction="maximize") if pruner else None
    history, epochs = [], 0
    while not search.done:
        for trial in search.ask():
            rng = random.Random(f"{seed}/{trial.number}/noise")
            seed_index = rng.randrange(table.table.shape[5])
            value, status, step = None, "completed", None
            for rung, epoch in enumerate(table.epochs):
                value = float(table.table[(*table.index(trial.params), seed_index, rung)])
                if halving and halving.report(trial.number, epoch, value) == "prune":
                    status, step = "pruned", epoch
                    break
            epochs += step or table.epochs[-1]
            search.tell(trial.number, value, status=status, step=step)
            trial.spent = epochs
            history.append(trial)
    return history, epochs


def regrets(table: Table, history: list, maximize: bool = True) -> dict:
    out = {}
    for budget in BUDGETS:
        done = [t for t in history[:budget] if t.status == "completed"]
        if len(history) >= budget and done:
            pick = max(done, key=lambda t: t.value if maximize else -t.value)
            out[budget] = table.regret(pick.params)
    return out


class _Done:
    def __init__(self, params, value, status, spent):
        self.params, self.value, self.status, self.spent = params, value, status, spent


def epochs_to_target(table: Table, history: list, target: float) -> float:
    """Training epochs spent until the configuration a search would pick has regret <= target (inf: never)."""
    best = None
    for trial in history:
        if trial.status == "completed" and (best is None or trial.value > best.value):
            best = trial
        if best is not None and table.regret(best.params) <= target:
            return trial.spent
    return math.inf


def run_tpe(table: Table, budget: int, seed: int, hyperband: bool = False):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    pruner = (
        optuna.pruners.HyperbandPruner(min_resource=3, max_resource=table.epochs[-1], reduction_factor=3)
        if hyperband
        else optuna.pruners.NopPruner()
    )
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed), pruner=pruner)
    history, epochs = [], 0

    def objective(trial):
        nonlocal epochs
        params = {
            "lr": trial.suggest_float("lr", 1e-4, 1.0, log=True),
            "l2": trial.suggest_float("l2", 1e-5, 1e-1, log=True),
            "batch": trial.suggest_int("batch", 32, 256, log=True),
            "width": trial.suggest_int("width", 16, 128, log=True),
            "depth": trial.suggest_int("depth", 1, 2),
        }
        params["batch"] = SPACE["batch"].from_u(math.log2(params["batch"]))  # nearest power of two
        params["width"] = SPACE["width"].from_u(math.log2(params["width"]))
        rng = random.Random(f"{seed}/{trial.number}/noise")
        seed_index = rng.randrange(table.table.shape[5])
        for rung, epoch in enumerate(table.epochs):
            value = float(table.table[(*table.index(params), seed_index, rung)])
            trial.report(value, epoch)
            if trial.should_prune():
                epochs += epoch
                history.append(_Done(params, value, "pruned", epochs))
                raise optuna.TrialPruned()
        epochs += table.epochs[-1]
        history.append(_Done(params, value, "completed", epochs))
        return value

    study.optimize(objective, n_trials=budget)
    return history, epochs


def run_strategy(strategy: str, table: Table, seed: int, pruner: dict) -> tuple[dict, list]:
    """Regret per budget, and the 200-trial run's history (for the training it spent)."""
    if strategy in ("random", "optuna_tpe", "optuna_tpe+hyperband"):
        # Anytime strategies: one run of 200 trials gives every budget.
        if strategy == "random":
            history, _ = run_ours(table, max(BUDGETS), seed, dict(method="random"))
        else:
            history, _ = run_tpe(table, max(BUDGETS), seed, hyperband="hyperband" in strategy)
        return regrets(table, history), history
    settings = OLD if strategy == "coarse_to_fine_old" else {}
    out = {}
    for budget in BUDGETS:
        history, _ = run_ours(table, budget, seed, settings, pruner if strategy.endswith("halving") else None)
        out[budget] = regrets(table, history)[budget]
    return out, history


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tables", type=Path, default=Path("outputs/bench-search-tabular"))
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--strategies", default="random,coarse_to_fine_old,coarse_to_fine,optuna_tpe")
    parser.add_argument("--pruning", action="store_true", help="also the pruned searches")
    parser.add_argument("--target", type=float, default=1.0, help="regret (%%) for the training-to-target column")
    args = parser.parse_args()
    tables = {p.stem.removeprefix("table-"): Table(p) for p in sorted(args.tables.glob("table-*.npz"))}
    if not tables:
        raise SystemExit(f"no tables in {args.tables}: run scripts/bench_search_tables.py first")
    strategies = args.strategies.split(",")
    pruner = dict(min_steps=3, max_steps=27, reduction_factor=3)  # rungs at epochs 3 and 9
    if args.pruning:
        strategies += ["coarse_to_fine+halving", "optuna_tpe+hyperband"]
    results = {s: {b: [] for b in BUDGETS} for s in strategies}
    spent, reach = {s: [] for s in strategies}, {s: [] for s in strategies}
    started = time.perf_counter()
    for name, table in tables.items():
        for seed in range(args.seeds):
            for strategy in strategies:
                regret, history = run_strategy(strategy, table, seed, pruner)
                for budget, value in regret.items():
                    results[strategy][budget].append(value)
                full = table.epochs[-1]  # epochs of one trial trained to the end
                spent[strategy].append(history[-1].spent / (len(history) * full))
                reach[strategy].append(epochs_to_target(table, history, args.target) / full)
        print(f"{name}: done ({time.perf_counter() - started:.0f} s)", flush=True)
    print(
        f"\nMean regret of the configuration picked, in % of the best seed-averaged valid accuracy "
        f"({len(tables)} data sets x {args.seeds} seeds: {', '.join(tables)}):\n"
    )
    print("| strategy | " + " | ".join(f"{b} trials" for b in BUDGETS) + " |")
    print("| --- | " + " | ".join("---" for _ in BUDGETS) + " |")
    for strategy in strategies:
        cells = [f"{statistics.mean(results[strategy][b]):.3f}" for b in BUDGETS]
        print(f"| {strategy} | " + " | ".join(cells) + " |")
    print(
        f"\nTraining spent (200-trial runs), in full trainings of {table.epochs[-1]} epochs: the share of "
        f"200 spent, and the median spent until the pick's regret was <= {args.target}% (runs that got there):\n"
    )
    print("| strategy | share of the epochs of 200 full trainings | full trainings to the target | reached |")
    print("| --- | --- | --- | --- |")
    for strategy in strategies:
        got = [r for r in reach[strategy] if math.isfinite(r)]
        median = f"{statistics.median(got):.1f}" if got else "-"
        print(
            f"| {strategy} | {statistics.mean(spent[strategy]):.2f} | {median} | {len(got)} of {len(reach[strategy])} |"
        )
    print("\nPer data set (mean regret %, 25 / 50 / 100 / 200 trials):\n")
    per = args.seeds
    for index, name in enumerate(tables):
        row = []
        for strategy in strategies:
            cells = [statistics.mean(results[strategy][b][index * per : (index + 1) * per]) for b in BUDGETS]
            row.append(f"{strategy} " + "/".join(f"{c:.2f}" for c in cells))
        print(f"- {name}: " + "; ".join(row))


if __name__ == "__main__":
    main()
