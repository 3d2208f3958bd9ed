"""The diagnostics commands of `dlrun` (the course's toolkit for deciding what to do next):
gradcheck, check, analyze, compare, learning-curve. Registered on the app of ``dlrunner.cli.base``.

Like the rest of the CLI, nothing heavy is imported until a command runs.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import typer

from dlrunner.cli.base import TAKES_OVERRIDES, app, check_multirun_jobs, compose, guarded, run_hydra, take_config_dir
from dlrunner.cli.usage import PlainUsage


@app.command("learning-curve", **TAKES_OVERRIDES)
def learning_curve(
    ctx: typer.Context,
    fractions: str = typer.Option(
        "0.1,0.25,0.5,1", "--fractions", help="Shares of the training set to train on, comma-separated."
    ),
) -> None:
    """Train on growing shares of the training set and plot train and dev error against m, with
    the human-level line; then say what the curves show (a closing gap: more data helps; flat
    curves above human level: it does not). Takes the same overrides as `dlrun train`.

    The runs are a Hydra multirun over data.train_fraction, so launchers work:
    `dlrun learning-curve model=mlp hydra/launcher=joblib` runs the fractions in parallel.
    Results: hydra.sweep.dir (default multirun/DATE/TIME-learning-curve) holds one run folder per
    fraction, learning_curve.json and learning_curve.png.
    """
    import time

    from dlrunner.console import make_console
    from dlrunner.diagnostics import learning_curve as curves
    from dlrunner.files import write_json_atomic

    args = take_config_dir(list(ctx.args))
    shares = guarded(lambda: curves.parse_fractions(fractions))
    chosen = [a.split("=", 1)[1] for a in args if a.startswith("hydra.sweep.dir=")]
    sweep_dir = Path(chosen[-1]) if chosen else Path("multirun") / time.strftime("%Y-%m-%d/%H-%M-%S-learning-curve")
    if not chosen:
        args.append(f"hydra.sweep.dir={sweep_dir}")
    multirun = ["-m", "data.train_fraction=" + ",".join(f"{f:g}" for f in shares), *args]
    check_multirun_jobs(multirun)
    run_hydra(multirun)
    points = guarded(lambda: curves.collect(sweep_dir))
    reading = curves.interpret(points)
    console = make_console()
    curves.print_learning_curve(points, reading, console)
    write_json_atomic({"points": points, "reading": reading}, sweep_dir / "learning_curve.json")
    console.print(f"Plot: {curves.plot(points, sweep_dir / 'learning_curve.png')}", highlight=False)
    cfg = compose([a for a in args if not a.startswith(("hydra.", "hydra/", "-"))])  # Hydra's flags went to the runs
    if cfg.logger.backend == "wandb":  # each fraction logged its own run; the curve gets one too
        from dlrunner.loggers.wandb_logger import log_diagnostic

        log_diagnostic(
            cfg,
            sweep_dir,
            "learning_curve",
            {"points": points, "reading": reading},
            image=sweep_dir / "learning_curve.png",
        )


@app.command(**TAKES_OVERRIDES)
def gradcheck(
    ctx: typer.Context,
    steps: int = typer.Option(
        0,
        "--steps",
        metavar="N",
        min=0,
        help="Train this many steps first (the course: check at initialisation and after some training).",
    ),
    batch: int = typer.Option(
        8, "--batch", metavar="N", min=1, help="Training examples in the batch J is computed on."
    ),
    epsilon: float = typer.Option(1e-7, "--epsilon", metavar="EPS", help="The two-sided difference's epsilon."),
    max_coordinates: int = typer.Option(
        2000,
        "--max-coordinates",
        metavar="N",
        min=1,
        help="Check at most this many parameters (spread over every tensor).",
    ),
    max_seconds: float = typer.Option(
        30.0,
        "--max-seconds",
        metavar="SECONDS",
        help="Check fewer coordinates on big models to finish in about this time.",
    ),
) -> None:
    """Gradient checking as the course does it (docs/course.md, B12-B14): in float64, dtheta_approx[i] =
    (J(theta + eps) - J(theta - eps)) / 2 eps against backprop's dtheta, with the L2 term in J and
    dropout off; the ratio ||dtheta_approx - dtheta|| / (||dtheta_approx|| + ||dtheta||) overall and
    per parameter tensor, so a failure points at a layer. Below 1e-5 passes, from 1e-3 fails.
    Takes the same overrides as `dlrun train`; exit code 1 when the check fails.
    """
    from dlrunner.checks.gradcheck import run_gradcheck
    from dlrunner.console import make_console

    overrides = take_config_dir(list(ctx.args))
    cfg = guarded(lambda: compose(overrides))
    console = make_console()
    result = guarded(
        lambda: run_gradcheck(
            cfg,
            console,
            steps=steps,
            batch=batch,
            epsilon=epsilon,
            max_coordinates=max_coordinates,
            max_seconds=max_seconds,
        )
    )
    _save_diagnostic(cfg, "gradcheck", dataclasses.asdict(result), console)
    if result.verdict == "fail":
        raise typer.Exit(1)


@app.command(**TAKES_OVERRIDES)
def check(
    ctx: typer.Context,
    steps: int = typer.Option(
        200, "--steps", metavar="N", min=10, help="Training steps of the overfit and shuffled-label checks."
    ),
    batch: int = typer.Option(16, "--batch", metavar="N", min=1, help="Examples in the batch to overfit."),
) -> None:
    """Sanity checks before a long run: the loss at initialisation is near ln C; one small batch
    can be overfitted to ~0 loss; the loss falls much faster with the real labels than with
    shuffled ones; batch gradient descent decreases J at every step. Each says what a failure
    usually means. Takes the same overrides as `dlrun train`; exit code 1 when a check fails.
    """
    from dlrunner.checks.sanity import print_checks, run_checks
    from dlrunner.console import make_console

    overrides = take_config_dir(list(ctx.args))
    cfg = guarded(lambda: compose(overrides))
    console = make_console()
    results = guarded(lambda: run_checks(cfg, console, steps=steps, batch=batch))
    print_checks(results, console)
    result = {"checks": [dataclasses.asdict(r) for r in results], "passed": all(r.passed is not False for r in results)}
    _save_diagnostic(cfg, "check", result, console)
    if not result["passed"]:
        raise typer.Exit(1)


@app.command(cls=PlainUsage)
def analyze(
    run: Path = typer.Argument(..., metavar="RUN", help="A finished run folder of a classification run."),
    tally_sheet: Path | None = typer.Option(
        None, "--tally", help="A sheet you marked: count each category's share and its ceiling."
    ),
    limit: int = typer.Option(
        100,
        "--limit",
        metavar="N",
        min=1,
        help="How many misclassified dev examples go in the sheet (most confident first).",
    ),
    categories: str | None = typer.Option(
        None, "--categories", help="Comma-separated category columns for the sheet, e.g. dog,great_cat,blurry."
    ),
) -> None:
    """Error analysis (docs/course.md, E13 and E14): confusion matrix, per-class error, the most confused pairs,
    and RUN/error_analysis/sheet.csv with the misclassified dev examples and empty columns to mark
    (your categories, incorrectly_labelled, comments).

    After marking: `dlrun analyze RUN --tally RUN/error_analysis/sheet.csv` gives each category's
    share of the errors, the dev error if it were fixed completely (its ceiling), and whether fixing
    incorrect labels is worth it first.
    """
    from dlrunner.console import make_console
    from dlrunner.diagnostics import analyze as error_analysis
    from dlrunner.files import write_json_atomic

    console = make_console()
    analysis = guarded(lambda: error_analysis.error_analysis(run, limit), what="cannot analyse")
    if tally_sheet is not None:
        result = guarded(lambda: error_analysis.tally(tally_sheet, analysis["dev_error"]), what="cannot tally")
        error_analysis.print_tally(result, console)
        write_json_atomic(result, run / "error_analysis" / "tally.json")
        _log_to_wandb(run, "error_analysis/tally", result)
        return
    error_analysis.print_error_analysis(analysis, console)
    wanted = None if categories is None else [c.strip() for c in categories.split(",") if c.strip()]
    sheet = guarded(
        lambda: error_analysis.write_sheet(run, analysis, limit, categories=wanted, console=console),
        what="cannot write the sheet",
    )
    write_json_atomic(
        {k: v for k, v in analysis.items() if k != "misclassified"}, run / "error_analysis" / "analysis.json"
    )
    _log_to_wandb(run, "error_analysis/sheet", sheet)
    console.print(f"Mark the category columns, then: dlrun analyze {run} --tally {sheet}", highlight=False)


@app.command(cls=PlainUsage)
def compare(
    runs: list[Path] = typer.Argument(
        ..., metavar="RUN...", help="Run folders, or folders holding runs (a sweep, a multirun)."
    ),
    metric: str | None = typer.Option(
        None,
        "--metric",
        help="The optimizing metric, a path in summary.json; default: the runs' metric.optimizing (dev).",
    ),
    satisfy: list[str] = typer.Option(
        [],
        "--satisfy",
        help="A satisficing threshold, PATH OP NUMBER, e.g. 'satisficing.latency_ms <= 100'; repeatable.",
    ),
    maximize: bool | None = typer.Option(
        None, "--maximize/--minimize", help="Direction of --metric; default: from the metric."
    ),
    json_out: Path | None = typer.Option(None, "--json", help="Also write the comparison as JSON to this file."),
) -> None:
    """Runs side by side: what differs in their configs, the metrics, the verdicts, and the best run
    by the optimizing metric among those meeting every --satisfy threshold (docs/course.md, E4).

    Example: dlrun compare multirun/2026-11-22/10-00-00 --metric metrics.dev.accuracy
    --satisfy 'satisficing.latency_ms <= 100'
    """
    from dlrunner.console import make_console
    from dlrunner.diagnostics.compare import compare as compare_runs
    from dlrunner.diagnostics.compare import print_comparison

    result = guarded(lambda: compare_runs(runs, metric, satisfy, maximize), what="cannot compare")
    print_comparison(result, make_console())
    if json_out is not None:
        from dlrunner.files import write_json_atomic

        write_json_atomic(result, json_out)


def _save_diagnostic(cfg, name: str, result: dict, console) -> Path:
    """outputs/DATE/TIME-NAME/NAME.json (plus the config), and a W&B run when logger=wandb."""
    import time

    from omegaconf import OmegaConf

    from dlrunner.files import write_json_atomic

    out_dir = Path("outputs") / time.strftime(f"%Y-%m-%d/%H-%M-%S-{name}")
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic({**result, "config": OmegaConf.to_container(cfg, resolve=True)}, out_dir / f"{name}.json")
    console.print(f"Results: {out_dir / f'{name}.json'}", highlight=False)
    if cfg.logger.backend == "wandb":
        from dlrunner.loggers.wandb_logger import log_diagnostic

        log_diagnostic(cfg, out_dir, name, result)
    return out_dir


def _log_to_wandb(run_dir: Path, key: str, result) -> None:
    """When the run logged to W&B, add this result to its W&B run (offline files, resumed by id)."""
    from dlrunner.loggers.wandb_logger import log_to_existing_run

    log_to_existing_run(run_dir, key, result)
