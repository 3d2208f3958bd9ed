"""Vanishing gradients on the adding problem (SPEC G): a vanilla RNN against GRU and LSTM.

    python scripts/adding_problem.py                      # lengths 20 and 100, about 3 minutes on 2 cores
    python scripts/adding_problem.py --lengths 10 50 150 --steps 2000

Each run is a real `dlrun train data=adding model=<cell> ...` (Adam 1e-2, batch 100, 32 hidden
units, gradient clipping at norm 1); its folder stays under --out. Always answering 1 scores a dev
MSE of 1/6 = 0.167: a model that has not found the two marked numbers stays there.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

BASELINE = 1 / 6  # MSE of always predicting the mean sum, 1


def dev_mse(cell: str, length: int, steps: int, out: Path) -> float:
    folder = out / f"{cell}-length{length}"
    if not (folder / "summary.json").is_file():
        dlrun = shutil.which("dlrun") or str(Path(sys.executable).parent / "dlrun")
        command = [
            dlrun,
            "train",
            "data=adding",
            f"data.source.length={length}",
            f"model={cell}",
            "model.hidden=32",
            "optimizer.lr=0.01",
            "optimizer.batch_size=100",
            f"trainer.steps={steps}",
            "trainer.eval_every=250",
            "regularization.grad_clip_norm=1.0",
            "trainer.progress=none",
            f"hydra.run.dir={folder}",
        ]
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            sys.exit(f"{' '.join(command)} failed:\n{result.stderr}")
    summary = json.loads((folder / "summary.json").read_text())
    return summary["metrics"]["dev"]["error"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[20, 100])
    parser.add_argument("--cells", nargs="+", default=["rnn", "gru", "lstm"], choices=["rnn", "gru", "lstm"])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=Path("outputs/adding_problem"))
    args = parser.parse_args()

    print(f"Adding problem, dev MSE after {args.steps} steps (always guessing 1: {BASELINE:.3f})\n")
    print("| length | " + " | ".join(args.cells) + " |")
    print("|---|" + "---|" * len(args.cells))
    for length in args.lengths:
        cells = [dev_mse(cell, length, args.steps, args.out) for cell in args.cells]
        marks = [f"{mse:.4f}" + (" (fails)" if mse > BASELINE / 2 else "") for mse in cells]
        print(f"| {length} | " + " | ".join(marks) + " |", flush=True)


if __name__ == "__main__":
    main()
