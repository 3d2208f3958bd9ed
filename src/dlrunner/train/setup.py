"""The setup every path shares -- a solo run, stacked trials, the checks and `dlrun summary`: the
model a config names, the mini-batch size, the optimizer over the model's parameter groups, and the
process's float settings. Each is built here once; no path constructs them itself."""

from __future__ import annotations

import math

import torch
from omegaconf import DictConfig

from dlrunner.config.builders import call_builder
from dlrunner.optim import parameter_groups
from dlrunner.train.transfer import freeze_layers, load_pretrained
from dlrunner.train.trial import FitSettings


def build_model(
    cfg: DictConfig, input_shape: tuple, n_outputs: int, pretrained: bool = True
) -> tuple[torch.nn.Module, list[str]]:
    """The model the config names, for examples of ``input_shape``, with the transfer settings
    applied (earlier weights when ``pretrained``, frozen layers); and sentences for the user."""
    model = call_builder(
        cfg.model, "model", n_inputs=math.prod(input_shape), n_outputs=n_outputs, input_shape=tuple(input_shape)
    )
    notes = list(getattr(model, "notes", []))
    if cfg.transfer.checkpoint and pretrained:
        notes += load_pretrained(model, cfg.transfer.checkpoint, cfg.transfer.new_head)
    notes += freeze_layers(model, cfg.transfer.freeze)
    return model, notes


FULL_BATCH_OPTIMIZERS = ("dlrunner.optim.build_gd",)  # batch gradient descent: every step sees the whole set


def batch_size_for(cfg: DictConfig, n_train: int) -> int:
    """Examples per step: ``trainer.batch_size`` ("full": the whole training set), at most the training
    set; batch gradient descent always takes the whole set. A config that still sets the former
    ``optimizer.batch_size`` gets that (``batch_size_note`` says so)."""
    if cfg.optimizer.get("_target_") in FULL_BATCH_OPTIMIZERS:
        return n_train
    size = cfg.optimizer.get("batch_size")
    size = cfg.trainer.batch_size if size is None else size
    return n_train if size == "full" else min(int(size), n_train)


def batch_size_note(cfg: DictConfig) -> list[str]:
    """The deprecation note for a config that sets optimizer.batch_size."""
    size = cfg.optimizer.get("batch_size")
    if size is None or cfg.optimizer.get("_target_") in FULL_BATCH_OPTIMIZERS:
        return []
    return [f"optimizer.batch_size={size} is deprecated: write trainer.batch_size={size} (it is used this time)"]


def build_optimizer(
    cfg: DictConfig, model: torch.nn.Module, batch_size: int, l2: float | None = None
) -> torch.optim.Optimizer:
    """The configured optimizer over ``model``'s parameter groups, with L2 as weight decay of lambda/m
    on the weight matrices (``l2``: lambda, by default ``regularization.l2``)."""
    l2 = cfg.regularization.l2 if l2 is None else l2
    groups = parameter_groups(model, l2, batch_size)
    return call_builder(cfg.optimizer, "optimizer", skip=("batch_size",), param_groups=groups)


def fit_settings(cfg: DictConfig, n_train: int, batch_size: int, **more) -> FitSettings:
    """How a run of ``cfg`` trains: its length, evaluation and checkpoint intervals, learning rate and
    schedule, regularization and diagnosis settings; ``more``: what only a solo run sets (the L2
    weights, the precision, the augmenter)."""
    trainer, regularization = cfg.trainer, cfg.regularization
    steps_per_epoch = math.ceil(n_train / batch_size)
    return FitSettings(
        total_steps=trainer.steps or trainer.epochs * steps_per_epoch,
        batch_size=batch_size,
        eval_every=trainer.eval_every or steps_per_epoch,
        checkpoint_every=trainer.checkpoint_every,
        base_lr=cfg.optimizer.lr,
        schedule=call_builder(cfg.schedule, "schedule"),
        l2=regularization.l2,
        grad_clip_norm=regularization.grad_clip_norm,
        early_stopping=regularization.early_stopping,
        patience=regularization.patience,
        human_error=cfg.data.human_error,
        significant_gap=cfg.diagnosis.significant_gap,
        **more,
    )


def sweep_pruner(environ, settings: FitSettings):
    """The sweep's pruner for this trial (``search.pruning.trial_pruner``), from ``environ``: the
    process environment, or a stacked trial's own ``hydra.job.env_set``; None outside a sweep that
    prunes. Settings that leave no rung before the trial's last step are bad input."""
    from dlrunner.errors import ConfigError, Problem
    from dlrunner.search.pruning import trial_pruner

    try:
        return trial_pruner(environ, settings.total_steps, settings.eval_every)
    except ValueError as err:
        raise ConfigError(
            Problem("hydra.sweeper.pruning.min_steps", None, f"{err} (this trial trains {settings.total_steps} steps)")
        ) from None


def prepare_process() -> None:
    """Float settings for training in this process. Weights shrunk by strong L2 reach denormal floats,
    which x86 CPUs process ~30x slower (measured: 35 vs 900 steps/s on MNIST-1D with lambda = 10);
    flushing them to zero costs no accuracy."""
    torch.set_flush_denormal(True)
