"""The report of one run: the verdict, the final errors and the config as tables, learning curves,
the smoothed mini-batch loss, the bias/variance bars, the confusion matrix and the misclassified
dev examples. Each figure is built by its own function, titled, labelled and with a legend or a
colour bar, so that a PNG can be read away from the page."""

from __future__ import annotations

import json
import math
from pathlib import Path

from dlrunner.diagnostics.compare import flatten
from dlrunner.report.page import Page

SPLITS = ("train", "train_dev", "dev", "test")


def ewa(values: list[float], beta: float = 0.98, bias_correction: bool = True) -> list[float]:
    """v_t = beta v_{t-1} + (1 - beta) x_t from v_0 = 0, divided by 1 - beta^t (docs/course.md, C3 and C4)."""
    smoothed, v = [], 0.0
    for t, x in enumerate(values, start=1):
        v = beta * v + (1 - beta) * x
        smoothed.append(v / (1 - beta**t) if bias_correction else v)
    return smoothed


def as_error(value, regression: bool) -> str:
    """An error as the terminal shows it: a percentage, or the mean squared error for regression."""
    if value is None:
        return ""
    return f"{value:.4g}" if regression else f"{value:.2%}"


def _finite(xs: list, ys: list) -> tuple[list, list]:
    pairs = [(x, y) for x, y in zip(xs, ys) if y is not None and math.isfinite(y)]
    return [x for x, _ in pairs], [y for _, y in pairs]


def learning_curves_figure(records: list[dict], diagnosis: dict, regression: bool = False):
    """Error of each split and the cost J (with and without the L2 penalty) against epochs. A
    diverged run's non-finite values are left out and the step where it diverged is marked."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import PercentFormatter

    epochs = [r["epoch"] for r in records]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for split in ("train", "train_dev", "dev"):
        if records and split in records[0]:
            xs, ys = _finite(epochs, [r[split]["error"] for r in records])
            left.plot(xs, ys, marker=".", label=f"{split.replace('_', '-')} error")
    if diagnosis.get("human_error_known"):
        left.axhline(diagnosis["human_error"], color="gray", linestyle="--", label="human level")
    left.set(xlabel="epoch", ylabel="mean squared error" if regression else "error (%)", title="Error per split")
    if not regression:
        left.yaxis.set_major_formatter(PercentFormatter(1.0))
    xs, j = _finite(epochs, [r.get("J") for r in records])
    right.plot(xs, j, label="J")
    xs_penalty, j_penalty = _finite(epochs, [r.get("J_with_penalty") for r in records])
    right.plot(xs_penalty, j_penalty, linestyle="--", label="J + L2 penalty")
    broken = next((r for r in records if not all(_is_finite(r.get(k)) for k in ("J", "train_loss"))), None)
    if broken is not None:
        right.axvline(broken["epoch"], color="crimson", linestyle=":", label="diverged")
        right.text(
            0.5,
            0.5,
            f"diverged at step {broken['step']}:\nJ is not finite from there on",
            transform=right.transAxes,
            ha="center",
            color="crimson",
        )
    if not j:
        right.set_ylim(0, 1)  # nothing finite to scale to: an honest empty axis, not matplotlib's default
    right.set(xlabel="epoch", ylabel="cost J (whole training set)", title="Cost J on the training set")
    left.set_ylim(bottom=0)
    for axis in (left, right):
        axis.set_xlim(left=0)
    left.legend()
    right.legend()
    return fig


def _is_finite(value) -> bool:
    return value is None or (isinstance(value, (int, float)) and math.isfinite(value))


def batch_loss_figure(losses: list[float]):
    import matplotlib.pyplot as plt

    fig, axis = plt.subplots(figsize=(11, 3.5))
    steps, finite = _finite(list(range(1, len(losses) + 1)), losses)
    axis.plot(steps, finite, alpha=0.35, linewidth=0.8, label="mini-batch loss")
    if len(finite) == len(losses):
        axis.plot(steps, ewa(finite), label="exponentially weighted average, beta = 0.98, bias-corrected")
    axis.set(
        xlabel="step (mini-batch)",
        ylabel="loss (log scale)" if finite and min(finite) > 0 else "loss",
        yscale="log" if finite and min(finite) > 0 else "linear",
        title="Loss of every mini-batch",
    )
    if axis.get_yscale() == "log":  # plain numbers (0.02, 1.8), not 1.8x10^0; minor ones on short ranges only
        from matplotlib.ticker import LogFormatter

        axis.yaxis.set_major_formatter(LogFormatter(labelOnlyBase=False))
        axis.yaxis.set_minor_formatter(LogFormatter(labelOnlyBase=False, minor_thresholds=(2, 0.4)))
    axis.legend()
    return fig


def bias_variance_figure(metrics: dict, diagnosis: dict, regression: bool = False):
    """Each split's error as a bar labelled with its value (a 0% bar is still read), against human level."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import PercentFormatter

    levels = [(name.replace("_", "-"), metrics[name]["error"]) for name in SPLITS if name in metrics]
    fig, axis = plt.subplots(figsize=(7, 3.8))
    bars = axis.bar([n for n, _ in levels], [e for _, e in levels], color="#4c72b0", label="error")
    axis.bar_label(bars, labels=[as_error(e, regression) for _, e in levels], padding=2)
    human = diagnosis.get("human_error") or 0.0
    axis.axhline(
        human,
        color="crimson",
        linestyle="--",
        label="human level" + ("" if diagnosis.get("human_error_known") else " (unknown: 0)"),
    )
    top = max([human, *(e for _, e in levels if math.isfinite(e))], default=0)
    axis.set_ylim(0, top * 1.15 or 1)
    axis.set(
        xlabel="split",
        ylabel="mean squared error" if regression else "error (%)",
        title="Error per split against human level",
    )
    if not regression:
        axis.yaxis.set_major_formatter(PercentFormatter(1.0))
    axis.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2, frameon=False)  # below: never over a bar
    return fig


def confusion_matrix_figure(matrix: list[list[int]], names: list[str] | None = None):
    import matplotlib.pyplot as plt

    size = len(matrix)
    fig, axis = plt.subplots(figsize=(2.2 + 0.55 * size, 1.6 + 0.5 * size))
    image = axis.imshow(matrix, cmap="Blues")
    for i, row in enumerate(matrix):
        for j, count in enumerate(row):
            axis.text(j, i, count, ha="center", va="center", fontsize=8)
    labels = names or [str(i) for i in range(size)]
    axis.set_xticks(range(size), labels, rotation=45 if names else 0)
    axis.set_yticks(range(size), labels)
    axis.set(xlabel="predicted class", ylabel="true class", title="Confusion matrix (dev set)")
    fig.colorbar(image, ax=axis, label="examples")
    return fig


def misclassified_figure(shown: list[dict]):
    import matplotlib.pyplot as plt

    from dlrunner.diagnostics.error_analysis import input_picture

    columns = 8
    rows = (len(shown) + columns - 1) // columns
    fig, axes = plt.subplots(rows, columns, figsize=(1.6 * columns, 1.7 * rows + 0.5), squeeze=False)
    for axis, row in zip(axes.flat, shown):
        picture = input_picture(row["input"])
        if picture:
            axis.imshow(picture, cmap="gray_r")
        else:
            axis.plot(row["input"], linewidth=0.8, marker="o" if len(row["input"]) < 10 else None)
        axis.set_title(f"#{row['index']}: {row['true']}→{row['predicted']} ({row['confidence']:.2f})", fontsize=7)
        axis.set_xticks([])
        axis.set_yticks([])
    for axis in list(axes.flat)[len(shown) :]:
        axis.axis("off")
    fig.suptitle("Misclassified dev examples, most confident first (#index: true→predicted (confidence))")
    return fig


def final_errors_rows(summary: dict) -> list[list]:
    regression = summary.get("task") == "regression"
    metrics = summary.get("metrics") or {}
    sizes = summary.get("sizes") or {}
    return [
        [
            name.replace("_", "-"),
            sizes.get(name, ""),
            as_error(metrics[name]["error"], regression),
            "" if metrics[name].get("accuracy") is None else f"{metrics[name]['accuracy']:.2%}",
            metrics[name].get("loss"),
        ]
        for name in SPLITS
        if name in metrics
    ]


def run_report(run_dir: Path, page: Page | None = None) -> Path:
    import matplotlib

    matplotlib.use("Agg")

    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    summary = json.loads((run_dir / "summary.json").read_text()) if (run_dir / "summary.json").is_file() else {}
    regression = summary.get("task") == "regression"
    page = page or Page(f"dlrunner run: {run_dir.name}", run_dir / "report")
    diagnosis = summary.get("diagnosis", {})
    page.paragraph(
        f"Status: {summary.get('status', 'unknown (no summary.json)')}. Verdict: {diagnosis.get('verdict', '-')}",
        "verdict",
    )
    if summary.get("message"):
        page.paragraph(summary["message"])
    for advice in diagnosis.get("advice", []):
        page.paragraph(advice)
    for note in diagnosis.get("notes", []):
        page.paragraph(f"Note: {note}")

    if summary.get("metrics"):
        page.heading("Final errors")
        page.table(["split", "examples", "error", "accuracy", "loss"], final_errors_rows(summary))

    if records:
        page.heading("Learning curves")
        page.figure(
            learning_curves_figure(records, diagnosis, regression), "learning_curves", "error and cost against epochs"
        )
    losses = [loss for r in records for loss in r.get("batch_losses", [])]
    if losses:
        page.heading("Mini-batch loss")
        page.figure(batch_loss_figure(losses), "batch_loss", "mini-batch loss with its exponentially weighted average")

    if diagnosis and summary.get("metrics"):
        page.heading("Bias and variance")
        page.figure(
            bias_variance_figure(summary["metrics"], diagnosis, regression),
            "bias_variance",
            "error per split against human level",
        )
        gaps = [
            ("avoidable bias (train - human)", diagnosis.get("avoidable_bias")),
            ("variance (dev or train-dev - train)", diagnosis.get("variance")),
            ("data mismatch (dev - train-dev)", diagnosis.get("data_mismatch")),
            ("overfitting to dev (test - dev)", diagnosis.get("dev_overfitting")),
        ]
        page.table(["gap", "size"], [[name, as_error(v, regression)] for name, v in gaps if v is not None])

    analysis_file = run_dir / "analysis.json"
    if analysis_file.is_file():
        analysis = json.loads(analysis_file.read_text())
        names = analysis.get("class_names") or summary.get("class_names")
        page.heading("Confusion matrix (dev)")
        page.figure(
            confusion_matrix_figure(analysis["confusion_matrix"], names),
            "confusion_matrix",
            "confusion matrix of the dev set",
        )
        page.heading(f"Misclassified dev examples ({analysis['n_misclassified']}; most confident first)")
        shown = analysis["misclassified"][:24]
        if shown:
            page.figure(misclassified_figure(shown), "misclassified", "the most confidently misclassified dev inputs")
        page.table(
            ["index", "true", "predicted", "confidence"],
            [[r["index"], r["true"], r["predicted"], r["confidence"]] for r in analysis["misclassified"]],
        )

    config = summary.get("config")
    if config:
        page.heading("Configuration")
        page.table(
            ["key", "value"],
            [[key, value if isinstance(value, str) else json.dumps(value)] for key, value in flatten(config).items()],
        )
    return page.write(run_dir / "report.html")
