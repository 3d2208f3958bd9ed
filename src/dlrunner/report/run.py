"""The report of one run: learning curves, smoothed mini-batch loss, the bias/variance bars, the
confusion matrix and the misclassified dev examples."""

from __future__ import annotations

import json
from pathlib import Path

from dlrunner.report.page import Page


def ewa(values: list[float], beta: float = 0.98, bias_correction: bool = True) -> list[float]:
    """v_t = beta v_{t-1} + (1 - beta) x_t from v_0 = 0, divided by 1 - beta^t (SPEC C3, C4)."""
    smoothed, v = [], 0.0
    for t, x in enumerate(values, start=1):
        v = beta * v + (1 - beta) * x
        smoothed.append(v / (1 - beta**t) if bias_correction else v)
    return smoothed


def run_report(run_dir: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    summary = json.loads((run_dir / "summary.json").read_text()) if (run_dir / "summary.json").is_file() else {}
    page = Page(f"dlrunner run: {run_dir.name}", run_dir / "report")
    diagnosis = summary.get("diagnosis", {})
    page.paragraph(
        f"Status: {summary.get('status', 'unknown (no summary.json)')}. Verdict: {diagnosis.get('verdict', '-')}",
        "verdict",
    )
    for advice in diagnosis.get("advice", []):
        page.paragraph(advice)
    for note in diagnosis.get("notes", []):
        page.paragraph(f"Note: {note}")

    page.heading("Learning curves")
    epochs = [r["epoch"] for r in records]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for split in ("train", "train_dev", "dev"):
        if records and split in records[0]:
            left.plot(
                epochs, [r[split]["error"] for r in records], marker=".", label=f"{split.replace('_', '-')} error"
            )
    if diagnosis.get("human_error_known"):
        left.axhline(diagnosis["human_error"], color="gray", linestyle="--", label="human level")
    left.set(xlabel="epoch", ylabel="error", title="Error")
    left.legend()
    right.plot(epochs, [r["J"] for r in records], label="J")
    right.plot(epochs, [r["J_with_penalty"] for r in records], linestyle="--", label="J + L2 penalty")
    right.set(xlabel="epoch", ylabel="cost", title="Cost J on the training set")
    right.legend()
    page.figure(fig, "learning_curves", "error and cost against epochs")

    losses = [loss for r in records for loss in r.get("batch_losses", [])]
    if losses:
        page.heading("Mini-batch loss")
        fig, axis = plt.subplots(figsize=(11, 3.5))
        axis.plot(range(1, len(losses) + 1), losses, alpha=0.35, linewidth=0.8, label="mini-batch loss")
        axis.plot(range(1, len(losses) + 1), ewa(losses), label="EWA, beta = 0.98, bias-corrected")
        axis.set(xlabel="step", ylabel="loss", yscale="log" if min(losses) > 0 else "linear")
        axis.legend()
        page.figure(fig, "batch_loss", "mini-batch loss with its exponentially weighted average")

    if diagnosis:
        page.heading("Bias and variance")
        metrics = summary["metrics"]
        levels = [
            (name.replace("_", "-"), metrics[name]["error"])
            for name in ("train", "train_dev", "dev", "test")
            if name in metrics
        ]
        fig, axis = plt.subplots(figsize=(7, 3.5))
        axis.bar([n for n, _ in levels], [e for _, e in levels], color="#4c72b0")
        axis.axhline(
            diagnosis["human_error"],
            color="crimson",
            linestyle="--",
            label="human level" + ("" if diagnosis.get("human_error_known") else " (unknown: 0)"),
        )
        axis.set(ylabel="error")
        axis.legend()
        page.figure(fig, "bias_variance", "error per split against human level")
        gaps = [
            ("avoidable bias", diagnosis.get("avoidable_bias")),
            ("variance", diagnosis.get("variance")),
            ("data mismatch", diagnosis.get("data_mismatch")),
            ("overfitting to dev", diagnosis.get("dev_overfitting")),
        ]
        page.table(["gap", "size"], [[name, value] for name, value in gaps if value is not None])

    analysis_file = run_dir / "analysis.json"
    if analysis_file.is_file():
        analysis = json.loads(analysis_file.read_text())
        page.heading("Confusion matrix (dev)")
        matrix = analysis["confusion_matrix"]
        fig, axis = plt.subplots(figsize=(1 + 0.5 * len(matrix), 1 + 0.5 * len(matrix)))
        axis.imshow(matrix, cmap="Blues")
        for i, row in enumerate(matrix):
            for j, count in enumerate(row):
                axis.text(j, i, count, ha="center", va="center", fontsize=8)
        axis.set(xlabel="predicted", ylabel="true", xticks=range(len(matrix)), yticks=range(len(matrix)))
        page.figure(fig, "confusion_matrix", "confusion matrix of the dev set")
        page.heading(f"Misclassified dev examples ({analysis['n_misclassified']}; most confident first)")
        shown = analysis["misclassified"][:24]
        if shown:
            from dlrunner.diagnostics.error_analysis import input_picture

            columns = 8
            rows = (len(shown) + columns - 1) // columns
            fig, axes = plt.subplots(rows, columns, figsize=(1.6 * columns, 1.7 * rows), squeeze=False)
            for axis, row in zip(axes.flat, shown):
                picture = input_picture(row["input"])
                if picture:
                    axis.imshow(picture, cmap="gray_r")
                else:
                    axis.plot(row["input"], linewidth=0.8)
                axis.set_title(
                    f"#{row['index']}: {row['true']}→{row['predicted']} ({row['confidence']:.2f})", fontsize=7
                )
                axis.set_xticks([])
                axis.set_yticks([])
            for axis in list(axes.flat)[len(shown) :]:
                axis.axis("off")
            page.figure(fig, "misclassified", "the most confidently misclassified dev inputs")
        page.table(
            ["index", "true", "predicted", "confidence"],
            [[r["index"], r["true"], r["predicted"], r["confidence"]] for r in analysis["misclassified"]],
        )
    return page.write(run_dir / "report.html")
