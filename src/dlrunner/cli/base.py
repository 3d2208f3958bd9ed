"""What every ``dlrun`` command shares: the Typer app and its global options, composing a config,
handing a command line to Hydra (and the task function a training job runs), and turning bad input
into one message with exit code 2. The command modules (``commands``, ``diagnostics``) import this
module and not each other.

Only typer is imported at module level, so ``dlrun --help`` and ``dlrun ls`` answer at once;
torch, Hydra and the training code load inside the commands that need them.
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

import typer

from dlrunner.cli.shell import DlrunGroup
from dlrunner.config.paths import USER_CONFIG_DIR_ENV, user_config_dir

# How long torch's OpenMP threads (libgomp) spin for more work before they sleep. Spinning without
# end starves the cores when anything else runs (measured 105 against 1083 steps/s, MNIST-1D MLP on
# 2 busy cores); sleeping at once (OMP_WAIT_POLICY=PASSIVE) wakes a thread for every small parallel
# operation, which halved a K=16 MLP stack's speed on 2 idle cores (3400 against 6100 trial-steps/s).
# A short spin keeps most of both: 5500 idle, 1650 with two busy loops beside it (PASSIVE: 1850).
# Set before torch is imported, which the commands below do lazily; a user's own setting wins.
if "OMP_WAIT_POLICY" not in os.environ:
    os.environ.setdefault("GOMP_SPINCOUNT", "10000")

app = typer.Typer(
    cls=DlrunGroup,
    help="Configuration-driven deep learning experiments with the course's bias/variance diagnosis.\n\n"
    "Configs are Hydra config groups (dlrun ls); change anything with overrides such as "
    "model=mlp optimizer.lr=3e-3 'model.layers=[64,32]'.",
    no_args_is_help=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)

PASS_THROUGH = {"allow_extra_args": True, "ignore_unknown_options": True}
# A command that takes the experiment's overrides after its options: @app.command(**TAKES_OVERRIDES),
# then compose(take_config_dir(list(ctx.args))); its usage line says so.
TAKES_OVERRIDES = {"context_settings": PASS_THROUGH, "options_metavar": "[OPTIONS] [KEY=VALUE]..."}
state = {"debug": False}


@app.callback()
def global_options(
    config_dir: Path | None = typer.Option(
        None,
        "--config-dir",
        "-cd",
        help="Your own config directory: its group folders (model/, data/, ...) add options "
        "or override built-in ones of the same name. Also read from $DLRUN_CONFIG_DIR.",
    ),
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks for errors."),
    version: bool = typer.Option(
        False, "--version", is_eager=True, callback=lambda shown: show_version(shown), help="Print dlrunner's version."
    ),
) -> None:
    if config_dir is not None:
        use_config_dir(str(config_dir))
    state["debug"] = debug


def show_version(shown: bool) -> None:
    if shown:
        from dlrunner.version import __version__

        typer.echo(f"dlrunner {__version__}")
        raise typer.Exit()


# ------------------------------------------------------------------ helpers


def compose(overrides: list[str]):
    """Compose the config through Hydra's compose API (no run folder, no multirun); a
    --config-path / --config-name among the overrides chooses the primary config, as for dlrun train."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from dlrunner.config.paths import builtin_config_dir
    from dlrunner.config.schema import register_schemas

    primary = {"--config-path": str(builtin_config_dir()), "--config-name": "config"}
    rest, it = [], iter(overrides)
    for arg in it:
        name, _, value = arg.partition("=")
        name = {"-cp": "--config-path", "-cn": "--config-name"}.get(name, name)
        if name in primary:
            primary[name] = value if value else next(it, "")
        else:
            rest.append(arg)
    flags = [arg for arg in rest if arg.startswith("-")]  # what the command's own options did not take
    if flags:
        from dlrunner.config.messages import section_of
        from dlrunner.errors import ConfigError

        how = "--help lists the command's options, and overrides are KEY=VALUE"
        raise ConfigError(f"{flags[0]}: no such option; {how}{section_of(flags[0].lstrip('-').split('=', 1)[0])}")
    register_schemas()
    with initialize_config_dir(str(Path(primary["--config-path"]).resolve()), version_base="1.3"):
        return hydra_compose(primary["--config-name"], overrides=rest)


def check_run_dir_free(args: list[str]) -> None:
    """A single run told ``hydra.run.dir=FOLDER`` where a run already is: refused before Hydra
    writes its .hydra/ files there, unless trainer.resume is given (continuing it is what was meant).
    A new run would replace the old one's metrics, checkpoints and summary: nothing a user ran is lost."""
    if any(arg in ("-m", "--multirun") or arg.split("=")[0] in PRINT_ONLY for arg in args):
        return
    if any(arg.lstrip("+").startswith("trainer.resume=") for arg in args):
        return
    folders = [arg.split("=", 1)[1] for arg in args if arg.lstrip("+").startswith("hydra.run.dir=")]
    if not folders or "${" in folders[-1]:
        return
    folder = Path(folders[-1]).expanduser()
    summary = folder / "summary.json"
    if not (summary.is_file() or (folder / "checkpoints" / "last.pt").is_file()):
        return
    import json

    try:
        status = json.loads(summary.read_text()).get("status", "unknown")
    except (OSError, ValueError):
        status = "not finished"
    fail(
        f"hydra.run.dir={folders[-1]}: holds a run already (status: {status}); a new run there would replace "
        "its files. Choose another folder, add trainer.resume=true to continue that run, or delete the folder",
        code=2,
    )


def check_multirun_jobs(args: list[str]) -> None:
    """``-m``: every job's config is checked before the first one trains (as a single run checks its
    own): a bad value in the third job used to stop the multirun after two trainings, and leave
    their folders. Exits 2 with the job's overrides and what is wrong. Hydra's own composition
    errors are left to the run itself, which reports them before any job starts."""
    if not any(arg in ("-m", "--multirun") for arg in args) or any(arg.split("=")[0] in PRINT_ONLY for arg in args):
        return
    import itertools

    from hydra.core.override_parser.overrides_parser import OverridesParser

    from dlrunner.config.validate import validate
    from dlrunner.errors import ConfigError

    primary, overrides, it = [], [], iter(args)
    for arg in it:
        name = arg.split("=", 1)[0]
        if name in PRIMARY_CONFIG_OPTIONS:  # the primary config, as compose() takes it
            primary += [arg] if "=" in arg else [arg, next(it, "")]
        elif not arg.startswith("-") and not arg.lstrip("+~").startswith(("hydra.", "hydra/")):
            overrides.append(arg)
    try:
        choices = [
            [f"{o.get_key_element()}={value}" for value in o.sweep_string_iterator()]
            if o.is_sweep_override()
            else [o.input_line]
            for o in OverridesParser.create().parse_overrides(overrides)
        ]
    except Exception:  # Hydra says what is wrong with the line (a search distribution, ...) when it runs it
        return
    from hydra_plugins.dlrunner_searchpath import IN_DLRUN_COMMAND

    for job in itertools.product(*choices):
        IN_DLRUN_COMMAND["active"] = True  # composed as the run will compose it, --config-dir included
        try:
            cfg = compose([*primary, *job])
        except Exception:
            return
        finally:
            IN_DLRUN_COMMAND["active"] = False
        try:
            validate(cfg)
        except ConfigError as err:
            bad_config(err, f" (job: {' '.join(job)})")


def run_hydra(args: list[str]) -> None:
    """Hand the arguments to ``hydra.main`` so that Hydra owns the parsing (-m, --cfg, sweepers, launchers)."""
    import hydra

    from dlrunner.config.paths import builtin_config_dir
    from dlrunner.config.schema import register_schemas

    register_schemas()
    # Let Hydra's exceptions reach us instead of being printed and turned into exit code 1.
    os.environ.setdefault("HYDRA_FULL_ERROR", "1")
    from dlrunner.cli.shell import HYDRA_FLAGS, HYDRA_OPTIONS, hydra_order

    if any(arg in ("-sc", "--shell-completion") or arg.startswith("--shell-completion=") for arg in args):
        # Hydra's completion script would register `dlrun` and a separate `train`, then ask
        # `dlrun -sc query=bash`, which is not a dlrun command line: dlrun completes through Typer.
        fail(
            "-sc/--shell-completion is Hydra's completion, which cannot complete dlrun's commands; use "
            "dlrun --install-completion (bash, zsh, fish) or dlrun --show-completion SHELL",
            code=2,
        )
    for arg in args:  # Hydra's parser answers an unknown one with its whole usage
        if arg.startswith("-") and arg.split("=", 1)[0] not in HYDRA_OPTIONS:
            from dlrunner.config.messages import section_of

            fail(
                f"{arg}: no such option; the options are Hydra's ({', '.join(HYDRA_FLAGS)}, ...: see --help), "
                f"and overrides are KEY=VALUE{section_of(arg.lstrip('-').split('=', 1)[0].replace('-', '_'))}",
                code=2,
            )
    args = hydra_order(args)  # Hydra's flags anywhere on the line, as its parser needs them first
    sys.argv = ["dlrun train", *args]
    entry = hydra.main(config_path=str(builtin_config_dir()), config_name="config", version_base="1.3")(train_task)
    from hydra_plugins.dlrunner_searchpath import IN_DLRUN_COMMAND

    # --config-dir applies to dlrun's configs, whatever --config-path says, for this command only
    IN_DLRUN_COMMAND["active"] = True
    try:
        with known_hydra_mode(args):
            guarded(entry)
    finally:
        IN_DLRUN_COMMAND["active"] = False


PRINT_ONLY = {"--cfg", "-c", "--info", "-i", "--help", "-h", "--hydra-help", "-hh"}  # Hydra flags that run no job
PRIMARY_CONFIG_OPTIONS = ("--config-path", "-cp", "--config-name", "-cn")  # each takes a value

# Hydra options that cannot bring in a config that sets hydra.mode (see known_hydra_mode).
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
def known_hydra_mode(args: list[str]):
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
    if could_set_mode:
        yield
        return
    from dlrunner.internals import hydra_mode_probe_skipped  # Hydra 1.3's internals: another Hydra probes

    with hydra_mode_probe_skipped():
        yield


def train_task(cfg) -> dict:
    """The task of every dlrun job. It returns the run's summary (summary.json's content): a sweeper
    reads its objective there, as any Hydra sweeper reads a task's return value."""
    from hydra.core.hydra_config import HydraConfig

    from dlrunner.console import guard_stdout
    from dlrunner.errors import ConfigError
    from dlrunner.train.run import train as train_run

    guard_stdout()  # a worker process of a launcher (joblib) prints the trial's line too
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
        if in_sweep:
            keep_error(run_dir, err, f"trial {hydra_cfg.job.num}")
            raise  # a failed trial, recorded in the ledger; the sweep goes on
        remove_if_no_results(run_dir)
        if state["debug"]:
            raise
        # Exit from inside the job (SystemExit passes through Hydra's job runner): bad input
        # stops a multirun too, and the message names the job's overrides.
        overrides = " ".join(hydra_cfg.overrides.task)
        where = f" (job: {overrides})" if hydra_cfg.mode.name == "MULTIRUN" else ""
        bad_config(err, where)
    except Exception as err:
        from dlrunner.workers import exit_if_stop

        exit_if_stop(err)  # a stop signal behind a library's error: not a failed trial
        # A crash before training started (out of memory building the model, ...) also leaves a
        # summary that says so; train() wrote one already for a crash during training.
        from dlrunner.train.outputs import RunFiles, failure

        if run_dir.is_dir():
            RunFiles(run_dir).write_summary(failure(err))
        if hydra_cfg.mode.name == "MULTIRUN":
            keep_error(run_dir, err, f"{'trial' if in_sweep else 'job'} {hydra_cfg.job.num}")
        raise
    if state["debug"]:  # which of the speed layer's private paths this run took (dlrunner.internals)
        from dlrunner.internals import report

        for line in report():
            print(f"debug: {line}", file=sys.stderr, flush=True)
    if in_sweep:
        error = summary["metrics"]["dev"]["error"]
        print(
            f"  trial {hydra_cfg.job.num}: {summary['status']}, dev error {error:.4f}, "
            f"{summary['diagnosis']['verdict']}",
            flush=True,
        )
        if summary["status"] == "pruned":
            print(f"    {summary['message']}", flush=True)
    # A diverged run is a result (status "diverged" in summary.json), not a crash: exit 0.
    in_worker = "joblib" in str(hydra_cfg.launcher.get("_target_", ""))
    if summary["status"] == "interrupted" and not in_worker:  # a joblib worker returns: the sweep stops the pool
        from dlrunner.train.signals import exit_code

        raise SystemExit(exit_code(summary.get("signal")))  # 130 for Ctrl-C, 143 for SIGTERM
    return summary


def keep_error(run_dir: Path, err: BaseException, which: str) -> None:
    """A failed multirun job or sweep trial (``which``: "job 3", "trial 3"): its error in the job's
    stderr (submitit's .err log on SLURM), one line that names error.log in its folder, which is
    kept and holds the traceback.
    Hydra's job runner only keeps the exception in memory, so a failed trial on a cluster left its
    error nowhere a user looks."""
    import traceback

    text = "".join(traceback.format_exception(err))
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "error.log").write_text(text)
    except OSError:
        pass
    print(
        f"{which} failed: {type(err).__name__}: {err} (traceback: {run_dir / 'error.log'})",
        file=sys.stderr,
        flush=True,
    )


def remove_if_no_results(run_dir: Path) -> None:
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


def guarded(action, what: str = "invalid config"):
    """Run ``action``; turn bad input into one clear message and exit code 2 (tracebacks with --debug)."""
    from dlrunner.workers import exit_if_stop

    try:
        return action()
    except Exception as err:
        exit_if_stop(err)  # a stop signal hidden behind a library's error (dlrunner/workers.py)
        _report(err, what)


def _report(err: Exception, what: str) -> None:
    """``guarded``'s message for ``err``, raised from inside its ``except`` (for --debug's traceback)."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException
    from yaml import YAMLError

    from dlrunner.errors import ConfigError

    if isinstance(err, ConfigError):
        if state["debug"]:
            _traceback_then_exit(2)  # bad input keeps its exit code with --debug
        bad_config(err, title=what)
    if isinstance(err, (HydraException, OmegaConfBaseException, YAMLError)):
        if state["debug"]:
            _traceback_then_exit(2)
        from dlrunner.config.messages import explain

        fail(f"invalid config: {explain(err)}", code=2)
    if state["debug"]:
        raise err
    if isinstance(err, ImportError):
        from dlrunner.config.messages import install_command

        extras = f"{install_command('joblib')} or {install_command('slurm')}"
        fail(f"{err}\n(a launcher is an optional extra: {extras})", code=2)
    fail(f"{type(err).__name__}: {err}\n(run with dlrun --debug ... for the traceback)", code=1)


def _traceback_then_exit(code: int) -> None:
    import traceback

    traceback.print_exc()
    raise SystemExit(code)


def bad_config(err, where: str = "", title: str = "invalid config") -> None:
    fail(f"{title}{where}:\n  " + "\n  ".join(str(p) for p in err.problems), code=2)


def fail(message: str, code: int) -> None:
    typer.echo(f"dlrun: {message}", err=True)
    raise SystemExit(code)  # not typer.Exit: that is an Exception, which Hydra's job runner would catch


def use_config_dir(path: str) -> None:
    if not Path(path).is_dir():
        fail(f"--config-dir {path!r}: no such directory", code=2)
    os.environ[USER_CONFIG_DIR_ENV] = str(Path(path).resolve())


def take_config_dir(args: list[str]) -> list[str]:
    """Accept dlrun's own options (--config-dir/-cd, --debug) after the command too; route
    --config-dir to our search-path plugin (Hydra's own could add options but not override
    built-in ones)."""
    rest = []
    it = iter(args)
    for arg in it:
        if arg == "--debug":
            state["debug"] = True
        elif arg in ("--config-dir", "-cd"):
            use_config_dir(next(it, ""))
        elif arg.startswith(("--config-dir=", "-cd=")):
            use_config_dir(arg.split("=", 1)[1])
        elif arg in ("--config-path", "-cp"):  # Hydra reads a relative one as a Python package: make it a folder
            rest += [arg, str(Path(next(it, "")).resolve())]
        elif arg.startswith(("--config-path=", "-cp=")):
            option, value = arg.split("=", 1)
            rest.append(f"{option}={Path(value).resolve()}")
        else:
            rest.append(arg)
    from dlrunner.config.precedence import what_the_user_typed  # epochs mean epochs; typed options win

    rest, notes = what_the_user_typed(rest)
    for note in notes:
        typer.echo(f"note: {note}", err=True)
    return rest
