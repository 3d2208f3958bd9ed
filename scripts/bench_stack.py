#!/usr/bin/env python
"""Caviar on one device: K trials trained as one stack against the same K trials one at a time (issue 8).

For each model (the 2x100 MLP, `model=mlp`, and the 1-D CNN, `experiment=mnist1d_cnn`) on
MNIST-1D and each K: K trials that differ in their learning rate (log-spaced from 1e-3 to 3e-2;
Adam, batch 100, --steps steps, evaluation every 250 steps), trained

  solo     one after another in this process, each through `dlrunner.train.run.train` (what
           a 1-worker sweep does per trial, in a warm worker): the first --solo-trials of
           them are trained and timed, and the solo rate is steps / their median time
  stacked  all K at once through `dlrunner.stack.train.train_stacked` (what
           hydra/launcher=stacked does), timed from the call to the last trial's files; on
           several threads with enough rows, as one stack per core in a process of its own
           (dlrunner.stack.processes)

With --one-process the same stack is also timed kept in one process on every thread (the form
before dlrunner.stack.processes), alternated with the split one. With --busy N, N processes spin
on the CPU for the whole measurement: a machine that other work keeps busy.

Reported: trial-steps per second of each, their ratio (stacked / solo), and the largest
difference between a stacked trial's final dev error and its solo run's (the same training,
up to floating-point rounding), over the trials trained both ways.

With --sweep-budget N it also runs whole sweeps through the real command, `dlrun sweep sweep=lr
... hydra.sweeper.budget=N` in one random round, with the basic launcher (one trial at a time),
the joblib launcher with 2 workers, and hydra/launcher=stacked, and reports trials per minute of
each (process start to exit, so every overhead is in).

    python scripts/bench_stack.py                           # K = 4, 16, 64; 1000 steps; MLP and CNN
    python scripts/bench_stack.py --ks 4 --steps 50 --models mlp --solo-trials 2 --repeats 1   # smoke test
    python scripts/bench_stack.py --ks 16 --sweep-budget 16                # and whole sweeps of 16 trials
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_train import machine, positive_int

MODELS = {"mlp": ["model=mlp"], "cnn": ["experiment=mnist1d_cnn", "trainer.eval_test=false"]}
TARGET = 3.0  # at K = 16 for the MLP on a 2-core CPU


def learning_rates(k: int) -> list[float]:
    return [1e-3 * 30 ** (i / max(1, k - 1)) for i in range(k)]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--ks", default="4,16,64", help="stack sizes, comma-separated")
    p.add_argument("--steps", type=positive_int, default=1000)
    p.add_argument("--models", default="mlp,cnn")
    p.add_argument(
        "--solo-trials",
        type=positive_int,
        default=6,
        help="solo trials actually trained per (model, K) to time the solo rate",
    )
    p.add_argument(
        "--repeats",
        type=positive_int,
        default=3,
        metavar="N",
        help="stacked-then-solo rounds per (model, K); medians are reported",
    )
    p.add_argument("--device", default="cpu")
    p.add_argument(
        "--one-process",
        action="store_true",
        help="also time each stack kept in one process on every thread, alternated with the split one",
    )
    p.add_argument("--busy", type=int, default=0, metavar="N", help="N processes spin on the CPU meanwhile")
    p.add_argument("--sweep-budget", type=int, default=0, help="also time whole `dlrun sweep` runs of this many trials")
    p.add_argument(
        "--pruning",
        action="store_true",
        help="with --sweep-budget: each launcher also with hydra.sweeper.pruner=halving (and the best dev error found)",
    )
    p.add_argument(
        "--launchers",
        default=",".join(LAUNCHERS),
        help=f"with --sweep-budget: which of {', '.join(LAUNCHERS)} (comma-separated)",
    )
    args = p.parse_args()

    from rich.console import Console

    from dlrunner.cli import compose
    from dlrunner.stack.train import train_stacked
    from dlrunner.train.run import train

    quiet = Console(quiet=True)
    rows = []
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.busy)]
    try:
        measure(args, quiet, rows, compose, train_stacked, train)
    finally:
        for spinner in spinners:
            spinner.kill()
    report(args, rows)


def one_process_stack(train_stacked, *args):
    """``train_stacked`` with the stack kept in one process on every thread."""
    import dlrunner.stack.train as stack_train

    split = stack_train.process_shares
    stack_train.process_shares = lambda *_: None
    try:
        return train_stacked(*args)
    finally:
        stack_train.process_shares = split


def measure(args, quiet, rows, compose, train_stacked, train) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-stack-") as tmp:
        # Warm both paths first, as in a sweep worker that has run a trial: the first torch optimizer
        # imports torch._dynamo (~1 s) and vmap builds its batching rules once.
        warm = [
            compose([*MODELS[m.strip()], "trainer.steps=2", "trainer.progress=none", f"optimizer.lr={lr}"])
            for m in args.models.split(",")
            for lr in (0.01, 0.02)
        ]
        for i in range(0, len(warm), 2):
            train_stacked(warm[i : i + 2], [Path(tmp) / f"warm-{i}-{j}" for j in range(2)], quiet)
            train(warm[i], Path(tmp) / f"warm-solo-{i}", quiet)
        for model in [m.strip() for m in args.models.split(",")]:
            for k in [int(v) for v in args.ks.split(",")]:
                common = [
                    *MODELS[model],
                    f"trainer.steps={args.steps}",
                    "trainer.eval_every=250",
                    "trainer.progress=none",
                    f"trainer.device={args.device}",
                ]
                cfgs = [compose([*common, f"optimizer.lr={lr}"]) for lr in learning_rates(k)]
                solo_rates, stacked_rates, ratios, differences, one_process_rates = [], [], [], [], []
                # stacked, then its solo trials, in turn: a noisy machine's slow spells hit both
                for repeat in range(args.repeats):
                    folder = Path(tmp) / f"{model}-{k}-{repeat}"
                    started = time.perf_counter()
                    stacked = train_stacked(cfgs, [folder / f"stacked-{i}" for i in range(k)], quiet)
                    stacked_rates.append(k * args.steps / (time.perf_counter() - started))
                    if args.one_process:
                        started = time.perf_counter()
                        one_process_stack(train_stacked, cfgs, [folder / f"one-{i}" for i in range(k)], quiet)
                        one_process_rates.append(k * args.steps / (time.perf_counter() - started))
                    solo_times = []
                    for i in range(min(k, args.solo_trials)):
                        started = time.perf_counter()
                        solo = train(cfgs[i], folder / f"solo-{i}", quiet)
                        solo_times.append(time.perf_counter() - started)
                        differences.append(abs(solo["metrics"]["dev"]["error"] - stacked[i]["metrics"]["dev"]["error"]))
                    solo_rates.append(args.steps / statistics.median(solo_times))
                    ratios.append(stacked_rates[-1] / solo_rates[-1])
                    shutil.rmtree(folder, ignore_errors=True)
                timed = min(k, args.solo_trials)
                rows.append((model, k, solo_rates, stacked_rates, ratios, max(differences), timed, one_process_rates))
                print(
                    f"{model} K={k}: solo {statistics.median(solo_rates):.0f}, "
                    f"stacked {statistics.median(stacked_rates):.0f} "
                    f"trial-steps/s, ratio {statistics.median(ratios):.2f}",
                    file=sys.stderr,
                    flush=True,
                )


def report(args, rows) -> None:
    one_process = "| one-process stack trial-steps/s | stacked / one-process stack " if args.one_process else ""
    out = [
        "",
        f"## Stacked trials vs one at a time: MNIST-1D, Adam, batch 100, {args.steps} steps per trial, eval every 250",
        "",
        "```",
        machine("(in-process: dlrunner.train.run.train and dlrunner.stack.train.train_stacked)"),
        "```",
        "",
        (
            "| model | K | solo trial-steps/s | stacked trial-steps/s | stacked / solo: median (min–max) "
            f"| max dev-error difference | solo trials timed per repeat {one_process}|"
        ),
        "| --- " * (9 if args.one_process else 7) + "|",
    ]
    for model, k, solo, stacked, ratios, diff, timed, one in rows:
        ratio = statistics.median(ratios)
        mark = f" ({'PASS' if ratio >= TARGET else 'MISS'} ≥ {TARGET:g})" if (model, k) == ("mlp", 16) else ""
        out.append(
            f"| {model} | {k} | {statistics.median(solo):.0f} | {statistics.median(stacked):.0f} | "
            f"{ratio:.2f} ({min(ratios):.2f}–{max(ratios):.2f}){mark} | {diff:.3f} | {timed} |"
            + (f" {statistics.median(one):.0f} | {_ratios(stacked, one)} |" if one else "")
        )
    out += [
        "",
        "Solo: steps / median wall time of one trial trained by itself (data, model, loop, files); "
        "stacked: K x steps / wall time of the whole stack (data, K models, loop, every trial's files). "
        f"Each of {args.repeats} repeat(s) times the stack, then its solo trials; the ratio is taken per repeat, "
        "rates and ratios are medians over the repeats."
        + (f" {args.busy} other process(es) spun on the CPU throughout." if args.busy else ""),
    ]
    if args.sweep_budget:
        out += sweep_table(args)
    print("\n".join(out))


def _ratios(a: list[float], b: list[float]) -> str:
    ratios = [x / y for x, y in zip(a, b)]
    return f"{statistics.median(ratios):.2f} ({min(ratios):.2f}–{max(ratios):.2f})"


LAUNCHERS = {
    "basic (1 at a time)": [],
    "joblib, 2 workers": ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"],
    "stacked": ["hydra/launcher=stacked"],
    "stacked 8 rows": ["hydra/launcher=stacked", "hydra.launcher.max_stack=8"],  # the rest wait for a row
}
HALVING = ["hydra.sweeper.pruner=halving"]  # --pruning: each launcher again with successive halving


def sweep_table(args) -> list[str]:
    """Trials per minute of whole `dlrun sweep` runs with each launcher (and, with --pruning, with
    successive halving too: the best dev error found, and the training steps the trials took)."""
    beside = Path(sys.executable).parent / "dlrun"
    dlrun = str(beside) if beside.exists() else shutil.which("dlrun")
    launchers = {name: LAUNCHERS[name] for name in (n.strip() for n in args.launchers.split(","))}
    runs, unpruned = {}, {}  # name: overrides; a pruned run's name: its launcher's unpruned run
    for name, launcher in launchers.items():
        runs[name] = launcher
        if args.pruning:
            runs[f"{name} + halving"], unpruned[f"{name} + halving"] = [*launcher, *HALVING], name
    out = [
        "",
        f"Whole sweeps: `dlrun sweep sweep=lr ... hydra.sweeper.budget={args.sweep_budget}`, one random round, "
        f"{args.steps} steps per trial, process start to exit:",
        "",
        "| model | launcher | wall (s) | trials per minute | speed-up | best dev error | training steps |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    with tempfile.TemporaryDirectory(prefix="bench-stack-sweep-") as tmp:
        for model in [m.strip() for m in args.models.split(",")]:
            walls, found = {}, {}
            for name, launcher in runs.items():
                sweep_dir = Path(tmp) / f"{model}-{len(walls)}"
                command = [
                    dlrun,
                    "sweep",
                    "sweep=lr",
                    *MODELS[model],
                    f"trainer.steps={args.steps}",
                    "trainer.eval_every=250",
                    f"trainer.device={args.device}",
                    f"hydra.sweeper.budget={args.sweep_budget}",
                    "hydra.sweeper.rounds=1",
                    "hydra.sweeper.method=random",
                    *launcher,
                    f"hydra.sweep.dir={sweep_dir}",
                ]
                started = time.perf_counter()
                done = subprocess.run(command, capture_output=True, text=True, cwd=tmp)
                walls[name] = time.perf_counter() - started
                if done.returncode != 0:
                    raise SystemExit(f"failed: {' '.join(command)}\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
                found[name] = sweep_outcome(sweep_dir)
                print(f"sweep {model} {name}: {walls[name]:.1f} s", file=sys.stderr, flush=True)
            first = next(iter(walls))
            for name, wall in walls.items():
                best, steps = found[name]
                against = unpruned.get(name, first)
                out.append(
                    f"| {model} | {name} | {wall:.1f} | {args.sweep_budget / wall * 60:.1f} | "
                    f"{walls[against] / wall:.2f} (vs {against}) | {best:.4f} | {steps} |"
                )
    return out


def sweep_outcome(sweep_dir: Path) -> tuple[float, int]:
    """The best dev error among the trials trained to the end, and the steps all trials took."""
    best, steps = float("inf"), 0
    for summary_path in sweep_dir.glob("*/summary.json"):
        summary = json.loads(summary_path.read_text())
        steps += summary["timing"]["steps"]
        if summary["status"] == "completed":
            best = min(best, summary["metrics"]["dev"]["error"])
    return best, steps


if __name__ == "__main__":
    main()
