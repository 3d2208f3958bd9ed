"""Metrics that decide (SPEC E3, E4, E7): one optimizing metric chosen in the config, and the
satisficing metrics every run measures (parameters, size on disk, latency, training time).

    metric:
      optimizing: f1                 # error | accuracy | precision | recall | f1 | weighted_error | segment_error
      class_weights: {1: 10}         # weighted_error: an example weighs its true class's weight (others 1)
      satisficing: ["satisficing.latency_ms <= 100"]
"""

from __future__ import annotations

import statistics
import time

import torch

from dlrunner.diagnostics.metrics import f1_from_precision_recall, predictions

OPTIMIZING = {  # name -> higher is better
    "error": False,
    "accuracy": True,
    "precision": True,
    "recall": True,
    "f1": True,
    "weighted_error": False,
    "segment_error": False,
}


def weighted_error(predicted: torch.Tensor, actual: torch.Tensor, weights: torch.Tensor) -> float:
    """(1 / sum w) * sum w(i) * 1{y_hat(i) != y(i)} (SPEC E7): w = 10 for examples that must not be missed."""
    weights = weights.double()
    return float((weights * (predicted != actual).double()).sum() / weights.sum().clamp(min=1e-12))


def segment_error(predicted: torch.Tensor, actual: torch.Tensor, segments: torch.Tensor) -> float:
    """The average of the per-segment errors (SPEC E3): every segment counts the same, however many
    examples it has. Here the segments are the true classes (a balanced error)."""
    errors = [float((predicted[segments == s] != actual[segments == s]).double().mean()) for s in segments.unique()]
    return sum(errors) / len(errors) if errors else 0.0


def macro_precision_recall(predicted: torch.Tensor, actual: torch.Tensor, n_classes: int) -> tuple[float, float, float]:
    """Precision and recall of the positive class for binary tasks; their mean over classes
    (macro average) for several classes; and F1 = 2PR/(P+R) of those."""
    classes = [1] if n_classes <= 2 else range(n_classes)
    precisions, recalls = [], []
    for c in classes:
        true_positive = float(((predicted == c) & (actual == c)).sum())
        precisions.append(true_positive / max(1.0, float((predicted == c).sum())))
        recalls.append(true_positive / max(1.0, float((actual == c).sum())))
    precision, recall = statistics.mean(precisions), statistics.mean(recalls)
    return precision, recall, f1_from_precision_recall(precision, recall)


@torch.no_grad()
def optimizing_metric(
    model,
    X: torch.Tensor,
    y: torch.Tensor,
    task: str,
    n_classes: int | None,
    name: str,
    class_weights: dict,
    example_weights: torch.Tensor | None = None,
    error: float | None = None,
) -> float | None:
    """The chosen single-number metric on one split (None when it does not apply to the task).
    The weighted error weighs each example by ``example_weights`` when the data gives them,
    else by its true class's entry in ``class_weights`` (1 for classes not named). ``error``: the
    split's error when the caller has it already (error and accuracy then need no second pass)."""
    if task not in ("binary", "multiclass") or y.ndim != 1:
        return None  # regression, multilabel, per-step labels: the error is the metric
    if name in ("error", "accuracy") and error is not None:
        return error if name == "error" else 1.0 - error
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device  # a training split kept in host memory comes over in chunks
    predicted = (
        torch.cat([predictions(model(X[i : i + 8192].to(device)).float(), task) for i in range(0, len(X), 8192)])
        .long()
        .cpu()
    )
    model.train(was_training)
    actual = y.long().cpu()
    if name in ("error", "accuracy"):
        error = float((predicted != actual).double().mean())
        return error if name == "error" else 1.0 - error
    if name in ("precision", "recall", "f1"):
        return dict(zip(("precision", "recall", "f1"), macro_precision_recall(predicted, actual, n_classes or 2)))[name]
    if name == "weighted_error":
        weights = (
            example_weights
            if example_weights is not None
            else torch.tensor([float(class_weights.get(int(c), 1.0)) for c in actual])
        )
        return weighted_error(predicted, actual, weights)
    return segment_error(predicted, actual, actual)


@torch.no_grad()
def latency_ms(model, example: torch.Tensor, repeats: int = 20) -> float:
    """Median time of one forward pass on one example, on the model's device, in milliseconds."""
    was_training = model.training
    model.eval()
    synchronize = torch.cuda.synchronize if example.is_cuda else (lambda: None)
    for _ in range(3):  # warm-up: first calls allocate and pick kernels
        model(example)
    times = []
    for _ in range(repeats):
        synchronize()
        started = time.perf_counter()
        model(example)
        synchronize()
        times.append(time.perf_counter() - started)
    model.train(was_training)
    return 1000 * statistics.median(times)


def size_mb(model) -> float:
    """The size of the model's weights (its state dict: parameters and buffers) in MB (10^6
    bytes): what torch.save writes, give or take a few hundred bytes of framing, without copying
    a big model into memory to find out."""
    return sum(t.numel() * t.element_size() for t in model.state_dict().values()) / 1e6


def satisficing_metrics(model, example: torch.Tensor, train_s: float) -> dict:
    """What every run measures for satisficing constraints (SPEC E4)."""
    return {
        "n_params": sum(p.numel() for p in model.parameters()),
        "size_mb": size_mb(model),
        "latency_ms": latency_ms(model, example),
        "train_s": train_s,
    }
