"""The experiment commands of ``dlrun``: train, sweep, show, summary, report, ls."""

from __future__ import annotations

from pathlib import Path

import typer

from dlrunner.cli.base import (
    PRIMARY_CONFIG_OPTIONS,
    PRINT_ONLY,
    TAKES_OVERRIDES,
    app,
    check_multirun_jobs,
    check_run_dir_free,
    compose,
    fail,
    guarded,
    run_hydra,
    take_config_dir,
)
from dlrunner.cli.usage import PlainUsage


@app.command(**TAKES_OVERRIDES)
def train(ctx: typer.Context) -> None:
    """Train one experiment (or several with -m) and print its bias/variance verdict.

    Arguments are Hydra overrides and flags, for example:

      dlrun train model=mlp optimizer=adam optimizer.lr=3e-3 'model.layers=[64,32]'

      dlrun train data=moons regularization=l2 regularization.l2=0.5

      dlrun train trainer.resume=true hydra.run.dir=outputs/my-run

      dlrun train -m optimizer.lr=1e-3,1e-2,1e-1      (multirun: one run per value)

      dlrun train --cfg job                           (print the config, do not train)

    Results go to outputs/DATE/TIME/: metrics.jsonl, summary.json, checkpoints/, .hydra/.
    A multirun goes to multirun/DATE/TIME/ (one numbered folder per run) and ends with a table
    of its runs side by side, as `dlrun compare` prints it.
    """
    from dlrunner.cli.trained import finish_multirun

    args = take_config_dir(list(ctx.args))
    check_run_dir_free(args)
    check_multirun_jobs(args)
    run_hydra(args)
    finish_multirun(args)


@app.command(**TAKES_OVERRIDES)
def sweep(ctx: typer.Context) -> None:
    """Search hyperparameters: log-scale random search, coarse to fine (dlrunner's Hydra sweeper).

    Pick a search space (dlrun ls sweep) and/or give distributions in Hydra's override grammar:

      dlrun sweep sweep=lr_beta data=moons trainer=quick

      dlrun sweep 'optimizer.lr=tag(log, interval(1e-4, 1))' hydra.sweeper.budget=20

      dlrun sweep sweep=mlp_basic hydra/launcher=joblib hydra.launcher.n_jobs=2

      dlrun sweep sweep=lr hydra/launcher=submitit_slurm       (SLURM cluster)

      dlrun sweep sweep=lr_beta hydra/launcher=stacked         (a round's trials trained as one model)

    Distributions: tag(log, interval(a,b)); tag(one_minus_log, interval(0.9,0.999)) for beta;
    interval(a,b); int(interval(a,b)); tag(pow2, int(interval(32,512))); choice(a,b,c) or a,b,c.
    Settings, each hydra.sweeper.NAME=VALUE: budget, rounds, top_k, margin, method
    (coarse_to_fine | random | grid), objective (a summary.json path, default
    metrics.dev.error), direction, constraints (e.g. "hydra.sweeper.constraints=['n_params <=
    50000']"), seed, max_failure_rate. hydra.sweeper.pruner=halving stops bad trials early
    (hydra.sweeper.pruning.min_steps, hydra.sweeper.pruning.reduction_factor).

    Results: hydra.sweep.dir (default multirun/DATE/TIME) holds trials.jsonl, regions.json,
    best.yaml and one run folder per trial. Run the same command with the same
    hydra.sweep.dir to resume a stopped sweep.

    --export-wandb FILE writes the same space as a W&B sweep YAML (for `wandb agent`) instead.
    """
    args = take_config_dir(list(ctx.args))
    if "--export-wandb" in args:  # our flag, passed to the sweeper as a setting
        at = args.index("--export-wandb")
        if at + 1 >= len(args):
            fail("--export-wandb needs a file name", code=2)
        args[at : at + 2] = [f"hydra.sweeper.export_wandb={args[at + 1]}"]
    # Hydra's --cfg and --info print the sweep's config (or Hydra's) and run nothing; Hydra refuses
    # them beside -m, so they go without it
    prints = any(arg.split("=", 1)[0] in PRINT_ONLY for arg in args)
    for arg in args:
        _refuse_unprefixed_sweep_setting(arg)
    run_hydra([*([] if prints else ["-m"]), "hydra/sweeper=dlrunner", *args])


def _refuse_unprefixed_sweep_setting(arg: str) -> None:
    """``pruner=halving`` is a sweep setting written without its ``hydra.sweeper.`` prefix: Hydra
    would report a missing top-level key (and suggest 'trainer'). The sweeper's settings are none
    of a trial config's top-level keys, so the prefix is what was meant."""
    import dataclasses

    from dlrunner.config.schema import Config
    from dlrunner.sweep.conf import DlrunnerSweeperConf

    name, equals, value = arg.partition("=")
    top = name.lstrip("+").split(".", 1)[0]
    settings = {f.name for f in dataclasses.fields(DlrunnerSweeperConf)} - {"_target_"}
    if equals and top in settings and top not in {f.name for f in dataclasses.fields(Config)}:
        fail(f"{arg}: {top} is a setting of the sweep; write hydra.sweeper.{name.lstrip('+')}={value}", code=2)


@app.command(**TAKES_OVERRIDES)
def show(ctx: typer.Context) -> None:
    """Print the resolved config that `dlrun train` would run with these overrides.

    A word without `=` prints that section only: `dlrun show trainer`, `dlrun show optimizer
    optimizer=adam`, `dlrun show trainer.steps`. --config-path DIR --config-name NAME show another
    primary config (a sweep's best.yaml), as dlrun train takes them.
    """
    from omegaconf import OmegaConf
    from rich.syntax import Syntax

    from dlrunner.console import make_console

    args = take_config_dir(list(ctx.args))
    for arg in args:
        if arg.startswith("-") and arg.split("=", 1)[0] not in PRIMARY_CONFIG_OPTIONS:
            fail(
                f"show {arg}: no such option; give sections (trainer, trainer.steps) and overrides "
                "(KEY=VALUE), or --config-path DIR --config-name NAME",
                code=2,
            )
    sections = [a for a in args if "=" not in a and not a.startswith("-") and not _is_option_value(args, a)]
    overrides = [a for a in args if a not in sections]
    cfg = guarded(lambda: compose(overrides))
    shown = {}
    for section in sections:
        value = OmegaConf.select(cfg, section, default=_ABSENT)
        if value is _ABSENT:
            fail(f"show {section}: no such section; sections: {', '.join(cfg.keys())}", code=2)
        shown[section] = OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value
    text = OmegaConf.to_yaml(cfg, resolve=True) if not sections else OmegaConf.to_yaml(OmegaConf.create(shown))
    make_console().print(Syntax(text, "yaml", background_color="default"))

    from dlrunner.config.validate import validate

    guarded(lambda: validate(cfg))  # the same checks as dlrun train: a bad value exits 2 here too


_ABSENT = object()


def _is_option_value(args: list[str], arg: str) -> bool:
    """Whether ``arg`` is the value of the option before it (--config-name best)."""
    at = args.index(arg)
    return at > 0 and args[at - 1] in PRIMARY_CONFIG_OPTIONS


@app.command(**TAKES_OVERRIDES)
def summary(
    ctx: typer.Context,
    input_shape: str | None = typer.Option(
        None,
        "--input-shape",
        help="One example's shape, channels first, e.g. 3,224,224; default: the configured data's.",
    ),
    outputs: int | None = typer.Option(
        None, "--outputs", metavar="N", min=1, help="Number of outputs (classes); default: the configured data's."
    ),
) -> None:
    """Print the model's layers: output shape and parameters per layer, and the totals.

    Takes the same overrides as `dlrun train`, e.g. `dlrun summary model=lenet5 data=digits_images`.
    With --input-shape and --outputs the data is not loaded: `dlrun summary model=resnet50
    --input-shape 3,224,224 --outputs 1000` shows the published ResNet-50. The # column numbers
    the layers that hold parameters: transfer.freeze=N freezes the first N of them.
    """
    from dlrunner.console import make_console

    overrides = take_config_dir(list(ctx.args))
    cfg = guarded(lambda: compose(overrides))
    guarded(lambda: print_model_summary(cfg, input_shape, outputs, make_console()))


@app.command(cls=PlainUsage)
def report(
    path: Path = typer.Argument(
        ..., metavar="PATH", help="A run folder (with metrics.jsonl) or a sweep folder (with trials.jsonl)."
    ),
) -> None:
    """Write PATH/report.html (self-contained, works offline) and PNGs of its figures in PATH/report/.

    For a run: learning curves, the smoothed mini-batch loss, the bias/variance bars against human
    level, the confusion matrix and the misclassified dev examples. For a sweep: the objective
    against each parameter on its own scale by round with each round's region, parallel
    coordinates, the best trials and the failures.
    """
    from dlrunner.report import build_report

    html = guarded(lambda: build_report(path), what="cannot write a report")
    typer.echo(f"Report: {html}")


@app.command("ls")
def list_options(
    group: str | None = typer.Argument(
        None,
        help="A config group (data, model, optimizer, ..., or a sweep's hydra/launcher and hydra/sweeper); "
        "all groups when omitted.",
    ),
) -> None:
    """List the options of each config group with a one-line description (* = the default)."""
    from dlrunner.config.catalog import print_catalog

    try:
        print_catalog(group)
    except KeyError as err:
        fail(str(err.args[0]), code=2)


def print_model_summary(cfg, input_shape: str | None, outputs: int | None, console) -> None:
    from dlrunner.config.validate import validate
    from dlrunner.errors import ConfigError, Problem
    from dlrunner.models.summary import print_layer_table
    from dlrunner.train.setup import build_model

    validate(cfg)
    if input_shape is not None:
        try:
            shape = tuple(int(v) for v in input_shape.replace("x", ",").split(","))
        except ValueError:
            raise ConfigError(
                Problem(
                    "--input-shape", input_shape, "whole numbers separated by commas, channels first, e.g. 3,224,224"
                )
            ) from None
    if input_shape is None or outputs is None:
        from dlrunner.data import build_data

        data = build_data(cfg.data)
        shape = data.input_shape if input_shape is None else shape
        outputs = data.n_outputs if outputs is None else outputs
    try:
        model, notes = build_model(cfg, shape, outputs)
    except ConfigError as err:  # the shape came from --input-shape, not from data.shape: name what the user typed
        if input_shape is None:
            raise
        raise ConfigError(
            [
                Problem("--input-shape", input_shape, p.valid)
                if isinstance(p, Problem) and p.key == "data.shape"
                else p
                for p in err.problems
            ]
        ) from None
    for note in notes:
        console.print(f"[yellow]note: {note}[/yellow]")
    target = cfg.model._target_.rpartition(".")[2]
    print_layer_table(
        model, shape, console, title=f"{target} on {' x '.join(map(str, shape))} inputs, {outputs} outputs"
    )
