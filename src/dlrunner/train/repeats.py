"""The same experiment over several seeds (`trainer.repeats=N` or `trainer.seeds=[...]`).

Deep learning results move with the seed (SPEC H, seed 003): a verdict from one seed can be an
accident. Each seed trains into RUN/seed-<s>/; RUN/summary.json holds the mean of every metric,
their spread, and how many seeds gave each verdict, so sweeps and `dlrun compare` read the mean.
"""

from __future__ import annotations

import statistics
from collections import Counter
from pathlib import Path

from omegaconf import OmegaConf

from dlrunner.diagnostics import diagnose
from dlrunner.files import write_json_atomic
from dlrunner.train.outputs import SUMMARY_VERSION


def seeds_of(trainer) -> list[int]:
    if trainer.get("seeds"):
        return [int(s) for s in trainer.seeds]
    return [trainer.seed + i for i in range(trainer.repeats)]


def train_repeats(cfg, run_dir: Path, console, train_one) -> dict:
    """Train ``cfg`` once per seed with ``train_one(cfg, folder, console)``; write and return the aggregate."""
    from rich.console import Console

    seeds = seeds_of(cfg.trainer)
    summaries = []
    for number, seed in enumerate(seeds, start=1):
        single = cfg.copy()
        single.trainer.seed, single.trainer.repeats, single.trainer.seeds = seed, 1, None
        console.print(f"[bold]seed {seed}[/bold] ({number} of {len(seeds)})")
        summaries.append(train_one(single, run_dir / f"seed-{seed}", Console(quiet=True)))
        console.print(
            f"  dev error {summaries[-1]['metrics']['dev']['error']:.4f}: {summaries[-1]['diagnosis']['verdict']}",
            highlight=False,
        )
    summary = aggregate(summaries, seeds, cfg)
    write_json_atomic({"summary_version": SUMMARY_VERSION, **summary}, run_dir / "summary.json")
    print_repeats(summary, console)
    console.print(f"Run folder: {run_dir} (one folder per seed)")
    return summary


def _spread(values: list[float]) -> dict:
    return {
        "mean": statistics.mean(values),
        "sd": statistics.stdev(values) if len(values) > 1 else 0.0,
        "min": min(values),
        "max": max(values),
    }


def aggregate(summaries: list[dict], seeds: list[int], cfg) -> dict:
    """Means (the summary's usual keys, so sweeps work unchanged) and spreads over the seeds."""
    finished = [s for s in summaries if "metrics" in s]
    metrics, spread = {}, {}
    for split in finished[0]["metrics"]:
        names = [k for k, v in finished[0]["metrics"][split].items() if isinstance(v, (int, float))]
        spread[split] = {k: _spread([s["metrics"][split][k] for s in finished]) for k in names}
        metrics[split] = {k: spread[split][k]["mean"] for k in names}
    verdicts = Counter(s["diagnosis"]["verdict"] for s in finished)
    first = finished[0]
    diagnosis = diagnose(
        train=metrics["train"]["error"],
        dev=metrics["dev"]["error"],
        human=cfg.data.human_error,
        train_dev=metrics.get("train_dev", {}).get("error"),
        test=metrics.get("test", {}).get("error"),
        significant_gap=cfg.diagnosis.significant_gap,
        sizes=first["sizes"],
    )
    gaps = ("avoidable_bias", "variance", "data_mismatch", "dev_overfitting")
    diagnosis_spread = {
        g: _spread([s["diagnosis"][g] for s in finished]) for g in gaps if first["diagnosis"].get(g) is not None
    }
    agreeing = verdicts[diagnosis["verdict"]]
    diagnosis["notes"].append(
        f"{agreeing} of {len(finished)} seeds give this verdict on their own: "
        + ", ".join(f"{v} ({n})" for v, n in verdicts.most_common())
    )
    statuses = {s["status"] for s in summaries}
    return {
        "status": "completed" if statuses == {"completed"} else "/".join(sorted(statuses)),
        "message": "",
        "task": first["task"],
        "n_classes": first["n_classes"],
        "class_names": first.get("class_names"),
        "sizes": first["sizes"],
        "metrics": metrics,
        "diagnosis": diagnosis,
        "n_params": first["n_params"],
        "n_params_total": first.get("n_params_total"),
        "repeats": {
            "seeds": seeds,
            "runs": [f"seed-{s}" for s in seeds],
            "metrics": spread,
            "diagnosis": diagnosis_spread,
            "verdicts": dict(verdicts),
        },
        "timing": {"train_s": sum(s["timing"]["train_s"] for s in finished), "steps": first["timing"]["steps"]},
        "config": OmegaConf.to_container(cfg, resolve=True),
    }


def print_repeats(summary: dict, console) -> None:
    from rich.table import Table

    repeats = summary["repeats"]
    table = Table(
        title=f"Over {len(repeats['seeds'])} seeds ({', '.join(map(str, repeats['seeds']))}): mean ± sd [min, max]",
        title_justify="left",
    )
    table.add_column("")
    for split in repeats["metrics"]:
        table.add_column(split, justify="right")
    names = [k for k in repeats["metrics"]["dev"] if k in ("error", "accuracy", "f1", "loss")]
    for name in names:
        cells = []
        for split in repeats["metrics"]:
            s = repeats["metrics"][split].get(name)
            cells.append("" if s is None else f"{s['mean']:.4f} ± {s['sd']:.4f} [{s['min']:.4f}, {s['max']:.4f}]")
        table.add_row(name, *cells)
    splits = list(repeats["metrics"])
    # each gap in the column of the error it measures from below: variance is dev (or train-dev) - train
    upper = {
        "avoidable_bias": "train",
        "variance": "train_dev" if "train_dev" in splits else "dev",
        "data_mismatch": "dev",
        "dev_overfitting": "test",
    }
    for gap, s in repeats["diagnosis"].items():
        cells = [f"{s['mean']:.4f} ± {s['sd']:.4f}" if split == upper.get(gap) else "" for split in splits]
        table.add_row(gap.replace("_", " "), *cells)
    console.print(table)
    console.print(f"[bold]Verdict on the means:[/bold] {summary['diagnosis']['verdict']}")
    for advice in summary["diagnosis"]["advice"]:
        console.print(f"  - {advice}", highlight=False)
    for note in summary["diagnosis"]["notes"]:
        console.print(f"  [dim]note: {note}[/dim]", highlight=False)
