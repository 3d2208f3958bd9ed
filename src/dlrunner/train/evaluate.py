"""Losses and whole-split evaluation: loss, error, accuracy (and F1 for binary tasks)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from dlrunner.diagnostics.metrics import f1_score, predictions
from dlrunner.runtime import EVAL_BATCH
from dlrunner.train.accelerate import model_device

AUX_WEIGHT = 0.3  # weight of an Inception network's side heads in the training loss (Szegedy et al.)


def loss_function(task: str):
    """The loss on raw scores z[L]: sigmoid + cross-entropy for binary (SPEC A3), softmax +
    cross-entropy for several classes (SPEC D11), squared error for regression, and for multilabel
    (multi-task, SPEC E20) sigmoid cross-entropy summed over the labelled entries only (NaN = no
    label) and divided by the number of examples. Scores may carry a time axis (many-to-many)."""
    if task == "binary":
        return lambda scores, y: F.binary_cross_entropy_with_logits(scores.squeeze(-1), y)
    if task == "multiclass":
        return lambda scores, y: F.cross_entropy(scores.reshape(-1, scores.shape[-1]), y.reshape(-1))
    if task == "multilabel":
        return masked_multilabel_loss
    return lambda scores, y: F.mse_loss(scores.squeeze(-1), y)


def masked_multilabel_loss(scores: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(1/m) sum over examples and labelled entries of the logistic loss; '?' entries (NaN) add nothing."""
    labelled = ~torch.isnan(y)
    losses = F.binary_cross_entropy_with_logits(scores, torch.nan_to_num(y), reduction="none")
    return (losses * labelled).sum() / max(1, len(y))


def training_loss(outputs, y: torch.Tensor, loss_fn) -> torch.Tensor:
    """The loss of a mini-batch. A model with side heads (GoogLeNet) returns (main, side, ...) in
    training mode: their losses are added with weight 0.3, as in the Inception paper."""
    if isinstance(outputs, (tuple, list)):
        main, *side = outputs
        return loss_fn(main, y) + AUX_WEIGHT * sum(loss_fn(s, y) for s in side)
    return loss_fn(outputs, y)


@torch.no_grad()
def evaluate(model: torch.nn.Module, X: torch.Tensor, y: torch.Tensor, task: str) -> dict:
    """Mean loss and error over a whole split, in large no-grad batches, in eval mode.

    For regression the 'error' is the mean squared error. Errors count labels, so a sequence
    labelled at every step (many-to-many) or a multilabel example counts each of its labels; a
    multilabel split also gets one error per task ('task_errors'). Returns Python floats: this is
    where the host waits for the device, once per evaluation.
    """
    was_training = model.training
    model.eval()
    loss_fn = loss_function(task)
    device = model_device(model)
    total_loss = torch.zeros((), device=device, dtype=torch.float64)
    wrong = torch.zeros(y.shape[1:] if task == "multilabel" else (), device=device, dtype=torch.float64)
    predicted = []
    for start in range(0, len(X), EVAL_BATCH):
        # .to is a no-op when the split is on the model's device; a training split kept on the host comes over in chunks
        xb, yb = X[start : start + EVAL_BATCH].to(device), y[start : start + EVAL_BATCH].to(device)
        scores = model(xb).float()
        total_loss += loss_fn(scores, yb).double() * len(xb)
        if task == "multilabel":
            wrong += ((scores > 0).float() != yb).logical_and(~torch.isnan(yb)).sum(0)
        elif task != "regression":
            guess = predictions(scores, task)
            wrong += (guess != yb).sum()
            predicted.append(guess)
    model.train(was_training)
    loss = float(total_loss) / max(1, len(X))
    if task == "regression":
        return {"loss": loss, "error": loss}
    if task == "multilabel":
        labelled = (~torch.isnan(y)).sum(0).double().to(device)
        task_errors = (wrong / labelled.clamp(min=1)).tolist()
        error = float(wrong.sum() / labelled.sum().clamp(min=1))
        return {"loss": loss, "error": error, "accuracy": 1.0 - error, "task_errors": task_errors}
    error = float(wrong) / max(1, y.numel())
    result = {"loss": loss, "error": error, "accuracy": 1.0 - error}
    if task == "binary":
        precision, recall, f1 = f1_score(torch.cat(predicted).flatten(), y.flatten().to(device))
        result.update(precision=precision, recall=recall, f1=f1)
    return result


def l2_penalty(weights: list[torch.Tensor], l2: float, m: int) -> float:
    """(lambda / 2m) * sum of squared Frobenius norms of the weight matrices (SPEC B4)."""
    if not l2 or not weights:
        return 0.0
    with torch.no_grad():
        return float(l2 / (2 * m) * sum(w.double().pow(2).sum() for w in weights))
