"""Losses and whole-split metrics for every trial of a stack at once, in the solo forms
(``dlrunner.train.evaluate``): the same keys, the same definitions."""

from __future__ import annotations

import torch

from dlrunner.diagnostics.metrics import f1_score, predictions
from dlrunner.runtime import EVAL_BATCH
from dlrunner.train.evaluate import exact_mean, example_losses, l2_penalty, training_losses

TASKS = ("binary", "multiclass", "regression")  # one label per example; multilabel and per-step labels train alone


def per_trial_losses(task: str):
    """losses(scores (K, B, ...), y (K, B, ...)) -> (K, B, ...): each trial's ``example_losses``,
    computed over the K*B rows at once (with its backward, ~1.35x faster than per trial at K=16)."""
    losses = example_losses(task)

    def stacked(scores: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        k, b = y.shape[:2]
        return losses(scores.flatten(0, 1), y.flatten(0, 1)).view(k, b, *y.shape[2:])

    return stacked


def per_trial_loss(task: str):
    """loss(scores (K, B, C), y (K, B)) -> (K,) mean loss of each trial's mini-batch, as ``loss_function``."""
    if task == "multiclass":  # the solo loss's own layout, a block of labels per trial
        return lambda scores, y: training_losses(scores, y, len(y)).flatten(1).mean(1)
    losses = per_trial_losses(task)
    return lambda scores, y: losses(scores, y).flatten(1).mean(1)


@torch.no_grad()
def evaluate_stack(stacked, X: torch.Tensor, y: torch.Tensor, task: str, trials: list[int]) -> dict[int, dict]:
    """Loss and error (and precision, recall, F1 for binary tasks) of the trials (rows) ``trials`` on one split."""
    losses_of = per_trial_losses(task)
    device, count = stacked.device, len(trials)
    chunk_losses = []
    wrong = torch.zeros(count, device=device, dtype=torch.float64)
    predicted = []
    # K trials' activations for a chunk of examples are K times a solo run's: smaller chunks keep them
    # the size of a solo evaluation's. Measured for K=16 MLP trials on the 4000 training examples:
    # 67 ms in one chunk, 25 ms in chunks of 512; K=64: 313 ms, 110 ms in chunks of 256.
    chunk = max(256, EVAL_BATCH // count)
    for start in range(0, len(X), chunk):
        xb, yb = X[start : start + chunk].to(device), y[start : start + chunk].to(device)
        scores = stacked.eval_forward(xb, trials).float()  # (count, n, C)
        chunk_losses.append(losses_of(scores, yb.expand(count, *yb.shape)))
        if task != "regression":
            guess = predictions(scores.reshape(-1, scores.shape[-1]), task).view(count, -1)
            wrong += (guess != yb).sum(1)
            predicted.append(guess)
    losses = {k: exact_mean([c[i] for c in chunk_losses]) for i, k in enumerate(trials)}
    if task == "regression":
        return {k: {"loss": losses[k], "error": losses[k]} for k in trials}
    errors = (wrong / max(1, y.numel())).tolist()
    results = {k: {"loss": losses[k], "error": errors[i], "accuracy": 1.0 - errors[i]} for i, k in enumerate(trials)}
    if task == "binary":
        guesses = torch.cat(predicted, dim=1)
        for i, k in enumerate(trials):
            precision, recall, f1 = f1_score(guesses[i].flatten(), y.flatten().to(device))
            results[k].update(precision=precision, recall=recall, f1=f1)
    return results


def l2_penalties(stacked, l2: list[float], batch_size: int) -> list[float]:
    """Each trial's (lambda/2m) * sum of squared weights (SPEC B4), as its solo run computes it."""
    weights = [i for i, shape in enumerate(stacked.shapes) if len(shape) > 1]
    rows = stacked.flat.detach()
    return [l2_penalty([rows[k].split(stacked.sizes)[i] for i in weights], l2[k], batch_size) for k in range(stacked.k)]
