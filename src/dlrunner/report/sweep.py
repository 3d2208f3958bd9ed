"""The report of a sweep: the objective against every parameter (numeric ones on their own scale,
coloured by round with each round's region drawn; categorical ones by value), diverged and failed
trials marked; a parallel-coordinates view with the objective as its last axis and a colour bar;
the best trials; the failures with their parameters."""

from __future__ import annotations

import json
import math
from pathlib import Path

from dlrunner.report.page import Page

AXIS = {  # how each kind of numeric parameter is drawn: its value, and the x axis's scale
    "loguniform": (lambda v: v, {"value": "log"}),
    "one_minus_log": (lambda v: 1 - v, {"value": "log"}),  # plotted as 1 - beta
    "pow2": (lambda v: v, {"value": "log", "base": 2}),
    "int": (lambda v: v, {"value": "linear"}),
    "uniform": (lambda v: v, {"value": "linear"}),
}
SCALE_NAMES = {"loguniform": "log scale", "one_minus_log": "log scale", "pow2": "log2 scale"}
FAILED_MARK = {"marker": "x", "color": "crimson", "s": 30}


def _label(name: str, param: dict) -> str:
    shown = f"1 - {name}" if param["kind"] == "one_minus_log" else name
    scale = SCALE_NAMES.get(param["kind"])
    return f"{shown} ({scale})" if scale else shown


def _is_rate(objective_name: str) -> bool:
    """Error rates and accuracies are shown in percent, as the terminal shows them."""
    return objective_name.endswith(("error", "accuracy")) and "regression" not in objective_name


def _is_numeric(param: dict) -> bool:
    return param["kind"] in AXIS


def _finite_objective(trial: dict) -> bool:
    value = trial.get("objective")
    return isinstance(value, (int, float)) and math.isfinite(value)


def objective_by_parameter_figure(trials, space, regions, objective_name: str):
    """One panel per parameter: eligible trials coloured by round (numeric parameters with each
    round's region as a band), trials that diverged or failed as red crosses along the top."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import PercentFormatter

    eligible = [t for t in trials if t["eligible"] and _finite_objective(t)]
    pruned = [t for t in trials if t["status"] == "pruned" and _finite_objective(t)]
    broken = [t for t in trials if t["status"] not in ("completed", "pruned") or not _finite_objective(t)]
    rounds = sorted({t["round"] for t in trials})
    colours = plt.get_cmap("viridis")([i / max(1, len(rounds) - 1) for i in range(len(rounds))])
    values = [t["objective"] for t in eligible]
    top = max(values) if values else 1.0
    bottom = min(values) if values else 0.0
    failed_y = top + 0.08 * ((top - bottom) or abs(top) or 1)
    names = list(space)
    columns = min(3, len(names))
    rows = math.ceil(len(names) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4.4 * columns, 3.6 * rows), squeeze=False)
    for axis, name in zip(axes.flat, names):
        param = space[name]
        if _is_numeric(param):
            value, scale = AXIS[param["kind"]]
            position = value
        else:
            choices = [str(v) for v in param["values"]]
            position = lambda v, choices=choices: choices.index(str(v)) if str(v) in choices else len(choices)  # noqa: E731
        for colour, round_number in zip(colours, rounds):
            points = [t for t in eligible if t["round"] == round_number and name in t["params"]]
            axis.scatter(
                [position(t["params"][name]) for t in points],
                [t["objective"] for t in points],
                color=colour,
                s=18,
                label=f"round {round_number}",
            )
            region = next((r["region"].get(name) for r in regions if r["round"] == round_number), None)
            if region and _is_numeric(param):
                ends = sorted(value(v) for v in region)
                axis.axvspan(ends[0], ends[1], color=colour, alpha=0.08)
        stopped = [t for t in pruned if name in t["params"]]
        if stopped:  # at the score they were pruned at: comparable only with the others at that rung
            axis.scatter(
                [position(t["params"][name]) for t in stopped],
                [t["objective"] for t in stopped],
                label="pruned (at its rung)",
                facecolors="none",
                edgecolors="grey",
                s=18,
            )
        shown = [t for t in broken if name in t["params"]]
        if shown:
            axis.scatter(
                [position(t["params"][name]) for t in shown],
                [failed_y] * len(shown),
                label="diverged or failed",
                **FAILED_MARK,
            )
        if _is_numeric(param):
            axis.set_xscale(**scale)
        else:
            axis.set_xticks(range(len(choices)), choices)
            axis.set_xlim(-0.5, len(choices) - 0.5)
        axis.set(xlabel=_label(name, param), ylabel=objective_name + (" (%)" if _is_rate(objective_name) else ""))
        axis.set_title(name)
        if _is_rate(objective_name):
            axis.yaxis.set_major_formatter(PercentFormatter(1.0))
        axis.legend(fontsize=7)
    for axis in list(axes.flat)[len(names) :]:
        axis.axis("off")
    fig.suptitle(f"{objective_name} against each parameter (colour: round; bands: each round's region)")
    fig.tight_layout()
    return fig


def parallel_coordinates_figure(trials, space, direction: str, objective_name: str):
    """Each eligible trial a line through every parameter's position in its search range (own
    scale; categorical parameters by value) and, last, its objective; colour: the objective."""
    import textwrap

    import matplotlib.pyplot as plt
    from matplotlib.colors import Normalize

    eligible = [t for t in trials if t["eligible"] and _finite_objective(t)]
    names = list(space)
    fig, axis = plt.subplots(figsize=(max(7, 2.2 * (len(names) + 1)), 4.6))
    objectives = [t["objective"] for t in eligible]
    low, high = (min(objectives), max(objectives)) if objectives else (0.0, 1.0)
    norm = Normalize(low, high if high > low else low + 1e-12)
    cmap = plt.get_cmap("viridis" if direction == "maximize" else "viridis_r")  # the best trial is the brightest

    def best_last(trial):
        return trial["objective"] if direction == "maximize" else -trial["objective"]

    for trial in sorted(eligible, key=best_last):  # the best drawn last, on top
        ys = [_unit(space[name], trial["params"].get(name)) for name in names]
        ys.append((trial["objective"] - low) / ((high - low) or 1))
        axis.plot(range(len(names) + 1), ys, color=cmap(norm(trial["objective"])), alpha=0.8, marker=".")
    # one axis is ~2 inches wide: a name on its line, its scale or its values (wrapped) below it
    labels = [
        _label(n, space[n]).replace(" (", "\n(", 1)
        if _is_numeric(space[n])
        else f"{n}\n" + textwrap.fill(f"({', '.join(map(str, space[n]['values']))})", 24)
        for n in names
    ]
    axis.set_xticks(range(len(names) + 1), [*labels, f"objective\n{objective_name}"], fontsize=8)
    for x in range(len(names) + 1):
        axis.axvline(x, color="#bbb", linewidth=0.8, zorder=0)
    axis.set_xlim(-0.4, len(names) + 0.4)
    axis.set(
        xlabel="parameter",
        ylabel="position in the search range (0 = low end, 1 = high end)",
        ylim=(-0.05, 1.05),
        title=f"Parallel coordinates: {len(eligible)} eligible trials",
    )
    mappable = plt.cm.ScalarMappable(norm=norm, cmap=cmap)
    bar = fig.colorbar(mappable, ax=axis, label=f"{objective_name} (brighter is better)")
    if _is_rate(objective_name):
        from matplotlib.ticker import PercentFormatter

        bar.ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    return fig


def sweep_report(sweep_dir: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")

    from dlrunner.search.ledger import read_ledger

    trials = read_ledger(sweep_dir / "trials.jsonl")
    direction, objective_name = _settings(sweep_dir)
    space = json.loads((sweep_dir / "space.json").read_text()) if (sweep_dir / "space.json").is_file() else {}
    regions = json.loads((sweep_dir / "regions.json").read_text()) if (sweep_dir / "regions.json").is_file() else []
    page = Page(f"dlrunner sweep: {sweep_dir.name}", sweep_dir / "report")
    eligible = [t for t in trials if t["eligible"]]
    pruned = [t for t in trials if t["status"] == "pruned"]
    failed = [t for t in trials if t["status"] not in ("completed", "pruned")]
    page.paragraph(
        f"{len(trials)} trials: {len(eligible)} eligible, {len(failed)} failed or diverged, "
        + (f"{len(pruned)} pruned (stopped early by successive halving), " if pruned else "")
        + f"{len(trials) - len(eligible) - len(failed) - len(pruned)} outside the constraints.",
        "verdict",
    )
    if space and trials:
        page.heading("Objective against each parameter")
        page.figure(
            objective_by_parameter_figure(trials, space, regions, objective_name),
            "objective_by_parameter",
            "objective against each parameter",
        )
    if space and eligible:
        page.heading("Parallel coordinates")
        page.figure(
            parallel_coordinates_figure(trials, space, direction, objective_name),
            "parallel_coordinates",
            "parallel coordinates of the trials",
        )

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
        page.table(
            ["trial", "round", "status", *names, "message"],
            [
                [t["number"], t["round"], t["status"], *(t["params"].get(n) for n in names), t.get("message", "")]
                for t in failed
            ],
        )
    return page.write(sweep_dir / "report.html")


def _unit(param: dict, value) -> float:
    """A value's position in its parameter's original range, in the parameter's own scale."""
    if param["kind"] == "choice":
        values = [str(v) for v in param["values"]]
        return values.index(str(value)) / max(1, len(values) - 1) if str(value) in values else 0.5
    transform = {"loguniform": math.log10, "pow2": math.log2, "one_minus_log": lambda v: -math.log10(1 - v)}.get(
        param["kind"], float
    )
    lo, hi = transform(param["lo"]), transform(param["hi"])
    return (transform(value) - lo) / ((hi - lo) or 1)


def _settings(sweep_dir: Path) -> tuple[str, str]:
    """The sweep's direction and objective, from its multirun.yaml."""
    from omegaconf import OmegaConf

    saved = sweep_dir / "multirun.yaml"
    if not saved.is_file():
        return "minimize", "metrics.dev.error"
    config = OmegaConf.load(saved)
    return (
        OmegaConf.select(config, "hydra.sweeper.direction", default="minimize"),
        OmegaConf.select(config, "hydra.sweeper.objective", default="metrics.dev.error"),
    )
