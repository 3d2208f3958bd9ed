#!/usr/bin/env python
"""Many-seed comparison of the search strategies on a surrogate of the real problem.

The real benchmark (scripts/bench_search.py) trains a network per trial, so it affords few seeds,
and each dev error carries about 1.5 points of sampling noise. This script fits a smooth
surrogate (inverse-distance k-nearest-neighbour regression in each parameter's search
coordinate) to every trial that benchmark ran, then runs each strategy of dlrunner.search on the
surrogate with many seeds in seconds. It measures the search logic, not training; the real
benchmark remains the reference.

    python scripts/bench_search_surrogate.py --runs outputs/bench-search --seeds 100
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from pathlib import Path

import numpy as np

from dlrunner.search import Choice, CoarseToFine, LogUniform, OneMinusLogUniform, Pow2

LAYERS = ["[32,32]", "[64,64]", "[128,128]", "[256,256]"]
SPACE = {
    "optimizer.lr": LogUniform(1e-4, 1e-1),
    "optimizer.beta1": OneMinusLogUniform(0.8, 0.999),
    "regularization.l2": LogUniform(1e-3, 10),
    "optimizer.batch_size": Pow2(32, 512),
    "model.layers": Choice(LAYERS),
}
STRATEGIES = {
    "grid": dict(method="grid", grid_points=3),
    "random": dict(method="random"),
    "coarse_to_fine": dict(method="coarse_to_fine", rounds=3, top_k=3),
}


def coordinates(params: dict) -> np.ndarray:
    return np.array(
        [
            math.log10(params["optimizer.lr"]),
            math.log10(1 - params["optimizer.beta1"]),
            math.log10(params["regularization.l2"]),
            math.log2(params["optimizer.batch_size"]),
            LAYERS.index(str(params["model.layers"]).replace(" ", "")),
        ]
    )


def load_trials(runs: Path) -> tuple[np.ndarray, np.ndarray]:
    points, errors = [], []
    for path in runs.glob("*/seed*/*/summary.json"):
        summary = json.loads(path.read_text())
        config = summary["config"]
        points.append(
            coordinates(
                {
                    "optimizer.lr": config["optimizer"]["lr"],
                    "optimizer.beta1": config["optimizer"]["beta1"],
                    "regularization.l2": config["regularization"]["l2"],
                    "optimizer.batch_size": config["optimizer"]["batch_size"],
                    "model.layers": config["model"]["layers"],
                }
            )
        )
        errors.append(summary["metrics"]["dev"]["error"])
    return np.array(points), np.array(errors)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--runs", type=Path, default=Path("outputs/bench-search"), help="the --out folder of bench_search.py"
    )
    parser.add_argument("--seeds", type=int, default=100)
    parser.add_argument("--budget", type=int, default=30)
    parser.add_argument("--neighbours", type=int, default=4)
    args = parser.parse_args()

    points, errors = load_trials(args.runs)
    scale = points.std(axis=0)

    def surrogate(params: dict) -> float:
        distance = np.sqrt((((points - coordinates(params)) / scale) ** 2).sum(axis=1))
        nearest = np.argsort(distance)[: args.neighbours]
        weights = 1 / (distance[nearest] + 0.3)
        return float((errors[nearest] * weights).sum() / weights.sum())

    print(
        f"Surrogate fitted to {len(errors)} real trials (best real dev error {errors.min():.3f}); "
        f"{args.seeds} seeds, {args.budget} trials each.\n"
    )
    checkpoints = [n for n in (10, 20, args.budget) if n <= args.budget]
    print("| strategy | " + " | ".join(f"median best after {n}" for n in checkpoints) + " | mean best |")
    print("| --- | " + " | ".join("---" for _ in checkpoints) + " | --- |")
    for name, settings in STRATEGIES.items():
        curves = []
        for seed in range(args.seeds):
            search = CoarseToFine(dict(SPACE), budget=args.budget, seed=seed, direction="minimize", **settings)
            while not search.done:
                for trial in search.ask():
                    search.tell(trial.number, surrogate(trial.params))
            values = [t.value for t in search.trials]
            curves.append([min(values[:n]) for n in checkpoints])
        medians = [statistics.median(c[i] for c in curves) for i in range(len(checkpoints))]
        print(
            f"| {name} | "
            + " | ".join(f"{m:.3f}" for m in medians)
            + f" | {statistics.mean(c[-1] for c in curves):.3f} |"
        )


if __name__ == "__main__":
    main()
