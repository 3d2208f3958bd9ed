#!/usr/bin/env python
"""Parallel sweeps on the clock: `dlrun sweep` with 1 and 2 joblib workers, timed as a user runs it.

The command of issue 24 (item 5), each time a fresh process timed from start to exit:

    dlrun sweep sweep=lr hydra/launcher=joblib hydra.launcher.n_jobs=N hydra.sweeper.budget=B \
        hydra.sweeper.rounds=1 trainer.steps=S hydra.sweep.dir=...

for each --sweeps B x S and N = 1, 2; for each --src (a name=folder put first on PYTHONPATH, so
that two versions of dlrunner are timed in the same run, e.g. main's code against a branch), all
alternating within each of --repeats repeats (the order rotates from repeat to repeat).

Measured, medians over the repeats:
  sweep wall          the `dlrun sweep` process, start to exit
  speed-up            1-worker wall / 2-worker wall, paired within a repeat (target >= 1.7)
  after the last      the last trial's summary.json write to the process's exit (the report,
  trial (s)           the workers' shutdown)
  per-trial overhead  in the 1-worker sweep (its trials run one after another in one warm process):
                      the time between consecutive trials' summary.json writes, minus the later
                      trial's training time (summary.json timing.train_s): the ledger line, the
                      next launch, Hydra's job set-up, data and model, the final evaluation, files
  the machine's own   (--ceiling) the hand-written loop of scripts/bench_train.py (1 thread,
  ceiling             the larger sweep's steps) alone and as two processes at once (they meet at a
                      barrier after their imports): the pair's summed steps/s over the lone loop's.

    python scripts/bench_sweep.py --src before=/work/main/src --src after=src --repeats 5
    python scripts/bench_sweep.py --sweeps 4x100 --repeats 1            # quick look
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from itertools import pairwise
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_train
from bench_train import machine, positive_int, stats

TARGETS = {"speedup": ("≥ 1.7", lambda r: r >= 1.7), "overhead": ("≤ 0.5 s", lambda s: s <= 0.5)}


def run_sweep(dlrun: str, folder: Path, jobs: int, budget: int, steps: int, src: str | None) -> dict:
    sweep_dir = folder / f"sweep-{jobs}"
    command = [
        dlrun,
        "sweep",
        "sweep=lr",
        "hydra/launcher=joblib",
        f"hydra.launcher.n_jobs={jobs}",
        f"hydra.sweeper.budget={budget}",
        "hydra.sweeper.rounds=1",
        f"trainer.steps={steps}",
        f"hydra.sweep.dir={sweep_dir}",
    ]
    env = dict(os.environ)
    if src:
        env["PYTHONPATH"] = os.pathsep.join([str(Path(src).resolve()), *filter(None, [env.get("PYTHONPATH")])])
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, cwd=folder, env=env)
    wall = time.perf_counter() - started
    ended = time.time()
    if done.returncode != 0:
        raise SystemExit(
            f"failed ({done.returncode}): {' '.join(command)}\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
        )
    trials = [json.loads(line) for line in (sweep_dir / "trials.jsonl").read_text().splitlines() if line.strip()]
    assert len(trials) == budget and all(t["status"] == "completed" for t in trials), trials
    finished = []  # (time summary.json was written, training seconds), in the order the trials finished
    for trial in trials:
        summary = Path(trial["run_dir"]) / "summary.json"
        finished.append((summary.stat().st_mtime_ns / 1e9, json.loads(summary.read_text())["timing"]["train_s"]))
    finished.sort()
    overheads = [later - earlier - train_s for (earlier, _), (later, train_s) in pairwise(finished)]
    shutil.rmtree(sweep_dir, ignore_errors=True)
    return {
        "wall": wall,
        "tail": ended - finished[-1][0],
        "overhead": statistics.median(overheads) if overheads else 0.0,
        "train_s": statistics.median(t for _, t in finished),
    }


def hand_loop_rates(work: Path, steps: int, copies: int) -> list[float]:
    """Steps per second of `copies` hand-written loops trained together (each its own process; they
    meet at a barrier after their imports, so their training overlaps from the first step)."""
    barrier = Path(tempfile.mkdtemp(prefix="barrier-", dir=work.parent))
    command = [
        sys.executable,
        bench_train.__file__,
        "--inner",
        "hand",
        "--work",
        str(work),
        "--steps",
        str(steps),
        "--eval-every",
        "250",
        "--barrier",
        str(barrier),
        "--parties",
        str(copies),
    ]
    procs = [subprocess.Popen(command, stdout=subprocess.PIPE, text=True) for _ in range(copies)]
    outputs = [proc.communicate()[0] for proc in procs]
    if any(proc.returncode for proc in procs):
        raise SystemExit(f"failed: {' '.join(command)}")
    return [json.loads(text.strip().splitlines()[-1])["steps_per_s"] for text in outputs]


def parse_sweeps(text: str) -> list[tuple[int, int]]:
    try:
        sweeps = [tuple(int(n) for n in part.lower().split("x")) for part in text.split(",")]
    except ValueError:
        sweeps = []
    if not sweeps or any(len(s) != 2 or min(s) < 1 for s in sweeps):
        raise argparse.ArgumentTypeError(f"{text!r}: BUDGETxSTEPS[,BUDGETxSTEPS...], e.g. 12x1500,24x3000")
    return sweeps


def parse_src(text: str) -> tuple[str, str]:
    name, _, folder = text.partition("=")
    if not name or not folder or not Path(folder).is_dir():
        raise argparse.ArgumentTypeError(f"{text!r}: NAME=FOLDER, a folder that holds the dlrunner package")
    return name, folder


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sweeps", type=parse_sweeps, default=parse_sweeps("12x1500,24x3000"), help="BUDGETxSTEPS,...")
    p.add_argument("--src", type=parse_src, action="append", default=[], help="NAME=FOLDER first on PYTHONPATH")
    p.add_argument("--repeats", type=positive_int, default=3, metavar="N")
    p.add_argument("--ceiling", action="store_true", help="also time 1 and 2 hand-written loops at once")
    p.add_argument("--dlrun", default=None, help="the dlrun executable (default: next to this Python)")
    args = p.parse_args()
    beside = Path(sys.executable).parent / "dlrun"
    args.dlrun = args.dlrun or (str(beside) if beside.exists() else shutil.which("dlrun"))
    codes = args.src or [("installed", None)]

    rows: dict[str, list[float]] = {}
    runs = [(name, src, sweep, jobs) for name, src in codes for sweep in args.sweeps for jobs in (1, 2)]
    with tempfile.TemporaryDirectory(prefix="bench-sweep-") as tmp:
        work = bench_train.prepare("mlp", Path(tmp)) if args.ceiling else None
        for repeat in range(args.repeats):
            if args.ceiling:
                steps = max(s for _, s in args.sweeps)
                alone, pair = hand_loop_rates(work, steps, 1)[0], hand_loop_rates(work, steps, 2)
                rows.setdefault("ceiling", []).append(sum(pair) / alone)
            shift = repeat % len(runs)  # alternate: each repeat starts one run later
            got = {}
            for name, src, (budget, steps), jobs in runs[shift:] + runs[:shift]:
                got[name, budget, steps, jobs] = run_sweep(args.dlrun, Path(tmp), jobs, budget, steps, src)
            for (name, budget, steps, jobs), r in got.items():
                for key, value in r.items():
                    rows.setdefault(f"{name}:{budget}x{steps}:{jobs}:{key}", []).append(value)
            for name, _ in codes:
                for budget, steps in args.sweeps:
                    ratio = got[name, budget, steps, 1]["wall"] / got[name, budget, steps, 2]["wall"]
                    rows.setdefault(f"{name}:{budget}x{steps}:speedup", []).append(ratio)
            print(f"repeat {repeat + 1}/{args.repeats} done", file=sys.stderr, flush=True)

    def line(name, key, fmt, target=None):
        med, spread = stats(rows[key], fmt)
        verdict = "| |"
        if target:
            text, ok = TARGETS[target]
            verdict = f"| {text} | {'PASS' if ok(statistics.median(rows[key])) else 'MISS'} |"
        return f"| {name} | {med} | {spread} {verdict}"

    out = [
        "",
        f"## dlrun sweep: 1 vs 2 joblib workers, MNIST-1D, {args.repeats} repeat(s), alternating",
        "",
        "```",
        machine(args.dlrun),
        f"os.cpu_count() = {os.cpu_count()}",
        *(f"{name}: PYTHONPATH={src}" for name, src in codes if src),
        "```",
        "",
        "| measure | median | min–max | target | result |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, _ in codes:
        for budget, steps in args.sweeps:
            key = f"{name}:{budget}x{steps}"
            what = f"{name}, {budget} trials of {steps} steps"
            for jobs in (1, 2):
                out.append(line(f"{what}: {jobs} worker(s): sweep wall (s)", f"{key}:{jobs}:wall", "{:.1f}"))
            out.append(line(f"{what}: sweep wall, 1 worker / 2 workers", f"{key}:speedup", "{:.2f}", "speedup"))
            for jobs in (1, 2):
                out.append(line(f"{what}: {jobs} worker(s): after the last trial (s)", f"{key}:{jobs}:tail", "{:.2f}"))
            out.append(line(f"{what}: per-trial overhead, 1 worker (s)", f"{key}:1:overhead", "{:.2f}", "overhead"))
    if args.ceiling:
        out.append(line("the machine's ceiling: 2 hand loops at once / 1 (summed steps/s)", "ceiling", "{:.2f}"))
    print("\n".join(out))


if __name__ == "__main__":
    main()
