"""Losses and whole-split evaluation: loss, error, accuracy (and F1 for binary tasks)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from dlrunner.diagnostics.metrics import f1_score, predictions

EVAL_BATCH = 8192  # examples per no-grad forward pass during evaluation


def loss_function(task: str):
    """The loss on raw scores z[L]: sigmoid + cross-entropy for binary (SPEC A3), softmax +
    cross-entropy for several classes (SPEC D11), squared error for regression."""
    if task == "binary":
        return lambda scores, y: F.binary_cross_entropy_with_logits(scores.squeeze(-1), y)
    if task == "multiclass":
        return F.cross_entropy
    return lambda scores, y: F.mse_loss(scores.squeeze(-1), y)


@torch.no_grad()
def evaluate(model: torch.nn.Module, X: torch.Tensor, y: torch.Tensor, task: str) -> dict:
    """Mean loss and error over a whole split, in large no-grad batches, in eval mode.

    For regression the 'error' is the mean squared error. Returns Python floats: this is where
    the host waits for the device, once per evaluation.
    """
    was_training = model.training
    model.eval()
    loss_fn = loss_function(task)
    total_loss = torch.zeros((), device=X.device, dtype=torch.float64)
    wrong = torch.zeros((), device=X.device, dtype=torch.float64)
    predicted = []
    for start in range(0, len(X), EVAL_BATCH):
        xb, yb = X[start : start + EVAL_BATCH], y[start : start + EVAL_BATCH]
        scores = model(xb).float()
        total_loss += loss_fn(scores, yb).double() * len(xb)
        if task != "regression":
            guess = predictions(scores, task)
            wrong += (guess != yb).sum()
            predicted.append(guess)
    model.train(was_training)
    n = max(1, len(X))
    loss = float(total_loss) / n
    if task == "regression":
        return {"loss": loss, "error": loss}
    result = {"loss": loss, "error": float(wrong) / n, "accuracy": 1.0 - float(wrong) / n}
    if task == "binary":
        precision, recall, f1 = f1_score(torch.cat(predicted), y)
        result.update(precision=precision, recall=recall, f1=f1)
    return result


def l2_penalty(weights: list[torch.Tensor], l2: float, m: int) -> float:
    """(lambda / 2m) * sum of squared Frobenius norms of the weight matrices (SPEC B4)."""
    if not l2 or not weights:
        return 0.0
    with torch.no_grad():
        return float(l2 / (2 * m) * sum(w.double().pow(2).sum() for w in weights))
