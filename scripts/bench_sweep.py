#!/usr/bin/env python
"""Sweep throughput: `dlrun sweep` with 1 and 2 parallel workers (joblib launcher) (issue 7).

The same sweep each time -- `sweep=lr` on MNIST-1D, the 2x100 MLP, --budget trials of --steps
steps, random search in one round (so nothing waits on a round's slowest trial) -- run with
hydra.launcher.n_jobs=1 and =2, alternating, --repeats times. Each run is a fresh `dlrun sweep`
process, timed from start to exit.

Measured:
  trials per minute   budget / the sweep process's wall time; 2 workers / 1 worker per repeat
  per-trial overhead  in the 1-worker sweep (its trials run one after another in one warm process):
                      the time between consecutive trials' summary.json writes, minus the later
                      trial's training time (summary.json timing.train_s). That cycle holds all
                      of a trial but its training: the ledger line, the next launch, Hydra's job
                      set-up, building data and model, the final evaluation and the files.
  the machine's own   the hand-written loop of scripts/bench_train.py (1 thread, --steps steps)
  ceiling             run alone and as two processes at once (they meet at a barrier after their
                      imports, so they train side by side): the pair's summed steps/s over the
                      lone loop's. Two workers cannot beat what two plain loops get from this
                      machine's cores (shared caches, memory bandwidth, a virtual machine's
                      neighbours): the sweep's speed-up is also shown as a share of it.

    python scripts/bench_sweep.py                         # 24 trials of 2000 steps, 3 repeats
    python scripts/bench_sweep.py --budget 8 --steps 200 --repeats 1   # quick look
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


def run_sweep(dlrun: str, folder: Path, jobs: int, budget: int, steps: int) -> dict:
    sweep_dir = folder / f"sweep-{jobs}"
    command = [
        dlrun,
        "sweep",
        "sweep=lr",
        "model=mlp",
        "trainer.device=cpu",
        f"trainer.steps={steps}",
        f"hydra.sweeper.budget={budget}",
        "hydra.sweeper.rounds=1",
        "hydra.sweeper.method=random",
        "hydra/launcher=joblib",
        f"hydra.launcher.n_jobs={jobs}",
        f"hydra.sweep.dir={sweep_dir}",
    ]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, cwd=folder)
    wall = time.perf_counter() - started
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
        "per_minute": budget / wall * 60,
        "overhead": statistics.median(overheads),
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


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--budget", type=int, default=24, help="trials per sweep")
    p.add_argument("--steps", type=int, default=2000, help="training steps per trial")
    p.add_argument("--repeats", type=positive_int, default=3, metavar="N")
    p.add_argument("--dlrun", default=None, help="the dlrun executable (default: next to this Python)")
    args = p.parse_args()
    beside = Path(sys.executable).parent / "dlrun"
    args.dlrun = args.dlrun or (str(beside) if beside.exists() else shutil.which("dlrun"))

    rows: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-sweep-") as tmp:
        work = bench_train.prepare("mlp", Path(tmp))
        for repeat in range(args.repeats):
            alone, pair = hand_loop_rates(work, args.steps, 1)[0], hand_loop_rates(work, args.steps, 2)
            rows.setdefault("ceiling", []).append(sum(pair) / alone)
            got = {jobs: run_sweep(args.dlrun, Path(tmp), jobs, args.budget, args.steps) for jobs in (1, 2)}
            for jobs, r in got.items():
                for key, value in r.items():
                    rows.setdefault(f"{jobs}:{key}", []).append(value)
            rows.setdefault("speedup", []).append(got[2]["per_minute"] / got[1]["per_minute"])
            rows.setdefault("of_ceiling", []).append(rows["speedup"][-1] / rows["ceiling"][-1])
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
        f"## dlrun sweep: 1 vs 2 joblib workers, {args.budget} MNIST-1D MLP trials of {args.steps} steps, "
        f"{args.repeats} repeat(s)",
        "",
        "```",
        machine(args.dlrun),
        f"os.cpu_count() = {os.cpu_count()}",
        "```",
        "",
        "| measure | median | min–max | target | result |",
        "| --- | --- | --- | --- | --- |",
    ]
    for jobs in (1, 2):
        out.append(line(f"{jobs} worker(s): sweep wall (s)", f"{jobs}:wall", "{:.1f}"))
        out.append(line(f"{jobs} worker(s): trials per minute", f"{jobs}:per_minute", "{:.1f}"))
        out.append(line(f"{jobs} worker(s): training time per trial (s)", f"{jobs}:train_s", "{:.2f}"))
    out.append(line("trials per minute, 2 workers / 1 worker", "speedup", "{:.2f}", "speedup"))
    out.append(line("the machine's ceiling: 2 hand loops at once / 1 (summed steps/s)", "ceiling", "{:.2f}"))
    out.append(line("the sweep's speed-up / the machine's ceiling", "of_ceiling", "{:.2f}"))
    out.append(line("per-trial overhead beyond training, warm worker (s)", "1:overhead", "{:.2f}", "overhead"))
    out += [
        "",
        "Per-trial overhead: median gap between consecutive summary.json writes in the 1-worker sweep, "
        "minus the later trial's training time.",
    ]
    print("\n".join(out))


if __name__ == "__main__":
    main()
