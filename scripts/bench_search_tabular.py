#!/usr/bin/env python
"""Search strategies side by side on tabular MLP benchmarks: regret at 25, 50, 100 and 200 trials.

Each data set's table (scripts/bench_search_tables.py builds them: learning rate, L2, batch size,
width and depth of an MLP, several training seeds per configuration, valid accuracy at epochs 1, 3,
9 and 27) is the objective. A trial sees the valid accuracy of one training seed (drawn per trial:
the noise a real sweep sees); the regret of a search is that of the configuration it would pick
(its best observed trial), measured on the seed-averaged accuracy, in % of the table's best.
Continuous proposals are snapped to the table's nearest point in their search coordinate.

Strategies: random (log scales), coarse to fine as it first was (3 equal rounds, top 3, no
exploration), coarse to fine with the defaults before stratified rounds (rounds growing 1.5x, 30%
exploring, independent draws; --strategies coarse_to_fine_iid), coarse to fine with the current
defaults, Optuna TPE (defaults). Every strategy is also compared with the current defaults paired:
the mean difference on the same data sets and seeds.
With --pruning: coarse to fine with successive halving (dlrunner.search.pruning: --min-steps 3 of
27 epochs, --reduction-factor 3, so rungs at epochs 3 and 9) and Optuna TPE with its Hyperband
pruner (min_resource 3, reduction factor 3); reported as regret, the share of training epochs
spent, and the training spent until the pick's regret reached --target.

    python scripts/bench_search_tables.py                  # once: the tables (~10 min on 1 core)
    python scripts/bench_search_tabular.py --seeds 100 --jobs 2    # Optuna's runs once (~15 min), then ~30 s
    python scripts/bench_search_tabular.py --seeds 50 --pruning --strategies coarse_to_fine,optuna_tpe
    python scripts/bench_search_tabular.py --seeds 200 --budgets 12,500 --strategies random,coarse_to_fine

Optuna's runs do not depend on dlrunner's code: their histories are kept in --cache (a JSON file
next to the tables, keyed by strategy, data set, table file, seed and Optuna's version), so a
rerun after a change to dlrunner.search takes seconds. Means come with their standard error
(over data sets x seeds, the data sets as strata).
"""

from __future__ import annotations

import argparse
import hashlib
import json
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
OLD = dict(rounds=3, top_k=3, top_share=0.0, explore=0.0, growth=1.0, stratified=False)
IID = dict(growth=1.5, explore=0.3, stratified=False)  # the defaults before stratified rounds


class Table:
    def __init__(self, path: Path):
        self.path, self.name = path, path.stem.removeprefix("table-")
        self.digest = hashlib.sha1(path.read_bytes()).hexdigest()[:12]  # a rebuilt table is another table
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


def _history_to_json(history: list) -> list:
    return [[t.params, t.value, t.status, t.spent] for t in history]


def _history_from_json(rows: list) -> list:
    return [_Done(params, value, status, spent) for params, value, status, spent in rows]


def _reference_key(strategy: str, table: Table, seed: int) -> str:
    import optuna

    return f"{strategy}|{table.name}|{table.digest}|seed {seed}|{max(BUDGETS)} trials|optuna {optuna.__version__}"


def _reference_job(job: tuple) -> tuple[str, list]:
    strategy, path, seed = job
    table = Table(path)
    history, _ = run_tpe(table, max(BUDGETS), seed, hyperband="hyperband" in strategy)
    return _reference_key(strategy, table, seed), _history_to_json(history)


def fill_cache(cache: Path, tables: dict, seeds: int, strategies: list, jobs: int) -> dict:
    """Optuna's histories, from the cache or run now (in ``jobs`` processes) and added to it."""
    stored = json.loads(cache.read_text()) if cache.exists() else {}
    todo = [
        (strategy, table.path, seed)
        for strategy in strategies
        if strategy.startswith("optuna")
        for table in tables.values()
        for seed in range(seeds)
        if _reference_key(strategy, table, seed) not in stored
    ]
    if todo:
        print(f"running {len(todo)} Optuna searches of {max(BUDGETS)} trials (kept in {cache}) ...", flush=True)
        started = time.perf_counter()
        if jobs > 1:
            from concurrent.futures import ProcessPoolExecutor

            with ProcessPoolExecutor(jobs) as pool:
                done = pool.map(_reference_job, todo)
                for index, (key, rows) in enumerate(done, 1):
                    stored[key] = rows
                    if index % 10 == 0:  # keep what is done: an interrupted fill resumes from here
                        cache.write_text(json.dumps(stored))
        else:
            for index, job in enumerate(todo, 1):
                key, rows = _reference_job(job)
                stored[key] = rows
                if index % 10 == 0:
                    cache.write_text(json.dumps(stored))
        cache.write_text(json.dumps(stored))
        print(f"... done ({time.perf_counter() - started:.0f} s)", flush=True)
    return stored


def run_strategy(strategy: str, table: Table, seed: int, pruner: dict, cache: dict) -> tuple[dict, list]:
    """Regret per budget, and the largest budget's history (for the training it spent)."""
    if strategy in ("random", "optuna_tpe", "optuna_tpe+hyperband"):
        # Anytime strategies: one run of 200 trials gives every budget.
        if strategy == "random":
            history, _ = run_ours(table, max(BUDGETS), seed, dict(method="random"))
        else:
            history = _history_from_json(cache[_reference_key(strategy, table, seed)])
        return regrets(table, history), history
    settings = {"coarse_to_fine_old": OLD, "coarse_to_fine_iid": IID}.get(strategy, {})
    out = {}
    for budget in BUDGETS:
        history, _ = run_ours(table, budget, seed, settings, pruner if strategy.endswith("halving") else None)
        out[budget] = regrets(table, history)[budget]
    return out, history


def mean_se(per_set: list[list[float]]) -> tuple[float, float]:
    """The mean over data sets of each data set's mean, and its standard error (data sets as strata:
    their differences are not noise, the seeds within each are)."""
    means = [statistics.mean(values) for values in per_set]
    variances = [statistics.variance(values) / len(values) if len(values) > 1 else 0.0 for values in per_set]
    return statistics.mean(means), math.sqrt(sum(variances)) / len(per_set)


def cell(per_set: list[list[float]]) -> str:
    mean, se = mean_se(per_set)
    return f"{mean:.3f} ± {se:.3f}"


def signed(per_set: list[list[float]]) -> str:
    mean, se = mean_se(per_set)
    return f"{mean:+.3f} ± {se:.3f}"


def equal_training(tables: dict, seeds: int, pruner: dict, budgets: list[int], unpruned: dict) -> None:
    """Coarse to fine with halving at larger trial budgets: the training it spends for the regret the
    unpruned search reaches at 25, 50, 100 and 200 trials (the target: <= 0.5x)."""
    full = max(table.epochs[-1] for table in tables.values())
    points = []  # (budget, trainings spent, per-set regrets)
    for budget in budgets:
        per_set, spent = [], []
        for table in tables.values():
            values = []
            for seed in range(seeds):
                history, epochs = run_ours(table, budget, seed, {}, pruner)
                done = [t for t in history if t.status == "completed"]
                values.append(table.regret(max(done, key=lambda t: t.value).params))
                spent.append(epochs / full)
            per_set.append(values)
        points.append((budget, statistics.mean(spent), per_set))
    print("\nCoarse to fine + successive halving at larger trial budgets (mean over runs):\n")
    print("| trials | full trainings spent | regret % |")
    print("| --- | --- | --- |")
    for budget, spent, per_set in points:
        print(f"| {budget} | {spent:.1f} | {cell(per_set)} |")
    print("\nTraining for the same regret as coarse to fine without pruning (linear between the budgets above):\n")
    print("| unpruned trials (= full trainings) | its regret % | halving needs (full trainings) | ratio |")
    print("| --- | --- | --- | --- |")
    curve = [(spent, mean_se(per_set)[0]) for _, spent, per_set in points]
    for budget, per_set in unpruned.items():
        goal = mean_se(per_set)[0]
        need, bound = None, ""
        for (s0, r0), (s1, r1) in zip([(0.0, math.inf), *curve], curve):
            if r1 <= goal:
                # Already there at the smallest budget measured: at most that much.
                need, bound = (s1, "≤ ") if not math.isfinite(r0) else (s0 + (s1 - s0) * (r0 - goal) / (r0 - r1), "")
                break
        shown = f"{bound}{need:.1f} | {bound}{need / budget:.2f}" if need is not None else f"> {curve[-1][0]:.1f} | -"
        print(f"| {budget} | {goal:.3f} | {shown} |")


def main() -> None:
    global BUDGETS
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tables", type=Path, default=Path("outputs/bench-search-tabular"))
    parser.add_argument("--cache", type=Path, help="Optuna's histories (default: TABLES/optuna-runs.json)")
    parser.add_argument("--jobs", type=int, default=1, help="processes for the Optuna runs not yet in the cache")
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument(
        "--budgets", default=",".join(map(str, BUDGETS)), help="trial counts (Optuna's runs are kept per largest)"
    )
    parser.add_argument("--strategies", default="random,coarse_to_fine_old,coarse_to_fine,optuna_tpe")
    parser.add_argument("--pruning", action="store_true", help="also the pruned searches")
    parser.add_argument(
        "--pruned-budgets", default="100,200,300,400,600", help="trial budgets of the equal-training comparison"
    )
    parser.add_argument("--min-steps", type=int, default=3, help="successive halving's first rung (epochs)")
    parser.add_argument("--reduction-factor", type=int, default=3, help="successive halving keeps 1/this at a rung")
    parser.add_argument("--target", type=float, default=1.0, help="regret (%%) for the training-to-target column")
    args = parser.parse_args()
    BUDGETS = tuple(sorted(int(b) for b in args.budgets.split(",")))
    tables = {p.stem.removeprefix("table-"): Table(p) for p in sorted(args.tables.glob("table-*.npz"))}
    if not tables:
        raise SystemExit(f"no tables in {args.tables}: run scripts/bench_search_tables.py first")
    strategies = args.strategies.split(",")
    # By default rungs at epochs 3 and 9 (of 27)
    pruner = dict(min_steps=args.min_steps, max_steps=27, reduction_factor=args.reduction_factor)
    if args.pruning:
        strategies += ["coarse_to_fine+halving", "optuna_tpe+hyperband"]
    cache = fill_cache(args.cache or args.tables / "optuna-runs.json", tables, args.seeds, strategies, args.jobs)
    # results[strategy][budget][data set index] -> regrets over seeds
    results = {s: {b: [[] for _ in tables] for b in BUDGETS} for s in strategies}
    spent, reach = {s: [] for s in strategies}, {s: [] for s in strategies}
    started = time.perf_counter()
    for index, (name, table) in enumerate(tables.items()):
        for seed in range(args.seeds):
            for strategy in strategies:
                regret, history = run_strategy(strategy, table, seed, pruner, cache)
                for budget, value in regret.items():
                    results[strategy][budget][index].append(value)
                full = table.epochs[-1]  # epochs of one trial trained to the end
                spent[strategy].append(history[-1].spent / (len(history) * full))
                reach[strategy].append(epochs_to_target(table, history, args.target) / full)
        print(f"{name}: done ({time.perf_counter() - started:.0f} s)", flush=True)
    print(
        f"\nMean regret of the configuration picked, in % of the best seed-averaged valid accuracy, ± its "
        f"standard error ({len(tables)} data sets x {args.seeds} seeds: {', '.join(tables)}):\n"
    )
    print("| strategy | " + " | ".join(f"{b} trials" for b in BUDGETS) + " |")
    print("| --- | " + " | ".join("---" for _ in BUDGETS) + " |")
    for strategy in strategies:
        print(f"| {strategy} | " + " | ".join(cell(results[strategy][b]) for b in BUDGETS) + " |")
    if "coarse_to_fine" in strategies and len(strategies) > 1:
        print("\nPaired: each strategy's regret minus coarse to fine's (the same data sets and seeds), ± s.e.:\n")
        print("| strategy | " + " | ".join(f"{b} trials" for b in BUDGETS) + " |")
        print("| --- | " + " | ".join("---" for _ in BUDGETS) + " |")
        for strategy in strategies:
            if strategy != "coarse_to_fine":
                cells = []
                for b in BUDGETS:
                    pairs = zip(results[strategy][b], results["coarse_to_fine"][b])
                    cells.append(signed([[x - y for x, y in zip(mine, ours)] for mine, ours in pairs]))
                print(f"| {strategy} | " + " | ".join(cells) + " |")
    if "optuna_tpe" in strategies:
        print("\nData sets where each strategy's mean is <= Optuna TPE's, per budget:\n")
        for strategy in strategies:
            counts = [
                sum(
                    statistics.mean(mine) <= statistics.mean(tpe)
                    for mine, tpe in zip(results[strategy][b], results["optuna_tpe"][b])
                )
                for b in BUDGETS
            ]
            print(f"- {strategy}: " + " / ".join(f"{c} of {len(tables)}" for c in counts))
    top = max(BUDGETS)
    print(
        f"\nTraining spent ({top}-trial runs), in full trainings of {table.epochs[-1]} epochs: the share of "
        f"{top} spent, and the median spent until the pick's regret was <= {args.target}% (runs that got there):\n"
    )
    print(f"| strategy | share of the epochs of {top} full trainings | full trainings to the target | reached |")
    print("| --- | --- | --- | --- |")
    for strategy in strategies:
        got = [r for r in reach[strategy] if math.isfinite(r)]
        median = f"{statistics.median(got):.1f}" if got else "-"
        print(
            f"| {strategy} | {statistics.mean(spent[strategy]):.2f} | {median} | {len(got)} of {len(reach[strategy])} |"
        )
    print(f"\nPer data set (mean regret % ± s.e., {' / '.join(map(str, BUDGETS))} trials):\n")
    print("| data set | strategy | " + " | ".join(f"{b}" for b in BUDGETS) + " |")
    print("| --- | --- | " + " | ".join("---" for _ in BUDGETS) + " |")
    for index, name in enumerate(tables):
        for strategy in strategies:
            cells = [cell([results[strategy][b][index]]) for b in BUDGETS]
            print(f"| {name} | {strategy} | " + " | ".join(cells) + " |")
    if args.pruning:
        unpruned = {b: results["coarse_to_fine"][b] for b in BUDGETS} if "coarse_to_fine" in strategies else {}
        budgets = [int(b) for b in args.pruned_budgets.split(",")]
        equal_training(tables, args.seeds, pruner, budgets, unpruned)


if __name__ == "__main__":
    main()
