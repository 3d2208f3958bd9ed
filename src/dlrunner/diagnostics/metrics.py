"""Error, accuracy and F1 computed from model outputs (SPEC D10, E3)."""

from __future__ import annotations

import torch


def probabilities(scores: torch.Tensor, task: str) -> torch.Tensor:
    """The output layer's activation: sigmoid for binary, softmax e^z / sum(e^z) for several classes."""
    if task == "binary":
        return torch.sigmoid(scores.squeeze(-1))
    return torch.softmax(scores, dim=-1)


def predictions(scores: torch.Tensor, task: str) -> torch.Tensor:
    """Class predictions from raw scores z[L]: sigmoid > 0.5 (z > 0) for binary, argmax of softmax otherwise."""
    if task == "binary":
        return (scores.squeeze(-1) > 0).to(torch.float32)
    return scores.argmax(dim=-1)


def f1_score(predicted: torch.Tensor, actual: torch.Tensor) -> tuple[float, float, float]:
    """Precision, recall and F1 = 2PR/(P+R) of the positive class (SPEC E3); 0 where undefined."""
    true_positive = float(((predicted == 1) & (actual == 1)).sum())
    precision = true_positive / max(1.0, float((predicted == 1).sum()))
    recall = true_positive / max(1.0, float((actual == 1).sum()))
    return precision, recall, f1_from_precision_recall(precision, recall)


def f1_from_precision_recall(precision: float, recall: float) -> float:
    """F1 = 2PR/(P+R), the harmonic mean: (0.95, 0.90) -> 0.924 (SPEC E3)."""
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0
