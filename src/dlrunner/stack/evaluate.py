"""Losses and whole-split metrics for every trial of a stack at once, in the solo forms
(``dlrunner.train.evaluate``): the same keys, the same definitions."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from dlrunner.diagnostics.metrics import f1_score, predictions
from dlrunner.runtime import EVAL_BATCH

TASKS = ("binary", "multiclass", "regression")  # one label per example; multilabel and per-step labels train alone


def per_trial_loss(task: str):
    """loss(scores (K, B, C), y (K, B)) -> (K,) mean loss of each trial's mini-batch."""

    def loss(scores: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        k, b = y.shape[:2]
        if task == "multiclass":  # over (K*B, C) rows: with its backward, ~1.35x faster than logsumexp(z) - z_y at K=16
            return F.cross_entropy(scores.reshape(k * b, -1), y.reshape(-1), reduction="none").view(k, b).mean(1)
        if task == "binary":
            return F.binary_cross_entropy_with_logits(scores.squeeze(-1), y, reduction="none").mean(1)
        return F.mse_loss(scores.squeeze(-1), y, reduction="none").mean(1)

    return loss


@torch.no_grad()
def evaluate_stack(stacked, X: torch.Tensor, y: torch.Tensor, task: str, trials: list[int]) -> dict[int, dict]:
    """Loss and error (and precision, recall, F1 for binary tasks) of each trial in ``trials`` on one split."""
    loss_fn = per_trial_loss(task)
    device = stacked.device
    total = torch.zeros(stacked.k, device=device, dtype=torch.float64)
    wrong = torch.zeros(stacked.k, device=device, dtype=torch.float64)
    predicted = []
    # K trials' activations for a chunk of examples are K times a solo run's: smaller chunks keep them
    # the size of a solo evaluation's. Measured for K=16 MLP trials on the 4000 training examples:
    # 67 ms in one chunk, 25 ms in chunks of 512; K=64: 313 ms, 110 ms in chunks of 256.
    chunk = max(256, EVAL_BATCH // stacked.k)
    for start in range(0, len(X), chunk):
        xb, yb = X[start : start + chunk].to(device), y[start : start + chunk].to(device)
        scores = stacked.eval_forward(xb).float()  # (K, n, C)
        total += loss_fn(scores, yb.expand(stacked.k, *yb.shape)).double() * len(xb)
        if task != "regression":
            guess = predictions(scores.reshape(-1, scores.shape[-1]), task).view(stacked.k, -1)
            wrong += (guess != yb).sum(1)
            predicted.append(guess)
    losses = (total / max(1, len(X))).tolist()
    if task == "regression":
        return {k: {"loss": losses[k], "error": losses[k]} for k in trials}
    errors = (wrong / max(1, y.numel())).tolist()
    results = {k: {"loss": losses[k], "error": errors[k], "accuracy": 1.0 - errors[k]} for k in trials}
    if task == "binary":
        guesses = torch.cat(predicted, dim=1)
        for k in trials:
            precision, recall, f1 = f1_score(guesses[k].flatten(), y.flatten().to(device))
            results[k].update(precision=precision, recall=recall, f1=f1)
    return results


def l2_penalties(stacked, l2: torch.Tensor, batch_size: int) -> list[float]:
    """(lambda/2m) * sum of squared weights, per trial (SPEC B4); ``l2`` is (K,)."""
    with torch.no_grad():
        squares = (stacked.flat.double() ** 2 * stacked.weight_mask.double()).sum(1)
        return (l2.double() / (2 * batch_size) * squares).tolist()
