"""The ``dlrun`` command line.

Only typer is imported at module level, so ``dlrun --help`` and ``dlrun ls`` answer at once;
torch, Hydra and the training code load inside the commands that need them.
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

import typer

from dlrunner.config.paths import USER_CONFIG_DIR_ENV, user_config_dir

# torch's OpenMP threads spin while they wait for work. When anything else keeps the cores busy
# (another run, a parallel sweep, a shared node) the spinning threads starve each other: measured
# 105 steps/s with spinning vs 1083 with passive waiting, MNIST-1D MLP on 2 busy cores. It must be
# set before torch is imported, which the commands below do lazily. A user's own value wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

app = typer.Typer(
    help="Configuration-driven deep learning experiments with the course's bias/variance diagnosis.\n\n"
    "Configs are Hydra config groups (dlrun ls); change anything with overrides such as "
    "model=mlp optimizer.lr=3e-3 'model.layers=[64,32]'.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)

PASS_THROUGH = {"allow_extra_args": True, "ignore_unknown_options": True}
_state = {"debug": False}


@app.callback()
def _global_options(
    config_dir: Path | None = typer.Option(
        None,
        "--config-dir",
        "-cd",
        help="Your own config directory: its group folders (model/, data/, ...) add options "
        "or override built-in ones of the same name. Also read from $DLRUN_CONFIG_DIR.",
    ),
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks for errors."),
) -> None:
    if config_dir is not None:
        _use_config_dir(str(config_dir))
    _state["debug"] = debug


@app.command(context_settings=PASS_THROUGH)
def train(ctx: typer.Context) -> None:
    """Train one experiment (or several with -m) and print its bias/variance verdict.

    Arguments are Hydra overrides and flags, for example:

      dlrun train model=mlp optimizer=adam optimizer.lr=3e-3 'model.layers=[64,32]'

      dlrun train data=moons regularization=l2 regularization.l2=0.5

      dlrun train trainer.resume=true hydra.run.dir=outputs/my-run

      dlrun train -m optimizer.lr=1e-3,1e-2,1e-1      (multirun: one run per value)

      dlrun train --cfg job                           (print the config, do not train)

    Results go to outputs/DATE/TIME/: metrics.jsonl, summary.json, checkpoints/, .hydra/.
    """
    _run_hydra(_take_config_dir(list(ctx.args)))


@app.command(context_settings=PASS_THROUGH)
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
    Settings: hydra.sweeper.budget, rounds, top_k, margin, method (coarse_to_fine | random |
    grid), objective (a summary.json path, default metrics.dev.error), direction, constraints
    (e.g. "hydra.sweeper.constraints=['n_params <= 50000']"), seed.

    Results: hydra.sweep.dir (default multirun/DATE/TIME) holds trials.jsonl, regions.json,
    best.yaml and one run folder per trial. Run the same command with the same
    hydra.sweep.dir to resume a stopped sweep.

    --export-wandb FILE writes the same space as a W&B sweep YAML (for `wandb agent`) instead.
    """
    args = _take_config_dir(list(ctx.args))
    if "--export-wandb" in args:  # our flag, passed to the sweeper as a setting
        at = args.index("--export-wandb")
        if at + 1 >= len(args):
            _fail("--export-wandb needs a file name", code=2)
        args[at : at + 2] = [f"hydra.sweeper.export_wandb={args[at + 1]}"]
    _run_hydra(["-m", "hydra/sweeper=dlrunner", *args])


@app.command(context_settings=PASS_THROUGH)
def show(ctx: typer.Context) -> None:
    """Print the resolved config that `dlrun train` would run with these overrides."""
    from omegaconf import OmegaConf
    from rich.console import Console
    from rich.syntax import Syntax

    overrides = _take_config_dir(list(ctx.args))
    cfg = _guarded(lambda: compose(overrides))
    Console().print(Syntax(OmegaConf.to_yaml(cfg, resolve=True), "yaml", background_color="default"))

    from dlrunner.config.validate import validate

    _guarded(lambda: validate(cfg))  # the same checks as dlrun train: a bad value exits 2 here too


@app.command(context_settings=PASS_THROUGH)
def summary(
    ctx: typer.Context,
    input_shape: str | None = typer.Option(
        None,
        "--input-shape",
        help="One example's shape, channels first, e.g. 3,224,224; default: the configured data's.",
    ),
    outputs: int | None = typer.Option(
        None, "--outputs", min=1, help="Number of outputs (classes); default: the configured data's."
    ),
) -> None:
    """Print the model's layers: output shape and parameters per layer, and the totals.

    Takes the same overrides as `dlrun train`, e.g. `dlrun summary model=lenet5 data=digits_images`.
    With --input-shape and --outputs the data is not loaded: `dlrun summary model=resnet50
    --input-shape 3,224,224 --outputs 1000` shows the published ResNet-50. The # column numbers
    the layers that hold parameters: transfer.freeze=N freezes the first N of them.
    """
    from rich.console import Console

    overrides = _take_config_dir(list(ctx.args))
    cfg = _guarded(lambda: compose(overrides))
    _guarded(lambda: _print_model_summary(cfg, input_shape, outputs, Console()))


@app.command()
def report(
    path: Path = typer.Argument(..., help="A run folder (with metrics.jsonl) or a sweep folder (with trials.jsonl)."),
) -> None:
    """Write PATH/report.html (self-contained, works offline) and PNGs of its figures in PATH/report/.

    For a run: learning curves, the smoothed mini-batch loss, the bias/variance bars against human
    level, the confusion matrix and the misclassified dev examples. For a sweep: the objective
    against each parameter on its own scale by round with each round's region, parallel
    coordinates, the best trials and the failures.
    """
    from dlrunner.report import build_report

    html = _guarded(lambda: build_report(path), what="cannot write a report")
    typer.echo(f"Report: {html}")


@app.command("ls")
def list_options(
    group: str | None = typer.Argument(
        None, help="A config group (data, model, optimizer, ...); all groups when omitted."
    ),
) -> None:
    """List the options of each config group with a one-line description (* = the default)."""
    from dlrunner.config.catalog import print_catalog

    try:
        print_catalog(group)
    except KeyError as err:
        _fail(str(err.args[0]), code=2)


def main() -> None:
    whole_process = _is_the_whole_process()  # before the commands rewrite sys.argv for Hydra
    try:
        app()
    except SystemExit as done:
        if "torch" in sys.modules and (done.code is None or isinstance(done.code, int)) and whole_process:
            _exit_without_teardown(done.code or 0)
        raise


def _is_the_whole_process() -> bool:
    """Whether this main() is the process itself: the `dlrun` command or `python -m dlrunner`, with no
    profiler or debugger attached (they write their results after main returns) and
    DLRUN_FULL_EXIT unset. A script or notebook that calls main() gets its SystemExit back."""
    program = Path(sys.argv[0]).stem if sys.argv else ""
    return (
        program in ("dlrun", "__main__")
        and sys.getprofile() is None
        and sys.gettrace() is None
        and not os.environ.get("DLRUN_FULL_EXIT")
    )


def _exit_without_teardown(code: int) -> None:
    """End the process without the interpreter's teardown, once torch is loaded.

    That teardown frees every module and object one by one and writes nothing: measured ~0.75 s
    after `import torch` alone and ~1 s after a `dlrun train` (2026-12-03), as long as the start-up
    beyond `import torch` (issue 7). What exit still has to do is done first: exit handlers run
    (logging, W&B, temporary folders) and the standard streams are flushed. Returns, for the normal
    exit, while a non-daemon thread is alive (the interpreter would wait for it)."""
    import atexit
    import threading

    if any(t.is_alive() and not t.daemon for t in threading.enumerate() if t is not threading.main_thread()):
        return
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe or stream: nothing more can reach it
            stream.flush()
    try:  # and what C libraries wrote through stdio's own buffers
        import ctypes

        ctypes.CDLL(None).fflush(None)
    except (OSError, AttributeError):
        pass
    os._exit(code)


# ------------------------------------------------------------------ helpers


def compose(overrides: list[str]):
    """Compose the config through Hydra's compose API (no run folder, no multirun)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from dlrunner.config.paths import builtin_config_dir
    from dlrunner.config.schema import register_schemas

    register_schemas()
    with initialize_config_dir(str(builtin_config_dir()), version_base="1.3"):
        return hydra_compose("config", overrides=overrides)


def _run_hydra(args: list[str]) -> None:
    """Hand the arguments to ``hydra.main`` so that Hydra owns the parsing (-m, --cfg, sweepers, launchers)."""
    import hydra

    from dlrunner.config.paths import builtin_config_dir
    from dlrunner.config.schema import register_schemas

    register_schemas()
    # Let Hydra's exceptions reach us instead of being printed and turned into exit code 1.
    os.environ.setdefault("HYDRA_FULL_ERROR", "1")
    sys.argv = ["dlrun train", *args]
    entry = hydra.main(config_path=str(builtin_config_dir()), config_name="config", version_base="1.3")(_train_task)
    with _known_hydra_mode(args):
        _guarded(entry)


# Hydra options that cannot bring in a config that sets hydra.mode (see _known_hydra_mode).
MODE_SAFE_OPTIONS = {
    "-m",
    "--multirun",
    "-c",
    "--cfg",
    "-p",
    "--package",
    "--resolve",
    "--info",
    "-i",
    "-h",
    "--help",
    "-hh",
    "--hydra-help",
}


@contextlib.contextmanager
def _known_hydra_mode(args: list[str]):
    """Skip Hydra's mode probe when its answer is known.

    Before every run Hydra composes the whole config once only to read ``hydra.mode``
    (``Hydra.get_mode``), then composes it again for the job: ~0.4 s of each `dlrun train` and
    `dlrun sweep` (0.75 s on a slow machine). dlrun's built-in configs never set ``hydra.mode``, so
    the probe can only find None -- unless a user's config directory, another primary config or
    search path, an override, or any Hydra option but those in MODE_SAFE_OPTIONS could set it; then
    Hydra probes as usual. -m / --multirun and plain runs behave exactly as before (None is what
    the probe returns for them)."""
    could_set_mode = user_config_dir() is not None or any(
        arg.lstrip("+~").startswith(("hydra.mode", "hydra.searchpath"))
        # any Hydra option but these (-cd=DIR, --config-path, abbreviations, ...) may bring in other configs
        or (arg.startswith("-") and arg.split("=", 1)[0] not in MODE_SAFE_OPTIONS)
        for arg in args
    )
    try:
        from hydra._internal.hydra import Hydra  # Hydra 1.3's internals: if they move, probe as usual

        original = Hydra.get_mode
    except (ImportError, AttributeError):
        could_set_mode = True
    if could_set_mode:
        yield
        return
    Hydra.get_mode = lambda self, config_name, overrides: None
    try:
        yield
    finally:
        Hydra.get_mode = original


def _train_task(cfg) -> float:
    from hydra.core.hydra_config import HydraConfig

    from dlrunner.errors import ConfigError
    from dlrunner.train.run import train as train_run

    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    in_sweep = hydra_cfg.mode.name == "MULTIRUN" and "dlrunner_sweeper" in str(hydra_cfg.sweeper.get("_target_", ""))
    console = None
    if in_sweep:
        from rich.console import Console

        cfg.trainer.progress = "none"
        console = Console(quiet=True)  # one line per trial instead of a report each
    told = any(o.lstrip("+").startswith("trainer.resume=") for o in hydra_cfg.overrides.task)
    if hydra_cfg.mode.name == "MULTIRUN" and not told and cfg.trainer.resume is False:
        # A job that finds its own unfinished run in its folder continues it: a trial requeued on
        # SLURM after preemption, or rerun when a killed sweep is resumed, loses at most one
        # checkpoint interval (train/checkpoint.py find_resume_checkpoint).
        cfg.trainer.resume = "auto"
    try:
        summary = train_run(cfg, run_dir, console)
    except ConfigError as err:
        _remove_if_no_results(run_dir)
        if _state["debug"] or in_sweep:
            raise  # in a sweep: a failed trial, recorded in the ledger; the sweep goes on
        # Exit from inside the job (SystemExit passes through Hydra's job runner): bad input
        # stops a multirun too, and the message names the job's overrides.
        overrides = " ".join(hydra_cfg.overrides.task)
        where = f" (job: {overrides})" if hydra_cfg.mode.name == "MULTIRUN" else ""
        _bad_config(err, where)
    except Exception as err:
        # A crash before training started (out of memory building the model, ...) also leaves a
        # summary that says so; train() wrote one already for a crash during training.
        from dlrunner.train.outputs import RunFiles, failure

        if run_dir.is_dir():
            RunFiles(run_dir).write_summary(failure(err))
        raise
    if in_sweep:
        error = summary["metrics"]["dev"]["error"]
        print(
            f"  trial {hydra_cfg.job.num}: {summary['status']}, dev error {error:.4f}, "
            f"{summary['diagnosis']['verdict']}",
            flush=True,
        )
    # A diverged run is a result (status "diverged" in summary.json), not a crash: exit 0.
    if summary["status"] == "interrupted":
        from dlrunner.train.signals import exit_code

        raise SystemExit(exit_code(summary.get("signal")))  # 130 for Ctrl-C, 143 for SIGTERM
    return summary["metrics"]["dev"]["error"]


def _print_model_summary(cfg, input_shape: str | None, outputs: int | None, console) -> None:
    from dlrunner.config.validate import validate
    from dlrunner.errors import ConfigError, Problem
    from dlrunner.models.summary import print_layer_table
    from dlrunner.train.run import build_model

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


def _remove_if_no_results(run_dir: Path) -> None:
    """Bad input: remove the folder Hydra made for the run, unless it holds results from before."""
    import shutil

    hydra_only = {".hydra", "train.log"}
    if run_dir.is_dir() and {p.name for p in run_dir.iterdir()} <= hydra_only:
        shutil.rmtree(run_dir, ignore_errors=True)
        # and the date folder above it, if this run was all it held (outputs/DATE/TIME)
        for parent in list(run_dir.parents)[:2]:
            if parent == Path.cwd() or not parent.is_dir() or any(parent.iterdir()):
                break
            parent.rmdir()


def _guarded(action, what: str = "invalid config"):
    """Run ``action``; turn bad input into one clear message and exit code 2 (tracebacks with --debug)."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException
    from yaml import YAMLError

    from dlrunner.errors import ConfigError

    try:
        return action()
    except ConfigError as err:
        if _state["debug"]:
            raise
        _bad_config(err, title=what)
    except (HydraException, OmegaConfBaseException, YAMLError) as err:
        if _state["debug"]:
            raise
        from dlrunner.config.messages import explain

        _fail(f"invalid config: {explain(err)}", code=2)
    except (KeyboardInterrupt, SystemExit):
        raise
    except ImportError as err:
        if _state["debug"]:
            raise
        _fail(f"{err}\n(a launcher is an optional extra: pip install 'dlrunner[joblib]' or 'dlrunner[slurm]')", code=2)
    except Exception as err:
        if _state["debug"]:
            raise
        _fail(f"{type(err).__name__}: {err}\n(run with dlrun --debug ... for the traceback)", code=1)


def _bad_config(err, where: str = "", title: str = "invalid config") -> None:
    _fail(f"{title}{where}:\n  " + "\n  ".join(str(p) for p in err.problems), code=2)


def _fail(message: str, code: int) -> None:
    typer.echo(f"dlrun: {message}", err=True)
    raise SystemExit(code)  # not typer.Exit: that is an Exception, which Hydra's job runner would catch


def _use_config_dir(path: str) -> None:
    if not Path(path).is_dir():
        _fail(f"--config-dir {path!r}: no such directory", code=2)
    os.environ[USER_CONFIG_DIR_ENV] = str(Path(path).resolve())


def _take_config_dir(args: list[str]) -> list[str]:
    """Accept dlrun's own options (--config-dir/-cd, --debug) after the command too; route
    --config-dir to our search-path plugin (Hydra's own could add options but not override
    built-in ones)."""
    rest = []
    it = iter(args)
    for arg in it:
        if arg == "--debug":
            _state["debug"] = True
        elif arg in ("--config-dir", "-cd"):
            _use_config_dir(next(it, ""))
        elif arg.startswith(("--config-dir=", "-cd=")):
            _use_config_dir(arg.split("=", 1)[1])
        else:
            rest.append(arg)
    return rest


import dlrunner.cli_diagnostics  # noqa: E402,F401 - registers gradcheck, check, analyze, compare, learning-curve
