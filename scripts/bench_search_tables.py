#!/usr/bin/env python
"""The MLP tables of the tabular search benchmark (scripts/bench_search_tabular.py), built locally.

No public HPO benchmark on PyPI ships its tables in the wheel: HPOBench, YAHPO Gym, HPOlib
(hpolib-extractor), JAHS-Bench and mf-prior-bench all download their data (tables or surrogate
models) at run time. So this script builds tables of the same kind -- HPOBench's MLP tables: one
validation accuracy per configuration of learning rate, L2, batch size, width and depth, per seed,
with the learning curve at a few epochs -- on data sets that do ship in a wheel: scikit-learn's
digits, breast cancer and wine, and one seeded synthetic problem (make_classification).

Each configuration is an MLP (ReLU, Adam, softmax cross-entropy, L2 on the weights) trained for
27 epochs with numpy; all learning rates and L2 values of one (batch, width, depth, seed) are
trained at once as a batch of independent models. Valid accuracy is recorded at epochs 1, 3, 9
and 27 (the rungs of successive halving with reduction factor 3).

    python scripts/bench_search_tables.py --out outputs/bench-search-tabular   # ~8 min on 1 core
"""

from __future__ import annotations

import argparse
import itertools
import os
import time
from pathlib import Path

# Tiny matrices: BLAS threads only contend (4x slower on a busy 2-core machine). Set before numpy loads.
for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

import numpy as np  # noqa: E402

LR = 10.0 ** np.arange(-4.0, 0.01, 0.5)  # 1e-4 .. 1, half decades
L2 = 10.0 ** np.arange(-5.0, -0.99, 1.0)  # 1e-5 .. 1e-1
BATCH = [32, 64, 128, 256]
WIDTH = [16, 32, 64, 128]
DEPTH = [1, 2]
EPOCHS_AT = [1, 3, 9, 27]
SEEDS = 2
DATASETS = ("digits", "breast_cancer", "wine", "synthetic")


def load(name: str):
    from sklearn import datasets

    if name == "synthetic":
        x, y = datasets.make_classification(
            n_samples=1500, n_features=20, n_informative=8, n_classes=3, flip_y=0.05, random_state=0
        )
    else:
        x, y = getattr(datasets, f"load_{name}")(return_X_y=True)
    order = np.random.default_rng(0).permutation(len(y))
    x, y = x[order].astype(np.float32), y[order]
    cut = int(0.7 * len(y))
    mean, std = x[:cut].mean(0), x[:cut].std(0) + 1e-6
    x = (x - mean) / std
    return x[:cut], y[:cut], x[cut:], y[cut:]


def train_group(x, y, xv, yv, batch, width, depth, seed):
    """Valid accuracy of every (lr, l2) at EPOCHS_AT: shape (len(LR), len(L2), len(EPOCHS_AT))."""
    rng = np.random.default_rng(seed)
    classes = int(max(y.max(), yv.max()) + 1)
    lr = np.repeat(LR, len(L2)).astype(np.float32)[:, None, None]
    l2 = np.tile(L2, len(LR)).astype(np.float32)[:, None, None]
    models = len(LR) * len(L2)
    sizes = [x.shape[1]] + [width] * depth + [classes]
    weights = [
        (rng.standard_normal((models, fan_in, fan_out)) * np.sqrt(2.0 / fan_in)).astype(np.float32)
        for fan_in, fan_out in itertools.pairwise(sizes)
    ]
    biases = [np.zeros((models, 1, b), np.float32) for b in sizes[1:]]
    params = weights + biases
    first = [np.zeros_like(p) for p in params]
    second = [np.zeros_like(p) for p in params]
    onehot = np.eye(classes, dtype=np.float32)
    curve, step = [], 0
    for epoch in range(1, EPOCHS_AT[-1] + 1):
        order = rng.permutation(len(y))
        for start in range(0, len(y) - batch + 1, batch):
            index = order[start : start + batch]
            acts = [np.broadcast_to(x[index], (models, batch, x.shape[1]))]
            for layer, (w, b) in enumerate(zip(weights, biases)):
                z = acts[-1] @ w + b
                acts.append(np.maximum(z, 0) if layer < depth else z)
            logits = acts[-1] - acts[-1].max(-1, keepdims=True)
            probs = np.exp(logits)
            probs /= probs.sum(-1, keepdims=True)
            delta = (probs - onehot[y[index]]) / batch
            grads_w, grads_b = [None] * len(weights), [None] * len(biases)
            for layer in range(len(weights) - 1, -1, -1):
                grads_w[layer] = acts[layer].transpose(0, 2, 1) @ delta + l2 * weights[layer]
                grads_b[layer] = delta.sum(1, keepdims=True)
                if layer:
                    delta = (delta @ weights[layer].transpose(0, 2, 1)) * (acts[layer] > 0)
            step += 1
            for p, g, m, v in zip(params, grads_w + grads_b, first, second):
                m *= 0.9
                m += 0.1 * g
                v *= 0.999
                v += 0.001 * g * g
                p -= lr * (m / (1 - 0.9**step)) / (np.sqrt(v / (1 - 0.999**step)) + 1e-8)
        if epoch in EPOCHS_AT:
            h = np.broadcast_to(xv, (models, *xv.shape))
            for layer, (w, b) in enumerate(zip(weights, biases)):
                h = h @ w + b
                h = np.maximum(h, 0) if layer < depth else h
            with np.errstate(invalid="ignore"):
                predicted = np.nan_to_num(h, nan=-np.inf).argmax(-1)
            curve.append((predicted == yv).mean(-1))
    return np.stack(curve, -1).reshape(len(LR), len(L2), len(EPOCHS_AT))


def build(name: str, out: Path) -> Path:
    path = out / f"table-{name}.npz"
    if path.exists():
        return path
    x, y, xv, yv = load(name)
    table = np.zeros((len(LR), len(L2), len(BATCH), len(WIDTH), len(DEPTH), SEEDS, len(EPOCHS_AT)), np.float32)
    started = time.perf_counter()
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        for i, batch in enumerate(BATCH):
            for j, width in enumerate(WIDTH):
                for k, depth in enumerate(DEPTH):
                    for seed in range(SEEDS):
                        table[:, :, i, j, k, seed] = train_group(x, y, xv, yv, batch, width, depth, seed)
    steps = np.array([len(y) // b for b in BATCH])  # optimizer steps per epoch, per batch size
    out.mkdir(parents=True, exist_ok=True)
    np.savez(path, table=table, lr=LR, l2=L2, batch=BATCH, width=WIDTH, depth=DEPTH, epochs=EPOCHS_AT, steps=steps)
    took = time.perf_counter() - started
    print(f"{name}: {table[..., -1].mean(-1).max():.4f} best mean valid accuracy ({took:.0f} s)")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("outputs/bench-search-tabular"))
    parser.add_argument("--datasets", default=",".join(DATASETS))
    args = parser.parse_args()
    for name in args.datasets.split(","):
        build(name, args.out)


if __name__ == "__main__":
    main()
