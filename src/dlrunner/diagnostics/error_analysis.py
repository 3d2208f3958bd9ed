"""Predictions on a split, the confusion matrix and the misclassified examples (raw material of
the course's error analysis, SPEC E13)."""

from __future__ import annotations

import torch

from dlrunner.diagnostics.metrics import predictions, probabilities
from dlrunner.runtime import EVAL_BATCH


@torch.no_grad()
def predict(model: torch.nn.Module, X: torch.Tensor, task: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Predicted class and its probability for every example (classification tasks)."""
    was_training = model.training
    model.eval()
    classes, confidence = [], []
    for start in range(0, len(X), EVAL_BATCH):
        scores = model(X[start : start + EVAL_BATCH]).float()
        guess = predictions(scores, task)
        probs = probabilities(scores, task)
        if task == "binary":
            confidence.append(torch.where(guess == 1, probs, 1 - probs))
        else:
            confidence.append(probs.gather(1, guess[:, None]).squeeze(1))
        classes.append(guess.long())
    model.train(was_training)
    return torch.cat(classes).cpu(), torch.cat(confidence).cpu()


def confusion_matrix(actual, predicted, n_classes: int) -> list[list[int]]:
    """counts[true][predicted]."""
    counts = torch.zeros(n_classes, n_classes, dtype=torch.long)
    counts.index_put_(
        (torch.as_tensor(actual).long(), torch.as_tensor(predicted).long()),
        torch.ones(len(actual), dtype=torch.long),
        accumulate=True,
    )
    return counts.tolist()


def input_picture(values: list[float]):
    """How an input can be shown: a square image when its length is a square (8x8 digits), else
    None (a 1-D signal or a feature vector is drawn as a line)."""
    side = round(len(values) ** 0.5)
    return (
        [values[r * side : (r + 1) * side] for r in range(side)] if side >= 4 and side * side == len(values) else None
    )


def misclassified(model, X: torch.Tensor, y: torch.Tensor, task: str, limit: int = 100, mean=None, std=None) -> dict:
    """The dev set's confusion matrix and up to ``limit`` misclassified examples, most confident
    first, with their inputs as they were before normalisation (``mean``, ``std``) when given."""
    predicted, confidence = predict(model, X, task)
    actual = y.long().cpu()
    wrong = (predicted != actual).nonzero().squeeze(1)
    order = wrong[confidence[wrong].argsort(descending=True)][:limit]
    # the chosen rows' values as lists at once: indexing tensors an entry at a time costs ~1 ms per 100 rows
    inputs = _raw(X[order.to(X.device)], mean, std)
    rows = [
        {"index": i, "true": t, "predicted": p, "confidence": c, "input": x}
        for i, t, p, c, x in zip(
            order.tolist(), actual[order].tolist(), predicted[order].tolist(), confidence[order].tolist(), inputs
        )
    ]
    n_classes = 2 if task == "binary" else int(max(int(actual.max()), int(predicted.max())) + 1)
    return {
        "confusion_matrix": confusion_matrix(actual, predicted, n_classes),
        "misclassified": rows,
        "n_misclassified": len(wrong),
        "y_true": actual.tolist(),
        "y_pred": predicted.tolist(),
    }


def _raw(x: torch.Tensor, mean, std) -> list[list[float]]:
    """Examples ``x`` (n, ...) as they were before normalisation, each as a list of up to 1024 values."""
    values = x.cpu()
    # per-feature statistics have the example's shape, per-channel ones (C, 1, ...): both broadcast
    if mean is not None:
        values = values * torch.as_tensor(std) + torch.as_tensor(mean)
    return (values.flatten(1) if values.dim() > 1 else values[:, None])[:, :1024].tolist()
