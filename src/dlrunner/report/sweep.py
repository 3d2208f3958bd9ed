"""The report of a sweep: the objective against each parameter on its own scale, coloured by
round with each round's region drawn; a parallel-coordinates view; the best trials; failures."""

from __future__ import annotations

import json
import math
from pathlib import Path

from dlrunner.report.page import Page

AXIS = {  # how each kind of parameter is drawn: its value, and the x axis's scale
    "loguniform": (lambda v: v, {"value": "log"}),
    "one_minus_log": (lambda v: 1 - v, {"value": "log"}),  # plotted as 1 - beta
    "pow2": (lambda v: v, {"value": "log", "base": 2}),
    "int": (lambda v: v, {"value": "linear"}),
    "uniform": (lambda v: v, {"value": "linear"}),
}


def sweep_report(sweep_dir: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from dlrunner.search.ledger import read_ledger

    trials = read_ledger(sweep_dir / "trials.jsonl")
    direction = _direction(sweep_dir)
    space = json.loads((sweep_dir / "space.json").read_text()) if (sweep_dir / "space.json").is_file() else {}
    regions = json.loads((sweep_dir / "regions.json").read_text()) if (sweep_dir / "regions.json").is_file() else []
    page = Page(f"dlrunner sweep: {sweep_dir.name}", sweep_dir / "report")
    eligible = [t for t in trials if t["eligible"]]
    failed = [t for t in trials if t["status"] != "completed"]
    page.paragraph(
        f"{len(trials)} trials: {len(eligible)} eligible, {len(failed)} failed or diverged, "
        f"{len(trials) - len(eligible) - len(failed)} outside the constraints.",
        "verdict",
    )
    rounds = sorted({t["round"] for t in trials})
    colours = plt.get_cmap("viridis")([i / max(1, len(rounds) - 1) for i in range(len(rounds))])

    numeric = [name for name, p in space.items() if p["kind"] in AXIS]
    if numeric and eligible:
        page.heading("Objective against each parameter (colour: round; bands: each round's region)")
        columns = min(3, len(numeric))
        rows = math.ceil(len(numeric) / columns)
        fig, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.4 * rows), squeeze=False)
        for axis, name in zip(axes.flat, numeric):
            value, scale = AXIS[space[name]["kind"]]
            for colour, round_number in zip(colours, rounds):
                points = [t for t in eligible if t["round"] == round_number]
                axis.scatter(
                    [value(t["params"][name]) for t in points],
                    [t["objective"] for t in points],
                    color=colour,
                    s=18,
                    label=f"round {round_number}",
                )
                region = next((r["region"].get(name) for r in regions if r["round"] == round_number), None)
                if region:
                    ends = sorted(value(v) for v in region)
                    axis.axvspan(ends[0], ends[1], color=colour, alpha=0.08)
            label = f"1 - {name}" if space[name]["kind"] == "one_minus_log" else name
            axis.set_xscale(**scale)
            axis.set(xlabel=label, ylabel="objective")
        for axis in list(axes.flat)[len(numeric) :]:
            axis.axis("off")
        axes.flat[0].legend(fontsize=7)
        fig.tight_layout()
        page.figure(fig, "objective_by_parameter", "objective against each parameter")

        page.heading("Parallel coordinates (each line a trial; colour: objective, darker is better)")
        fig, axis = plt.subplots(figsize=(11, 4))
        objectives = [t["objective"] for t in eligible]
        low, high = min(objectives), max(objectives)
        cmap = plt.get_cmap("viridis")  # 0 = dark
        minimize = direction != "maximize"

        def darkness(objective):  # 0 for the best trial, 1 for the worst
            share = (objective - low) / ((high - low) or 1)
            return share if minimize else 1 - share

        for trial in sorted(eligible, key=lambda t: -darkness(t["objective"])):  # the best drawn last, on top
            ys = [_unit(space[name], trial["params"][name]) for name in numeric]
            axis.plot(range(len(numeric)), ys, color=cmap(darkness(trial["objective"])), alpha=0.7)
        axis.set_xticks(range(len(numeric)), numeric, rotation=15)
        axis.set(ylabel="position in the search range (own scale)", ylim=(-0.05, 1.05))
        page.figure(fig, "parallel_coordinates", "parallel coordinates of the trials")

    page.heading("Best trials")
    names = list(space)
    best = sorted(eligible, key=lambda t: t["objective"], reverse=direction == "maximize")[:10]
    page.table(
        ["trial", "round", "objective", *names, "verdict"],
        [
            [t["number"], t["round"], t["objective"], *(t["params"].get(n) for n in names), t.get("verdict")]
            for t in best
        ],
    )
    if failed:
        page.heading("Failed or diverged trials")
        page.table(["trial", "status", "message"], [[t["number"], t["status"], t.get("message", "")] for t in failed])
    return page.write(sweep_dir / "report.html")


def _unit(param: dict, value) -> float:
    """A value's position in its parameter's original range, in the parameter's own scale."""
    if param["kind"] == "choice":
        values = [str(v) for v in param["values"]]
        return values.index(str(value)) / max(1, len(values) - 1)
    transform = {"loguniform": math.log10, "pow2": math.log2, "one_minus_log": lambda v: -math.log10(1 - v)}.get(
        param["kind"], float
    )
    lo, hi = transform(param["lo"]), transform(param["hi"])
    return (transform(value) - lo) / ((hi - lo) or 1)


def _direction(sweep_dir: Path) -> str:
    from omegaconf import OmegaConf

    saved = sweep_dir / "multirun.yaml"
    return (
        OmegaConf.select(OmegaConf.load(saved), "hydra.sweeper.direction", default="minimize")
        if saved.is_file()
        else "minimize"
    )
