"""Which trials can share a stack, and why a trial cannot.

Trials share a stack when their configs are equal except for per-trial values: the optimizer's
hyperparameters (lr, beta, beta1, beta2, eps), L2's lambda, gradient clipping, early stopping
and its patience, dropout keep probabilities, the seed, and the learning-rate schedule. Anything
else (width, depth, batch size, the data, the number of steps) changes shapes or the loop, so
those trials go to another stack (grouping by shape) or run alone.
"""

from __future__ import annotations

import json

from omegaconf import DictConfig, OmegaConf

from dlrunner.stack.optim import KINDS

PER_TRIAL = {
    "optimizer": ("lr", "beta", "beta1", "beta2", "eps"),
    "regularization": ("l2", "grad_clip_norm", "early_stopping", "patience"),
    "model": ("keep_prob", "input_keep_prob"),
    "trainer": ("seed",),
    "logger": ("name", "sweep_trial", "sweep_round"),
}
MODELS = ("dlrunner.models.build_mlp", "dlrunner.models.build_logreg", "dlrunner.models.build_cnn")
BATCH_NORM = "batch norm keeps running statistics per model: batch-norm models train alone"


def stack_key(cfg: DictConfig) -> str:
    """Equal for configs that may train in one stack."""
    config = OmegaConf.to_container(cfg, resolve=True)
    config.pop("schedule", None)  # each trial its own schedule: its learning rate is a number per step
    for section, keys in PER_TRIAL.items():
        for key in keys:
            config.get(section, {}).pop(key, None)
    return json.dumps(config, sort_keys=True, default=str)


def stack_problem(cfg: DictConfig) -> str | None:
    """Why this trial cannot be trained in a stack (None: it can), from its config alone. The data's
    task and batch-norm blocks of a CNN are checked once data and models are built (``train_stacked``)."""
    target = cfg.model._target_
    if target not in MODELS:
        return (
            f"model {target.rpartition('.')[2]} is not stacked (the MLP, logistic regression and the generic CNN are)"
        )
    if cfg.model.get("batch_norm"):
        return BATCH_NORM
    if cfg.optimizer._target_ not in KINDS:
        return f"optimizer {cfg.optimizer._target_} has no stacked form"
    checks = [
        (cfg.trainer.repeats > 1 or cfg.trainer.get("seeds"), "repeated runs (trainer.repeats/seeds) train alone"),
        (cfg.trainer.resume not in (False, None, "false"), "a resumed run trains alone"),
        (cfg.trainer.compile, "trainer.compile=true trains alone"),
        (cfg.trainer.precision != "fp32", "mixed precision trains alone"),
        (cfg.transfer.checkpoint, "transfer learning trains alone"),
        (any(v for v in OmegaConf.to_container(cfg.data.augment).values()), "data augmentation trains alone"),
    ]
    return next((reason for failed, reason in checks if failed), None)
