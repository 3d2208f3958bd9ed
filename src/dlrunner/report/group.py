"""The report of a folder of runs: a `dlrun train -m` multirun (0/, 1/, ...) or a
`trainer.repeats` run (seed-0/, seed-1/, ...). The runs side by side (what differs between their
configs, their errors and verdicts), each run's dev error as labelled bars and its dev curve, the
mean and spread over seeds for repeats; and each run's own report, linked."""

from __future__ import annotations

import json
import math
from pathlib import Path

from dlrunner.diagnostics.compare import config_differences, flatten
from dlrunner.report.page import Page
from dlrunner.report.run import SPLITS, as_error, run_report


def member_runs(folder: Path) -> list[Path]:
    """The run folders directly inside ``folder`` (each with metrics.jsonl), in their natural order."""
    runs = [p for p in folder.iterdir() if p.is_dir() and (p / "metrics.jsonl").is_file()]

    def order(path: Path):
        tail = path.name.rpartition("-")[2]
        return (0, int(tail), path.name) if tail.lstrip("-").isdigit() else (1, 0, path.name)

    return sorted(runs, key=order)


def dev_error_figure(names: list[str], errors: list[float], human: float | None, regression: bool):
    import matplotlib.pyplot as plt
    from matplotlib.ticker import PercentFormatter

    lines = [line for name in names for line in name.split(": ", 1)]
    per_bar = max(0.9, 0.085 * max(map(len, lines), default=0))  # inches: each label as wide as its bar
    fig, axis = plt.subplots(figsize=(max(6, per_bar * len(names) + 2), 3.8))
    shown = [e if math.isfinite(e) else 0.0 for e in errors]
    # "0: train_fraction=0.1" as "0" over "train_fraction=0.1": one line each ran into the next bar's
    bars = axis.bar([name.replace(": ", "\n", 1) for name in names], shown, color="#4c72b0", label="dev error")
    axis.bar_label(bars, labels=[as_error(e, regression) if math.isfinite(e) else "diverged" for e in errors])
    if human is not None:
        axis.axhline(human, color="crimson", linestyle="--", label="human level")
    axis.set_ylim(0, max([*shown, human or 0], default=0) * 1.18 or 1)
    axis.set(
        xlabel="run", ylabel="mean squared error" if regression else "dev error (%)", title="Dev error of each run"
    )
    if not regression:
        axis.yaxis.set_major_formatter(PercentFormatter(1.0))
    axis.legend(loc="upper center", bbox_to_anchor=(0.5, -0.28), ncol=2, frameon=False)  # below: never over a bar
    return fig


def dev_curves_figure(curves: dict[str, tuple[list, list]], regression: bool):
    import matplotlib.pyplot as plt
    from matplotlib.ticker import PercentFormatter

    fig, axis = plt.subplots(figsize=(9, 4))
    for name, (epochs, errors) in curves.items():
        pairs = [(x, y) for x, y in zip(epochs, errors) if y is not None and math.isfinite(y)]
        axis.plot([x for x, _ in pairs], [y for _, y in pairs], marker=".", label=name)
    axis.set(
        xlabel="epoch",
        ylabel="mean squared error" if regression else "dev error (%)",
        title="Dev error during training, each run",
    )
    axis.set_ylim(bottom=0)
    if not regression:
        axis.yaxis.set_major_formatter(PercentFormatter(1.0))
    axis.legend(fontsize=8)
    return fig


def group_report(folder: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")

    runs = member_runs(folder)
    summaries = {
        run: json.loads((run / "summary.json").read_text()) if (run / "summary.json").is_file() else {} for run in runs
    }
    own = json.loads((folder / "summary.json").read_text()) if (folder / "summary.json").is_file() else {}
    repeats = own.get("repeats")
    kind = "repeats over seeds" if repeats else "multirun"
    page = Page(f"dlrunner {kind}: {folder.name}", folder / "report")
    finished = [s for s in summaries.values() if "metrics" in s]
    regression = any(s.get("task") == "regression" for s in finished)
    varied = config_differences(finished) if len(finished) > 1 else []
    page.paragraph(f"{len(runs)} runs; {len(finished)} finished. Varied: {', '.join(varied) or 'nothing'}.", "verdict")

    if repeats:
        page.heading("Over the seeds: mean ± sd [min, max]")
        page.paragraph(f"Verdict on the means: {own['diagnosis']['verdict']}")
        rows = []
        for split, values in repeats["metrics"].items():
            spread = values.get("error")
            if spread:
                rows.append(
                    [
                        split.replace("_", "-"),
                        as_error(spread["mean"], regression),
                        as_error(spread["sd"], regression),
                        as_error(spread["min"], regression),
                        as_error(spread["max"], regression),
                    ]
                )
        page.table(["split", "mean error", "sd", "min", "max"], rows)

    learning_curve = folder / "learning_curve.json"
    if learning_curve.is_file():  # a `dlrun learning-curve` folder: its curve and reading first
        from dlrunner.diagnostics.learning_curve import learning_curve_figure

        curve = json.loads(learning_curve.read_text())
        page.heading("Learning curve")
        for advice in curve["reading"].get("advice", []):
            page.paragraph(advice)
        page.figure(learning_curve_figure(curve["points"]), "learning_curve", "train and dev error against m")

    page.heading("The runs")
    splits = [s for s in SPLITS if any(s in (summary.get("metrics") or {}) for summary in summaries.values())]
    header = ["run", *varied, "status", *(f"{s.replace('_', '-')} error" for s in splits), "verdict"]
    rows = []
    for run, summary in summaries.items():
        flat = flatten(summary.get("config") or {})
        metrics = summary.get("metrics") or {}
        rows.append(
            [
                ("link", run.name, f"{run.name}/report.html"),
                *(json.dumps(flat.get(k)) if not isinstance(flat.get(k), str) else flat.get(k) for k in varied),
                summary.get("status", "unknown"),
                *(as_error(metrics[s]["error"], regression) if s in metrics else "" for s in splits),
                (summary.get("diagnosis") or {}).get("verdict", ""),
            ]
        )
    page.table(header, rows)

    labels = {run: _label(run, summaries[run], varied) for run in runs}
    with_dev = [run for run in runs if "metrics" in summaries[run]]
    if with_dev:
        page.heading("Dev error")
        human = next((s["diagnosis"].get("human_error") for s in finished if s.get("diagnosis")), None)
        page.figure(
            dev_error_figure(
                [labels[r] for r in with_dev],
                [summaries[r]["metrics"]["dev"]["error"] for r in with_dev],
                human,
                regression,
            ),
            "dev_error_by_run",
            "dev error of each run",
        )
    curves = {}
    for run in runs:
        records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
        if records and "dev" in records[0]:
            curves[labels[run]] = ([r["epoch"] for r in records], [r["dev"]["error"] for r in records])
    if curves:
        page.figure(dev_curves_figure(curves, regression), "dev_error_curves", "dev error of each run against epochs")
    for run in runs:  # each run's own page, linked from the table
        run_report(run)
    return page.write(folder / "report.html")


def _label(run: Path, summary: dict, varied: list[str]) -> str:
    flat = flatten(summary.get("config") or {})
    values = [f"{key.rpartition('.')[2]}={flat.get(key)}" for key in varied[:2]]
    return f"{run.name}: {', '.join(values)}" if values else run.name
