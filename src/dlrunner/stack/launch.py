"""``hydra/launcher=stacked``: run a batch of sweep trials, stacking those that can share a stack.

Every trial gets its folder and its .hydra/ files from Hydra's own ``run_job``, as with the basic
launcher. Trials that cannot be stacked (``group.stack_problem``), or whose group holds one
trial, run there and then through the ordinary task function. The others are only validated in
``run_job``; then each group trains as one stack of at most ``max_stack`` rows and its trials'
returns are filled in as they finish. A group larger than its stack waits in line: each trial that
finishes (or is pruned) frees its row for the next one. A group that turns out not to be stackable
once its data and models are built (a multilabel task, batch norm in a CNN) runs its trials one at
a time, with a note.

A stack writes each trial's ``last.pt`` (in the solo format) every ``trainer.checkpoint_every``
evaluations and when a signal stops it. When the sweep is rerun after a kill, the trials whose
folders hold such a checkpoint and no final summary go on from there (as every multirun job does,
``trainer.resume=auto``), losing at most one checkpoint interval: those of one stopped stack (one
place in an epoch, one process) as one stack again, which the group's other trials join at its
next epoch; the stacks of a split stack in their own processes again (``stack/processes.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobStatus, configure_log, run_job, setup_globals
from omegaconf import open_dict
from rich.console import Console

from dlrunner.config.validate import validate
from dlrunner.stack.group import stack_key, stack_problem
from dlrunner.workers import exit_if_stop


def launch(launcher, job_overrides, initial_job_idx: int) -> list:
    setup_globals()
    configure_log(launcher.config.hydra.hydra_logging, launcher.config.hydra.verbose)
    Path(str(launcher.config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
    configs = []
    for number, overrides in zip(launcher.numbers(job_overrides, initial_job_idx), job_overrides):
        config = launcher.hydra_context.config_loader.load_sweep_config(launcher.config, list(overrides))
        with open_dict(config):
            config.hydra.job.id = config.hydra.job.num = number
        configs.append(config)
    groups = group_trials(configs, launcher.max_stack)
    stacked = {i for group, _ in groups for i in group}

    prepared: dict[int, tuple] = {}
    returns = []
    for i, config in enumerate(configs):
        if i not in stacked and _has_unfinished_checkpoint(config):
            print(f"Trial {config.hydra.job.num} resumes from its checkpoint, on its own", flush=True)
        task = launcher.task_function if i not in stacked else _prepare(prepared, i)
        returns.append(_run_job(launcher, config, task))
    for group, rows in groups:
        ready = [i for i in group if i in prepared]  # a trial whose config failed validation has failed already
        if len(ready) < 2:
            for i in ready:
                returns[i] = _run_job(launcher, configs[i], launcher.task_function)
            continue
        _train_group(launcher, configs, ready, prepared, returns, rows)
    return returns


# On the CPU a CNN stack with 2-D or grouped convolutions runs its trials' convolutions one by one
# (stack/model.py), so it gains only the shared loss, backward call and update, and its K trials'
# activations outgrow the caches: measured on 2 cores over four runs (BENCHMARKS.md), MNIST-1D CNN
# stacks run that way gave 0.94-1.16x the trial-steps per second of solo trials at K = 4,
# 1.12-1.29x at K = 16 and 0.86-0.97x at K = 64. Plain 1-D convolutions run as batched products
# (models/conv1d.py) and pay at every size (1.5x, 2.8x, 2.7x at K = 4, 16, 64): no cap.
CPU_CONV_MAX_STACK = 16


def group_trials(configs, max_stack: int) -> list[tuple[list[int], int]]:
    """Indices of the trials to stack, grouped by ``stack_key``, each group with the rows of its
    stack: at most ``max_stack`` (``CPU_CONV_MAX_STACK`` for a CNN on the CPU), as even as the group
    allows; groups of one are left out (they run alone)."""
    by_key: dict[str, list[int]] = {}
    limits: dict[str, int] = {}
    resumed: set[int] = set()  # said by launch(): "resumes from its checkpoint, on its own"
    for i, config in enumerate(configs):
        task_cfg = _task_config(config)
        problem = stack_problem(task_cfg)
        if problem is not None and len(configs) > 1:
            print(f"note: trial {config.hydra.job.num} trains on its own: {problem}", flush=True)
        if problem is None:
            key = stack_key(task_cfg)  # trials resumed from checkpoints too: they go on as the stacks
            if _has_unfinished_checkpoint(config):  # they stopped in (stack/processes.py: resumed_runs)
                resumed.add(i)
            by_key.setdefault(key, []).append(i)
            if key not in limits:  # the key holds the model and the device
                limits[key] = min(max_stack, CPU_CONV_MAX_STACK) if _convolutions_one_by_one(task_cfg) else max_stack
    for key, members in by_key.items():
        if limits[key] < max_stack and len(members) > limits[key]:
            numbers = [configs[i].hydra.job.num for i in members]
            print(
                f"note: trials {_ranges(numbers)} (a CNN with 2-D or grouped convolutions, on the CPU) "
                f"train in stacks of at most {limits[key]}: its trials' convolutions run one by one there, "
                "and larger stacks are slower than solo trials",
                flush=True,
            )
    alone = [configs[m[0]].hydra.job.num for m in by_key.values() if len(m) == 1 and m[0] not in resumed]
    if alone and len(configs) > 1:
        which = f"trials {_ranges(alone)} train" if len(alone) > 1 else f"trial {alone[0]} trains"
        print(
            f"note: {which} on {'their' if len(alone) > 1 else 'its'} own: the trials of a stack differ "
            "only in their schedule, learning rate, betas, eps, L2, clipping, early stopping, dropout "
            f"and seed, and no other trial launched with {'them' if len(alone) > 1 else 'it'} has the same "
            "model, data and other settings",
            flush=True,
        )
    groups = [(members, stack_rows(len(members), limits[key])) for key, members in by_key.items()]
    return [(members, rows) for members, rows in groups if len(members) > 1]


def stack_rows(trials: int, limit: int) -> int:
    """Rows of a stack for this many trials: the fewest waves of at most ``limit``, as even as can be.
    20 trials with a limit of 16 take 10 rows (two waves of 10), not 16 and then a slow 4."""
    waves = -(-trials // limit)
    return -(-trials // waves)


def _convolutions_one_by_one(cfg) -> bool:
    """A CNN on the CPU whose convolutions a stack runs trial by trial: any but plain 1-D ones
    (examples of shape (C, L), no separable blocks), as far as its config tells."""
    from dlrunner.errors import ConfigError
    from dlrunner.runtime import pick_device

    if cfg.model._target_ != "dlrunner.models.build_cnn":
        return False
    shape = cfg.data.get("shape")
    blocks = cfg.model.get("blocks") or []
    one_d = (
        shape is not None
        and len(shape) == 2
        and not any(isinstance(b, Mapping) and b.get("type") == "separable" for b in blocks)
    )
    if one_d:
        return False
    try:
        return pick_device(str(cfg.trainer.device)).type == "cpu"
    except ConfigError:  # a CUDA device this machine lacks: the trial's own run says so
        return False


def _has_unfinished_checkpoint(config) -> bool:
    """Whether the trial's folder holds a checkpoint of a run that did not finish (a killed stack)."""
    from dlrunner.train.checkpoint import find_resume_checkpoint

    return find_resume_checkpoint("auto", _run_dir(config), _run_dir(config), {}) is not None


def _run_dir(config) -> Path:
    return Path(str(config.hydra.sweep.dir)) / str(config.hydra.sweep.subdir)


def _train_group(launcher, configs, group: list[int], prepared: dict, returns: list, rows: int) -> None:
    from dlrunner.stack.train import NotStackable, train_stacked

    cfgs = [prepared[i][0] for i in group]
    run_dirs = [prepared[i][1] for i in group]
    environments = [prepared[i][2] for i in group]
    numbers = [configs[i].hydra.job.num for i in group]
    resumed = [configs[i].hydra.job.num for i in group if _has_unfinished_checkpoint(configs[i])]
    if resumed:
        which = f"Trials {_ranges(resumed)} go on" if len(resumed) > 1 else f"Trial {resumed[0]} goes on"
        print(f"{which} from {'their checkpoints' if len(resumed) > 1 else 'its checkpoint'} in the stack", flush=True)
    if len(group) > rows:
        print(
            f"Training trials {_ranges(numbers)} in one stack of {rows}: each trial that finishes or is "
            "pruned frees its row for the next",
            flush=True,
        )
    else:
        print(f"Training trials {_ranges(numbers)} as one stack of {len(group)}", flush=True)
    finished, sweep_errors = set(), []

    def on_finish(k: int, summary: dict) -> None:  # each trial's line and return as it finishes
        i, number, error = group[k], numbers[k], summary["metrics"]["dev"]["error"]
        finished.add(i)
        returns[i].return_value, returns[i].status = error, JobStatus.COMPLETED
        print(
            f"  trial {number}: {summary['status']}, dev error {error:.4f}, "
            f"{summary['diagnosis']['verdict']} (stacked)",
            flush=True,
        )
        if summary["status"] == "pruned":
            print(f"    {summary['message']}", flush=True)
        if summary["status"] == "interrupted":  # not final: the resumed sweep continues it
            return
        if launcher.on_return is not None and not sweep_errors:
            try:
                launcher.on_return(i, returns[i])
            except Exception as error:  # the sweep's own (a misspelt objective path), raised when the stack is done:
                sweep_errors.append(error)  # its trials' results stand, for the corrected sweep to take up

    try:
        summaries = train_stacked(
            cfgs,
            run_dirs,
            Console(quiet=True),
            progress="auto",
            environments=environments,
            slots=rows,
            on_finish=on_finish,
        )
    except NotStackable as why:
        print(f"note: trials {_ranges(numbers)} train one at a time: {why}", flush=True)
        for i in group:
            returns[i] = _run_job(launcher, configs[i], launcher.task_function)
        return
    except Exception as error:  # the stack crashed: every trial still in it failed, the sweep goes on
        if sweep_errors:  # the sweep stops, as it does for this error with any launcher
            raise sweep_errors[0] from None
        failed = [i for i in group if i not in finished]
        for i in failed:
            returns[i].return_value, returns[i].status = error, JobStatus.FAILED
        failed_numbers = [configs[i].hydra.job.num for i in failed]
        print(f"  trials {_ranges(failed_numbers)} failed: {type(error).__name__}: {error}", flush=True)
        return
    if sweep_errors:
        raise sweep_errors[0]
    interrupted = [s for s in summaries if s["status"] == "interrupted"]
    if interrupted:  # the trials that never joined the stack have no files: the resumed sweep runs them
        from dlrunner.train.signals import exit_code

        raise SystemExit(exit_code(interrupted[0].get("signal")))


def _prepare(prepared: dict, i: int):
    """The task function of a trial that will train in a stack: validate its config, note its folder
    and its environment variables (its place in the sweep, the sweep's pruner)."""

    def task(cfg):
        try:
            validate(cfg)
            cfg.trainer.progress = "none"
            hydra_cfg = HydraConfig.get()
            environment = {str(k): str(v) for k, v in (hydra_cfg.job.env_set or {}).items()}
        except Exception as err:
            exit_if_stop(err)  # a stop signal behind a library's error: the sweep stops
            raise
        prepared[i] = (cfg, Path(hydra_cfg.runtime.output_dir), environment)

    return task


def _run_job(launcher, config, task):
    ret = run_job(
        hydra_context=launcher.hydra_context,
        task_function=task,
        config=config,
        job_dir_key="hydra.sweep.dir",
        job_subdir_key="hydra.sweep.subdir",
    )
    configure_log(launcher.config.hydra.hydra_logging, launcher.config.hydra.verbose)
    return ret


def _task_config(config):
    task_cfg = config.copy()
    with open_dict(task_cfg):
        del task_cfg["hydra"]
    return task_cfg


def _ranges(numbers: list[int]) -> str:
    return ", ".join(map(str, numbers)) if len(numbers) <= 6 else f"{numbers[0]}-{numbers[-1]}"
