"""The commands for a trained run: ``dlrun predict`` (new inputs through a finished run's model)
and ``dlrun evaluate`` (a split, the test set by default, without training)."""

from __future__ import annotations

from pathlib import Path

import typer

from dlrunner.cli.base import PRINT_ONLY, app, fail, guarded, state
from dlrunner.cli.usage import PlainUsage

RUN_HELP = "A run folder (outputs/DATE/TIME, or one trial folder of a sweep or multirun)."
CHECKPOINT_HELP = "best: the weights with the lowest dev error; last: the weights at the end."


@app.command(cls=PlainUsage)
def predict(
    run: Path = typer.Argument(..., metavar="RUN", help=RUN_HELP),
    inputs: Path = typer.Argument(
        ..., metavar="INPUT", help="Raw inputs: a .csv (header row, feature columns) or an .npz (array X)."
    ),
    output: Path = typer.Option(Path("predictions.csv"), "--output", "-o", help="The CSV file to write."),
    checkpoint: str = typer.Option("best", "--checkpoint", help=CHECKPOINT_HELP),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace the output file if it exists."),
) -> None:
    """Predict with a finished run: one CSV row per example with the predicted class and each
    class's probability (the predicted value for regression).

    The inputs are raw, as in the training data: they are normalised with the training set's mean
    and sigma stored in the run's checkpoint. A CSV column named like the run's label column is
    left out, so the training file itself can be given:

      dlrun predict RUN new.csv -o new-predictions.csv

    An existing output file is kept (choose another with -o) unless --overwrite is given.
    """
    from dlrunner.predict import load_run, read_inputs, write_predictions

    if output.exists() and not overwrite:
        fail(f"--output {output}: the file exists; choose another with -o, or add --overwrite to replace it", code=2)

    def work():
        loaded = load_run(run, checkpoint)
        label_column = ((loaded.config.get("data") or {}).get("source") or {}).get("label_column")
        result = loaded.predict(read_inputs(inputs, label_column))
        return write_predictions(result, loaded, output), len(result.predicted), loaded

    written, count, loaded = guarded(work, what="cannot predict")
    typer.echo(
        f"{count} predictions of {loaded.checkpoint} (step {loaded.step}, task {loaded.task}) written to {written}"
    )


@app.command(cls=PlainUsage)
def evaluate(
    run: Path = typer.Argument(..., metavar="RUN", help=RUN_HELP),
    split: str = typer.Option("test", "--split", help="The split to evaluate: test, dev, train or train_dev."),
    checkpoint: str = typer.Option("best", "--checkpoint", help=CHECKPOINT_HELP),
) -> None:
    """Evaluate a finished run's weights on a split without training, and record the result in
    RUN/evaluations.json.

    The course's rule: look at the test set once, when you are done tuning on dev; its error is
    then an unbiased estimate of how the model does, and test - dev says whether you overfitted
    the dev set. The split is rebuilt from the run's own data config (same source, split and
    normalisation). Each earlier look at the test set is counted and said.
    """
    from rich.console import Console
    from rich.table import Table

    from dlrunner.predict import evaluate_run

    record = guarded(lambda: evaluate_run(run, split, checkpoint), what="cannot evaluate")
    console = Console()
    console.print(f"{run}: {record['checkpoint']} (step {record['step']})", highlight=False, soft_wrap=True)
    table = Table()
    for column in ("split", "error", "accuracy", "loss"):
        table.add_column(column, justify="left" if column == "split" else "right")
    for name, metrics in record["metrics"].items():
        accuracy = metrics.get("accuracy")
        table.add_row(
            name,
            f"{metrics['error']:.2%}" if accuracy is not None else f"{metrics['error']:.4g}",
            "" if accuracy is None else f"{accuracy:.2%}",
            f"{metrics['loss']:.4g}",
        )
    console.print(table)
    diagnosis = record.get("diagnosis") or {}
    if diagnosis.get("dev_overfitting") is not None:
        gap = diagnosis["dev_overfitting"]
        console.print(
            f"test - dev = {gap:+.2%}"
            + (
                ": the dev set was overfitted; get a bigger dev set"
                if "dev_overfitting" in diagnosis.get("problems", [])
                else ": within what the dev set's size explains"
            ),
            highlight=False,
        )
    if record["earlier"]:
        console.print(
            f"[yellow]note: the {split} set was evaluated {record['earlier']} time(s) before; tuning on "
            "what it says makes its error an optimistic estimate[/yellow]"
        )
    console.print(f"Recorded in {Path(run) / 'evaluations.json'}", highlight=False)


def finish_multirun(args: list[str]) -> None:
    """After `dlrun train -m ...`: its runs side by side (what was varied, dev error, verdict, the
    best), as a sweep ends with its table, and the command for the report. The folder is noted
    as Hydra starts the multirun (cli/callbacks.py); a primary config without dlrun's callback
    (a sweep's best.yaml) leaves it to hydra.sweep.dir, when given."""
    if not any(arg in ("-m", "--multirun") for arg in args) or any(arg.split("=")[0] in PRINT_ONLY for arg in args):
        return
    folder = state.pop("multirun_dir", None)
    if folder is None:
        given = [a.split("=", 1)[1] for a in args if a.startswith("hydra.sweep.dir=")]
        folder = given[-1] if given else None
    if folder is None or not Path(folder).is_dir():
        return
    from rich.console import Console

    from dlrunner.diagnostics.compare import compare, print_comparison
    from dlrunner.errors import ConfigError

    console = Console()
    if not console.is_terminal:
        console.width = max(console.width, 160)  # logs and pipes: keep the table's rows whole
    try:
        result = compare([Path(folder)])
    except ConfigError:  # no run finished (all interrupted or failed): each said so already
        return
    console.print(f"\n[bold]Multirun: {len(result['runs'])} runs in {folder}[/bold]", highlight=False)
    print_comparison(result, console)
    console.print(f"Report: dlrun report {folder}", highlight=False, soft_wrap=True)
