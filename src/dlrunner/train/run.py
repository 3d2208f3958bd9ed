"""One experiment, end to end: config -> data -> model -> optimizer -> fit -> diagnosis -> files.

Everything that can reject the user's input (validation, loading the data, building the model)
happens before the first file of the run is written, so bad input leaves nothing behind that
looks like a result.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from omegaconf import DictConfig, OmegaConf

from dlrunner.config.validate import validate
from dlrunner.data import build_data
from dlrunner.data.augment import build_augmenter
from dlrunner.diagnostics import diagnose
from dlrunner.diagnostics.decide import OPTIMIZING, optimizing_metric, satisficing_metrics
from dlrunner.diagnostics.error_analysis import misclassified
from dlrunner.diagnostics.report import render_report
from dlrunner.errors import ConfigError, Problem
from dlrunner.internals import restore_dynamo_wrappers, spare_dynamo_import
from dlrunner.loggers import build_logger
from dlrunner.models import count_parameters, weight_matrices
from dlrunner.runtime import cpu_threads_for, pick_device
from dlrunner.search.constraints import check_constraints
from dlrunner.train.accelerate import place_data, to_channels_last, wants_channels_last
from dlrunner.train.checkpoint import HOW_IT_RUNS, choose_resume_checkpoint, load_checkpoint
from dlrunner.train.evaluate import evaluate
from dlrunner.train.hints import resume_hint, shown_path
from dlrunner.train.loop import fit
from dlrunner.train.outputs import RunFiles, checkpoint_attachments, failure, mark_continued, write_analysis
from dlrunner.train.progress import make_progress
from dlrunner.train.setup import (
    batch_size_for,
    batch_size_note,
    build_model,
    build_optimizer,
    fit_settings,
    prepare_process,
    sweep_pruner,
)
from dlrunner.train.signals import STOP
from dlrunner.train.trial import FitSettings

if TYPE_CHECKING:
    from rich.console import Console


def train(cfg: DictConfig, run_dir: Path, console: Console | None = None) -> dict:
    """Train the experiment ``cfg`` describes, writing its results into ``run_dir``; return the summary."""
    stream = None
    if console is None:  # dlrun's own output: a closed reader never fails the run, a copy in console.log
        from dlrunner.console import ConsoleStream, make_console

        stream = ConsoleStream()
        console = make_console(file=stream)
    validate(cfg)
    if cfg.trainer.repeats > 1 or cfg.trainer.get("seeds"):
        from dlrunner.train.repeats import train_repeats

        return train_repeats(cfg, run_dir, console, train)
    trainer = cfg.trainer
    current = OmegaConf.to_container(cfg, resolve=True)
    auto = str(trainer.resume).lower() == "auto"
    resume_path, resume, why = resume_point(cfg, run_dir)

    prepare_process()
    device = pick_device(trainer.device)
    precision = trainer.precision
    if precision != "fp32" and device.type != "cuda":
        if trainer.device != "auto":
            raise ConfigError(
                Problem(
                    "trainer.precision", precision, f"bf16/fp16 autocast needs a CUDA device, not {device}; use fp32"
                )
            )
        console.print(f"[yellow]trainer.precision={precision} needs CUDA; training in fp32 on {device}[/yellow]")
        precision = "fp32"
    torch.manual_seed(trainer.seed)

    data = build_data(cfg.data)
    placement = place_data(data, device, trainer.data_on_device)
    n_train = len(data.splits["train"][0])
    model, model_notes = build_model(cfg, data.input_shape, data.n_outputs, pretrained=resume is None)
    notes = data.notes + model_notes + batch_size_note(cfg)
    model = model.to(device)
    if wants_channels_last(trainer.channels_last, device, data.input_shape, model):
        to_channels_last(model, data)
    if placement == "host":
        notes.append(
            "the training set does not fit in the device's memory: it stays in pinned host memory "
            "and each mini-batch is copied over"
        )
    if resume is not None:
        model.load_state_dict(resume["model"])
    augment_settings = OmegaConf.to_container(cfg.data.augment)
    check_augmentation_fits(augment_settings, cfg.model._target_)
    augment = build_augmenter(**augment_settings, input_shape=data.input_shape)
    check_class_weights(cfg.metric.class_weights, data)
    batch_size = batch_size_for(cfg, n_train)
    if device.type == "cpu":
        torch.set_num_threads(trainer.threads or cpu_threads_for(model, data.input_shape, batch_size))
    if trainer.compile:
        restore_dynamo_wrappers()  # left by an earlier run in this process
    else:
        spare_dynamo_import()  # ~1.2 s of start-up: torch.optim would import torch._dynamo only to not compile
    optimizer = build_optimizer(cfg, model, batch_size)
    if resume is not None:
        # Keep the state (moments, step counts) but take the hyperparameters from the config, so
        # that a babysat run can resume with a nudged learning rate or lambda (SPEC D5).
        fresh = [{k: v for k, v in group.items() if k != "params"} for group in optimizer.param_groups]
        optimizer.load_state_dict(resume["optimizer"])
        for group, settings in zip(optimizer.param_groups, fresh):
            group.update(settings)
    settings = fit_settings(
        cfg, n_train, batch_size, weights=weight_matrices(model), precision=precision, augment=augment
    )
    settings.pruner = sweep_pruner(os.environ, settings)
    total_steps = settings.total_steps
    if resume is not None:
        # auto: trained to the end, killed before its summary; fit adds none
        if total_steps <= resume["step"] and not auto:
            raise ConfigError(
                Problem(
                    "trainer.steps" if trainer.steps else "trainer.epochs",
                    trainer.steps or trainer.epochs,
                    f"the checkpoint {resume_path} is already at step {resume['step']}; raise it to train further",
                )
            )
        console.print(
            f"Resuming from {resume_path} at step {resume['step']} (epoch {resume['epoch']}): {why}", highlight=False
        )
    if trainer.compile:
        model.compile()  # in place: state_dict keys stay those of the plain model, so checkpoints stay portable

    # From here on the run folder fills up.
    outputs = RunFiles(run_dir)
    outputs.attachments = checkpoint_attachments(data, current)
    outputs.start(history=history_before(resume_path, resume))
    outputs.write_provenance(trainer.seed, str(device))
    if resume_path is not None and resume_path.parent.name == "checkpoints":
        mark_continued(resume_path.parent.parent, run_dir)  # the old folder says where its run went on
    if stream is not None:
        stream.copy_to(run_dir / "console.log")
    console.print(f"Run folder: {shown_path(run_dir)}", highlight=False)
    for note in notes:
        console.print(f"[yellow]note: {note}[/yellow]")
    logger = build_logger(cfg, run_dir, console)
    outputs.listeners.append(logger.log_metrics)
    status = "failed"
    stop = STOP.install()  # SIGTERM, like Ctrl-C, stops fit at its next step with a checkpoint (train/signals.py)
    try:
        with make_progress(trainer.progress, total_steps, resume["step"] if resume else 0, console) as progress:
            result = fit(model, optimizer, data, settings, outputs, progress, resume)
        stop.finish(result.status == "interrupted")  # from here a signal no longer interrupts: the result gets written
        if result.status == "pruned":
            console.print(f"[yellow]{result.message}[/yellow]", highlight=False)
        resumed_from = {"checkpoint": str(resume_path), "step": resume["step"]} if resume else None
        summary = summarize(cfg, data, model, result, settings, resumed_from)
        if result.status == "interrupted":
            summary["signal"] = stop.name
            summary["message"] = f"{stop.name}: {summary['message']}; {resume_hint(run_dir)}"
        status = summary["status"]
        outputs.write_summary(summary)
        analysis = None
        # confusion matrix and misclassified dev examples, for review
        if data.task in ("binary", "multiclass") and data.splits["dev"][1].ndim == 1:
            analysis = misclassified(
                model, *data.splits["dev"], data.task, cfg.logger.max_misclassified, data.mean, data.std
            )
            write_analysis(analysis, data.class_names, run_dir)
        if cfg.logger.backend != "none":
            logger.log_summary(summary, analysis)
            if cfg.logger.log_checkpoint and (outputs.checkpoint_dir / "best.pt").is_file():
                logger.log_checkpoint(outputs.checkpoint_dir / "best.pt")
    except Exception as err:
        # A crash mid-run still leaves a summary that says so, next to the metrics it reached.
        outputs.write_summary(failure(err))
        raise
    finally:
        outputs.close()
        logger.close(status)  # always: the next trial in this process logs into its own run
        stop.restore()  # last: on SLURM it may hand SIGUSR2 on to submitit, which requeues the job and exits
    render_report(summary, console)
    console.print(f"Run folder: {run_dir}", highlight=False)
    if stream is not None:
        stream.stop_copy()
    return summary


def check_augmentation_fits(settings: dict, model_target: str) -> None:
    """A sequence model reads (T, features): flips, crops and colour shifts are meant for (C, ...)
    images and signals and would scramble the time axis. Input noise works on anything."""
    if not model_target.endswith("build_rnn"):
        return
    bad = [k for k in ("hflip", "crop_padding", "rotation", "color_shift") if settings.get(k)]
    if bad:
        raise ConfigError(
            [
                Problem(
                    f"data.augment.{k}",
                    settings[k],
                    "not for sequences (T, features) of a recurrent model: only data.augment.noise_std applies",
                )
                for k in bad
            ]
        )


def check_class_weights(weights, data) -> None:
    """metric.class_weights may only name classes the data has."""
    if not weights:
        return
    n = data.n_classes if data.task in ("binary", "multiclass") else None
    if n is None:
        raise ConfigError(
            Problem(
                "metric.class_weights",
                dict(weights),
                f"weights by class need a classification task; this one is {data.task}",
            )
        )
    bad = [k for k in weights if int(k) >= n]
    if bad:
        raise ConfigError(
            Problem("metric.class_weights", dict(weights), f"class {bad[0]} does not exist; classes are 0 to {n - 1}")
        )


def resume_point(cfg: DictConfig, run_dir: Path, setting=None) -> tuple[Path | None, dict | None, str]:
    """The checkpoint ``trainer.resume`` (or ``setting``) means for this run: its path, its loaded
    state and why that one; (None, None, ...) for a fresh start. ``auto`` skips a folder that held
    another experiment."""
    setting = cfg.trainer.resume if setting is None else setting
    current = OmegaConf.to_container(cfg, resolve=True)
    resume_path, why = choose_resume_checkpoint(setting, run_dir, Path.cwd() / "outputs", current)
    resume = load_checkpoint(resume_path) if resume_path else None
    if str(setting).lower() == "auto" and resume is not None and not same_run(resume.get("config") or {}, current):
        return None, None, why  # this folder held another experiment: start afresh, as without auto
    if resume is not None:
        check_resumable(resume, current, resume_path)
    return resume_path, resume, why


def check_resumable(resume: dict, current: dict, path: Path) -> None:
    """A checkpoint only fits the same data, model and kind of optimizer; other settings may change."""
    saved = resume.get("config") or {}
    differing = [key for key in ("data", "model") if saved.get(key) != current.get(key)]
    if saved.get("optimizer", {}).get("_target_") != current["optimizer"]["_target_"]:
        differing.append("optimizer")
    if differing:
        raise ConfigError(
            Problem(
                "trainer.resume",
                str(path),
                f"that checkpoint's {' and '.join(differing)} config differs from this run's; "
                "give the same data, model and optimizer overrides as the run you resume (learning rate, "
                "regularisation and trainer settings may change)",
            )
        )


def same_run(saved: dict, current: dict) -> bool:
    """Whether a checkpoint's config is this run's, apart from how it runs (``HOW_IT_RUNS``: how it
    resumes, shows progress and how many CPU threads it takes)."""

    def comparable(config: dict) -> dict:
        trainer = {k: v for k, v in (config.get("trainer") or {}).items() if k not in HOW_IT_RUNS}
        return {**config, "trainer": trainer}

    return comparable(saved) == comparable(current)


def summarize(cfg, data, model, result, settings: FitSettings, resumed_from: dict | None = None) -> dict:
    """Final metrics per split, the diagnosis and timings: the content of summary.json."""
    names = ["train", "dev", "train_dev", "train_general", "train_target"] + (["test"] if cfg.trainer.eval_test else [])
    evaluated = result.final_metrics or {}  # the loop's last evaluation, when it was of these weights
    metrics = {
        name: evaluated[name] if name in evaluated else evaluate(model, *data.splits[name], data.task)
        for name in names
        if name in data.splits
    }
    errors = {name: m["error"] for name, m in metrics.items()}
    diagnosis = diagnose(
        train=errors["train"],
        dev=errors["dev"],
        human=cfg.data.human_error,
        train_dev=errors.get("train_dev"),
        test=errors.get("test"),
        significant_gap=settings.significant_gap,
        sizes={name: len(data.splits[name][0]) for name in metrics},
        scale=data.error_scale,
    )
    message = result.message
    metric = cfg.metric
    class_weights = {int(k): float(v) for k, v in (metric.class_weights or {}).items()}
    chosen = {
        name: optimizing_metric(
            model,
            *data.splits[name],
            data.task,
            data.n_classes,
            metric.optimizing,
            class_weights,
            (data.weights or {}).get(name),
            error=errors[name],
        )
        for name in metrics
    }
    satisficing = satisficing_metrics(model, data.splits["dev"][0][:1], result.train_s)
    if result.status == "diverged":
        diagnosis["verdict"] = "diverged"
        diagnosis["advice"] = ["The loss became NaN or infinite: lower the learning rate (and check the input scale)."]
    if "train_dev" in errors and cfg.data.get("target") is not None:
        diagnosis["mismatch_table"] = mismatch_table(errors, cfg.data.human_error, cfg.data.get("target_human_error"))
    if cfg.trainer.eval_test is False and data.splits.get("test") is not None:
        diagnosis["notes"].append(
            "the test set was not evaluated (trainer.eval_test=true evaluates it, once you are done tuning)"
        )
    summary = {
        "status": result.status,
        "message": message,
        "task": data.task,
        "n_classes": data.n_classes,
        "class_names": data.class_names,
        "sizes": {name: len(xy[0]) for name, xy in data.splits.items()},
        "metrics": metrics,
        "diagnosis": diagnosis,
        "metric": {"name": metric.optimizing, "higher_is_better": OPTIMIZING[metric.optimizing], **chosen},
        "satisficing": satisficing,
        "n_params": count_parameters(model),
        "n_params_total": sum(p.numel() for p in model.parameters()),
        "best": {"step": result.best_step, "dev_error": result.best_dev_error},
        "resumed_from": resumed_from,
        "signal": None,  # train() names the signal that interrupted the run
        "stopped_early": result.stopped_early,
        "timing": {
            "train_s": result.train_s,
            "eval_s": result.eval_s,
            "steps": result.step,
            "epochs": result.epoch,
            "steps_per_s": result.step / result.train_s if result.train_s else None,
        },
        "config": OmegaConf.to_container(cfg, resolve=True),
    }
    if metric.satisficing:  # whether this run meets each threshold, with the value it saw
        checks = {text: check_constraints(summary, [text]) for text in metric.satisficing}
        summary["satisficing"]["constraints"] = {
            text: {"value": seen[text], "met": met} for text, (met, seen) in checks.items()
        }
        summary["satisficing"]["met"] = all(met for met, _ in checks.values())
    return summary


def mismatch_table(errors: dict, human: float | None, target_human: float | None) -> dict:
    """The course's two-dimensional table (SPEC E17): rows human level / error on examples trained
    on / error on examples not trained on; columns the general (training) distribution and the
    target (dev/test) distribution. None where the data has no such examples."""
    return {
        "general": {
            "human": human,
            "trained_on": errors.get("train_general", errors["train"]),
            "not_trained_on": errors["train_dev"],
        },
        "target": {
            "human": target_human if target_human is not None else human,
            "trained_on": errors.get("train_target"),
            "not_trained_on": errors["dev"],
        },
    }


def history_before(resume_path: Path | None, resume: dict | None) -> list[str]:
    """metrics.jsonl lines of the resumed run up to its checkpoint, so the new folder has the whole curve."""
    if resume_path is None:
        return []
    import json

    source = resume_path.parent.parent / "metrics.jsonl"
    if not source.is_file():
        return []
    lines = source.read_text().splitlines()
    return [line for line in lines if line.strip() and json.loads(line)["step"] <= resume["step"]]
