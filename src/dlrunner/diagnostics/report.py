"""The end-of-run report: error levels, gaps, verdict and advice, as a rich table."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table


def _pct(value) -> str:
    return "-" if value is None else f"{100 * value:.2f}%"


def render_report(summary: dict, console: Console) -> None:
    metrics, diagnosis = summary["metrics"], summary["diagnosis"]
    regression = summary.get("task") == "regression"
    show = (lambda v: "-" if v is None else f"{v:.4g}") if regression else _pct
    table = Table(
        title=f"Bias / variance  ({summary['status']}, {summary['timing']['steps']} steps)", title_justify="left"
    )
    table.add_column("level")
    table.add_column("MSE" if regression else "error", justify="right")
    table.add_column("gap")
    table.add_column("size", justify="right")
    human = "unknown (0 used)" if not diagnosis["human_error_known"] else show(diagnosis["human_error"])
    rows = [
        ("human level", human, "", None),
        ("train", show(metrics["train"]["error"]), "avoidable bias", diagnosis["avoidable_bias"]),
    ]
    if "train_dev" in metrics:
        rows.append(("train-dev", show(metrics["train_dev"]["error"]), "variance", diagnosis["variance"]))
        rows.append(("dev", show(metrics["dev"]["error"]), "data mismatch", diagnosis["data_mismatch"]))
    else:
        rows.append(("dev", show(metrics["dev"]["error"]), "variance", diagnosis["variance"]))
    if "test" in metrics:
        rows.append(("test", show(metrics["test"]["error"]), "overfitting to dev", diagnosis["dev_overfitting"]))
    for level, error, gap, size in rows:
        table.add_row(level, error, gap, "" if size is None else show(size))
    console.print(table)
    if diagnosis.get("mismatch_table"):
        _print_mismatch_table(diagnosis["mismatch_table"], show, console)
    if metrics["dev"].get("task_errors"):  # multi-task: one error per label
        errors = ", ".join(f"{show(e)}" for e in metrics["dev"]["task_errors"])
        console.print(f"[bold]Dev error per task:[/bold] {errors}", highlight=False)
    _print_decision_metrics(summary, console)
    console.print(f"[bold]Verdict:[/bold] {diagnosis['verdict']}")
    for advice in diagnosis["advice"]:
        console.print(f"  - {advice}", highlight=False)
    for note in diagnosis.get("notes", []):
        console.print(f"  [dim]note: {note}[/dim]", highlight=False)
    if summary.get("message"):
        console.print(f"[yellow]{summary['message']}[/yellow]")


def _print_decision_metrics(summary: dict, console: Console) -> None:
    """The optimizing metric (when it is not the error shown above) and the satisficing metrics."""
    metric, measured = summary.get("metric") or {}, summary.get("satisficing") or {}
    if metric.get("name") not in (None, "error") and metric.get("dev") is not None:
        splits = ", ".join(
            f"{split} {metric[split]:.4f}" for split in ("train", "dev", "test") if metric.get(split) is not None
        )
        console.print(f"[bold]Optimizing metric[/bold] {metric['name']}: {splits}", highlight=False)
    if measured:
        line = (
            f"{measured['n_params']:,} parameters, {measured['size_mb']:.3g} MB, "
            f"{measured['latency_ms']:.3g} ms per example, trained in {measured['train_s']:.1f} s"
        )
        if "met" in measured:
            failed = [text for text, check in measured["constraints"].items() if not check["met"]]
            line += "; thresholds met" if measured["met"] else f"; [red]thresholds NOT met[/red] ({', '.join(failed)})"
        console.print(f"[bold]Satisficing:[/bold] {line}", highlight=False)


def _print_mismatch_table(cells: dict, show, console: Console) -> None:
    """The course's two-dimensional view (SPEC E17): where the errors come from, per distribution."""
    table = Table(title="By distribution", title_justify="left")
    table.add_column("")
    table.add_column("general (training) data", justify="right")
    table.add_column("target (dev/test) data", justify="right")
    for row, label in (
        ("human", "human level"),
        ("trained_on", "error on examples trained on"),
        ("not_trained_on", "error on examples not trained on"),
    ):
        table.add_row(label, show(cells["general"][row]), show(cells["target"][row]))
    console.print(table)
