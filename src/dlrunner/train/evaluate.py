"""Losses and whole-split evaluation: loss, error, accuracy (and F1 for binary tasks)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from dlrunner.diagnostics.metrics import f1_score, predictions
from dlrunner.runtime import EVAL_BATCH
from dlrunner.train.accelerate import model_device

AUX_WEIGHT = 0.3  # weight of an Inception network's side heads in the training loss (Szegedy et al.)


def example_losses(task: str):
    """The loss of each label on raw scores z[L], unreduced: sigmoid + cross-entropy for binary
    (SPEC A3), softmax + cross-entropy for several classes (SPEC D11), squared error for regression;
    for multilabel (multi-task, SPEC E20) one loss per example, the sigmoid cross-entropy summed over
    its labelled entries (NaN = no label). Scores may carry a time axis (many-to-many): a loss per step.

    Training and evaluation, solo and stacked, reduce these same values (a mean over the mini-batch,
    an exact sum over a split), so that a stacked trial's losses are its solo run's to the last bit."""
    if task == "binary":
        return lambda scores, y: F.binary_cross_entropy_with_logits(scores.squeeze(-1), y, reduction="none")
    if task == "multiclass":
        return lambda scores, y: F.cross_entropy(
            scores.reshape(-1, scores.shape[-1]), y.reshape(-1), reduction="none"
        ).view(y.shape)
    if task == "multilabel":
        return masked_multilabel_losses
    return lambda scores, y: F.mse_loss(scores.squeeze(-1), y, reduction="none")


def loss_function(task: str):
    """The mean loss of a mini-batch: the mean of ``example_losses`` (``training_losses`` for several classes)."""
    losses = training_losses if task == "multiclass" else example_losses(task)
    return lambda scores, y: losses(scores, y).mean()


def training_losses(scores: torch.Tensor, y: torch.Tensor, trials: int = 1) -> torch.Tensor:
    """The softmax cross-entropy of each label, as ``example_losses`` for several classes, in the
    layout that trains fastest: the classes along the middle axis of (trials, classes, labels).
    torch's log-softmax runs vectorised across the labels there; along the last axis it loops over
    rows, ~10x slower for 10 classes (measured for a stack of 16 trials' mini-batches of 100: fwd and
    bwd 131 against 258 us on 2 threads; a solo mini-batch 62 against 58 us). It works on each
    trial's block of labels alone, so a stacked trial's losses and gradients are its solo run's to
    the last bit; but the vector loop's tail rounds its own way, so evaluation, which cuts a split
    into chunks of other sizes in a stack, stays on ``example_losses``."""
    z = scores.reshape(trials, -1, scores.shape[-1]).transpose(1, 2).contiguous()
    return -F.log_softmax(z, 1).gather(1, y.reshape(trials, 1, -1)).view(y.shape)


def masked_multilabel_losses(scores: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per example, the sum over its labelled entries of the logistic loss; '?' entries (NaN) add nothing."""
    labelled = ~torch.isnan(y)
    losses = F.binary_cross_entropy_with_logits(scores, torch.nan_to_num(y), reduction="none")
    return (losses * labelled).sum(1)


def exact_mean(chunks: list[torch.Tensor]) -> float:
    """The mean of every value in ``chunks``, summed exactly (math.fsum): the same number however a
    split was cut into chunks, or a stack's trials into rows."""
    values = torch.cat([c.flatten() for c in chunks]) if chunks else torch.zeros(0)
    return math.fsum(values.double().tolist()) / max(1, values.numel())


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
    losses = example_losses(task)
    device = model_device(model)
    chunk_losses = []
    wrong = torch.zeros(y.shape[1:] if task == "multilabel" else (), device=device, dtype=torch.float64)
    predicted = []
    for start in range(0, len(X), EVAL_BATCH):
        # .to is a no-op when the split is on the model's device; a training split kept on the host comes over in chunks
        xb, yb = X[start : start + EVAL_BATCH].to(device), y[start : start + EVAL_BATCH].to(device)
        scores = model(xb).float()
        chunk_losses.append(losses(scores, yb))
        if task == "multilabel":
            wrong += ((scores > 0).float() != yb).logical_and(~torch.isnan(yb)).sum(0)
        elif task != "regression":
            guess = predictions(scores, task)
            wrong += (guess != yb).sum()
            predicted.append(guess)
    model.train(was_training)
    loss = exact_mean(chunk_losses)
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
