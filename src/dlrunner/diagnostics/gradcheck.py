"""Gradient checking, the course's way (SPEC B12-B14).

J(theta) is the cost the optimizer descends: the loss on a small batch plus the L2 term
(lambda/2m) sum ||W||_F^2 over the weight matrices and kernels (parameters with more than one
dimension, m = the batch size; SPEC B4). All trainable parameters are flattened into one vector
theta; d_theta comes from autograd (the backward of J) and is compared with the two-sided
difference

    d_theta_approx[i] = (J(theta + eps e_i) - J(theta - eps e_i)) / (2 eps),   eps = 1e-7,

by the ratio ||d_theta_approx - d_theta||_2 / (||d_theta_approx||_2 + ||d_theta||_2), over all
checked coordinates and per parameter tensor (so that a bad layer, and dW vs db, can be found).

Everything happens on a float64 deep copy of the model (the batch is converted too), so the model
passed in is not touched. J must be a deterministic function of theta:

* dropout is switched off (the copy is in eval mode; this also disables the dropout between
  stacked recurrent layers and the side heads of an Inception network), as the course says;
* batch norm uses its running statistics (eval mode), so it is a fixed affine map of its input.
  This checks gamma/beta and everything around the layer; it does not check the extra terms of
  batch norm's backward that flow through the batch mean and variance (that is PyTorch's own
  tested kernel, and with those statistics a batch of 8 makes J much more sensitive).

Large models: each coordinate costs two forward passes, so at most ``max_coordinates``
coordinates are checked (2000 by default), drawn at random per tensor in proportion to its size,
with at least a few in every tensor; the ratios are then over those coordinates only.

Thresholds (the course: <= 1e-7 great, ~1e-5 look closely, >= 1e-3 probably a bug):

* ``"pass"``        ratio < 1e-5   (PASS_BELOW)
* ``"look closer"`` 1e-5 <= ratio < 1e-3
* ``"fail"``        ratio >= 1e-3  (FAIL_FROM)

The course's 1e-7 is for its small float64 NumPy networks. Measured on this project's zoo with
eps = 1e-7 in float64 (batch of 8, seed 0; see the README of this module's tests), correct
models give overall ratios of about 1e-10 to 1e-8 (MLP, logistic regression, CNN, LSTM/GRU/RNN,
ResNet-18 at width 4, also after 5 training steps), but single tensors with a small gradient
(a first convolution of a ResNet, a bias of a deep layer) reach ~1e-7 to 1e-6: the rounding
error of each difference is about 1e-16 * |J| / eps ~ 1e-9 per coordinate whatever the gradient,
so a tensor whose gradient entries are ~1e-3 shows a ratio of ~1e-6. A ReLU or max-pool kink
within eps of a checked coordinate does the same on rare coordinates. A gradient wrong by only
10% gives ratios of ~5e-2, and a wrong sign ~1: both far above 1e-3. So "pass" is put at 1e-5
(the course's "look closely" level) rather than 1e-7, which would flag correct deep networks.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field

import torch
from torch import nn

PASS_BELOW = 1e-5  # ratio below this: "pass" (the course's 1e-7 "great", with room for float64 noise in deep nets)
FAIL_FROM = 1e-3  # ratio from this on: "fail" (the course: "probably a bug")
MIN_PER_TENSOR = 4  # coordinates checked in every tensor when only a subset is checked
SMALL_WORK = 2e7  # parameters x batch below which one thread is faster (as dlrunner.train.run.cpu_threads; 30 us vs 1 ms per MLP pass on 2 busy cores)
MEANING = ("≤1e-7: great; ~1e-5: look closely at the tensors with the largest ratios; "
           "≥1e-3: probably a bug in that layer's backward")

_DROPOUT = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.FeatureAlphaDropout)
_BATCH_NORM = (nn.modules.batchnorm._BatchNorm,)


@dataclass
class GradcheckResult:
    overall: float  # the course's ratio over all checked coordinates
    verdict: str  # "pass" | "look closer" | "fail"
    tensors: list[dict]  # one per parameter tensor: {"name", "shape", "checked", "ratio", "verdict"}
    checked: int  # coordinates checked
    total: int  # trainable parameters
    epsilon: float
    notes: list[str] = field(default_factory=list)


def verdict(ratio: float) -> str:
    """The course's reading of a gradient-check ratio, with this module's thresholds (see its docstring)."""
    if not math.isfinite(ratio) or ratio >= FAIL_FROM:
        return "fail"
    if ratio >= PASS_BELOW:
        return "look closer"
    return "pass"


def numeric_derivative(f, theta: float, epsilon: float, two_sided: bool = True) -> float:
    """(f(theta+eps) - f(theta-eps)) / 2eps, error O(eps^2); one-sided (f(theta+eps) - f(theta)) / eps, O(eps).

    SPEC B12: f = theta^3 at theta = 1 with eps = 0.01 gives 3.0001 two-sided, 3.0301 one-sided (true: 3).
    """
    if two_sided:
        return (f(theta + epsilon) - f(theta - epsilon)) / (2 * epsilon)
    return (f(theta + epsilon) - f(theta)) / epsilon


def _ratio(approx: torch.Tensor, exact: torch.Tensor) -> float:
    """||approx - exact|| / (||approx|| + ||exact||); 0 when both are zero (a part of the model J does not use)."""
    denominator = float(approx.norm() + exact.norm())
    if denominator == 0.0:
        return 0.0
    return float((approx - exact).norm()) / denominator


def _allocate(sizes: list[int], budget: int) -> list[int]:
    """Coordinates to check per tensor: all of them if they fit in ``budget``; otherwise a share
    proportional to each tensor's size, at least MIN_PER_TENSOR (or the whole tensor if smaller),
    the rest handed out by largest remainder, never more than ``budget`` unless the minimums alone exceed it."""
    total = sum(sizes)
    if total <= budget:
        return list(sizes)
    counts = [min(n, MIN_PER_TENSOR) for n in sizes]
    left = budget - sum(counts)
    if left <= 0:
        return counts
    room = [n - c for n, c in zip(sizes, counts)]
    shares = [left * r / sum(room) for r in room]
    extra = [min(r, math.floor(s)) for r, s in zip(room, shares)]
    remaining = left - sum(extra)
    order = sorted(range(len(sizes)), key=lambda i: shares[i] - math.floor(shares[i]), reverse=True)
    for i in order:
        if remaining <= 0:
            break
        if extra[i] < room[i]:
            extra[i] += 1
            remaining -= 1
    return [c + e for c, e in zip(counts, extra)]


def gradient_check(model: nn.Module, loss_fn, X: torch.Tensor, y: torch.Tensor, l2: float = 0.0,
                   epsilon: float = 1e-7, max_coordinates: int = 2000, seed: int = 0) -> GradcheckResult:
    """Compare backprop's gradient of J = loss_fn(model(X), y) + (l2/2m) sum ||W||_F^2 with two-sided
    differences, on a float64 deep copy of ``model`` (which is left unchanged). See the module docstring."""
    threads = torch.get_num_threads()
    small = sum(p.numel() for p in model.parameters()) * len(X) < SMALL_WORK
    if small:
        torch.set_num_threads(1)  # thousands of tiny forward passes: splitting each across threads costs more than it saves
    try:
        return _gradient_check(model, loss_fn, X, y, l2, epsilon, max_coordinates, seed)
    finally:
        torch.set_num_threads(threads)


def _gradient_check(model, loss_fn, X, y, l2, epsilon, max_coordinates, seed) -> GradcheckResult:
    started = time.perf_counter()
    notes: list[str] = []
    net = copy.deepcopy(model).double()
    net.eval()  # dropout off; batch norm on its running statistics; no Inception side heads
    dropouts = [m for m in net.modules() if isinstance(m, _DROPOUT) and m.p > 0]
    recurrent_dropout = [m for m in net.modules() if isinstance(m, nn.RNNBase) and m.dropout > 0]
    if dropouts or recurrent_dropout:
        notes.append(f"dropout switched off for the check ({len(dropouts) + len(recurrent_dropout)} dropout layer(s) in eval mode), "
                     "as the course says: with random masks J is not a function of theta")
    batch_norms = [m for m in net.modules() if isinstance(m, _BATCH_NORM)]
    if batch_norms:
        notes.append(f"batch norm in eval mode ({len(batch_norms)} layer(s)): it normalises with its running statistics, "
                     "so J is a deterministic function of theta; the batch-statistics terms of its backward are not checked")

    X = X.detach().to(torch.float64) if X.is_floating_point() else X.detach()
    y = y.detach().to(torch.float64) if y.is_floating_point() else y.detach()
    m = len(X)
    named = [(name, p) for name, p in net.named_parameters() if p.requires_grad]
    frozen = sum(1 for _, p in net.named_parameters() if not p.requires_grad)
    if frozen:
        notes.append(f"{frozen} frozen parameter tensor(s) left out: only trainable parameters are in theta")
    weights = [p for _, p in named if p.ndim > 1]

    def cost() -> torch.Tensor:
        scores = net(X)
        if isinstance(scores, (tuple, list)):
            scores = scores[0]
        J = loss_fn(scores, y)
        if l2:
            J = J + l2 / (2 * m) * sum(w.pow(2).sum() for w in weights)
        return J

    # d_theta by backprop
    for _, p in named:
        p.grad = None
    with torch.enable_grad():
        cost().backward()
    exact_all = [p.grad.detach().reshape(-1).clone() if p.grad is not None else torch.zeros(p.numel(), dtype=p.dtype)
                 for _, p in named]

    # d_theta_approx on (a random subset of) the coordinates
    sizes = [p.numel() for _, p in named]
    total = sum(sizes)
    counts = _allocate(sizes, max_coordinates)
    generator = torch.Generator().manual_seed(seed)
    rows, all_approx, all_exact = [], [], []
    with torch.no_grad():
        for (name, p), n, k, exact in zip(named, sizes, counts, exact_all):
            index = torch.arange(n) if k == n else torch.randperm(n, generator=generator)[:k].sort().values
            flat = p.data.view(-1)
            approx = torch.empty(k, dtype=torch.float64)
            for j, i in enumerate(index.tolist()):
                original = flat[i].item()
                flat[i] = original + epsilon
                plus = float(cost())
                flat[i] = original - epsilon
                minus = float(cost())
                flat[i] = original
                approx[j] = (plus - minus) / (2 * epsilon)
            checked_exact = exact[index]
            ratio = _ratio(approx, checked_exact)
            rows.append({"name": name, "shape": list(p.shape), "checked": k, "ratio": ratio, "verdict": verdict(ratio)})
            all_approx.append(approx)
            all_exact.append(checked_exact)
    checked = sum(counts)
    overall = _ratio(torch.cat(all_approx), torch.cat(all_exact)) if all_approx else 0.0
    if checked < total:
        notes.append(f"checked {checked} of {total} coordinates (max_coordinates={max_coordinates}), drawn at random (seed {seed}) "
                     f"per tensor in proportion to its size, at least {MIN_PER_TENSOR} each: the ratios are over those coordinates only")
    if l2:
        notes.append(f"J includes the L2 term (lambda/2m) sum ||W||_F^2 with lambda = {l2:g}, m = {m} (the checked batch)")
    notes.append(f"float64 copy of the model, batch of {m}, epsilon = {epsilon:g}; {time.perf_counter() - started:.1f} s")
    return GradcheckResult(overall=overall, verdict=verdict(overall), tensors=rows, checked=checked, total=total,
                           epsilon=epsilon, notes=notes)


_COLOURS = {"pass": "green", "look closer": "yellow", "fail": "bold red"}


def print_gradcheck(result: GradcheckResult, console) -> None:
    """A table of the per-tensor ratios, then the overall ratio, its verdict and the course's reading of it."""
    from rich.table import Table

    table = Table(title=f"Gradient check (epsilon = {result.epsilon:g})")
    table.add_column("tensor")
    table.add_column("shape")
    table.add_column("checked", justify="right")
    table.add_column("ratio", justify="right")
    table.add_column("verdict")
    for row in result.tensors:
        colour = _COLOURS.get(row["verdict"], "white")
        shape = "×".join(str(s) for s in row["shape"]) or "scalar"
        table.add_row(row["name"], shape, str(row["checked"]), f"{row['ratio']:.2e}", f"[{colour}]{row['verdict']}[/{colour}]")
    console.print(table)
    colour = _COLOURS.get(result.verdict, "white")
    console.print(f"Overall ratio {result.overall:.2e} over {result.checked} of {result.total} coordinates: "
                  f"[{colour}]{result.verdict}[/{colour}]  (pass < {PASS_BELOW:g} ≤ look closer < {FAIL_FROM:g} ≤ fail)", highlight=False)
    console.print(f"The course: {MEANING}", highlight=False)
    for note in result.notes:
        console.print(f"[yellow]note: {note}[/yellow]", highlight=False)


def run_gradcheck(cfg, console, steps: int = 0, batch: int = 8, epsilon: float = 1e-7,
                  max_coordinates: int = 2000) -> GradcheckResult:
    """Gradient-check the model a composed config describes, on its first ``batch`` training examples,
    at initialisation or after ``steps`` training steps with the configured optimizer (SPEC B14:
    check at init and after some training). J includes cfg.regularization.l2."""
    from dlrunner.config.builders import call_builder
    from dlrunner.config.validate import validate
    from dlrunner.data import build_data
    from dlrunner.optim import parameter_groups
    from dlrunner.train.evaluate import loss_function, training_loss
    from dlrunner.train.run import build_model

    validate(cfg)
    torch.manual_seed(cfg.trainer.seed)
    data = build_data(cfg.data, "cpu")
    X_train, y_train = data.splits["train"]
    model, model_notes = build_model(cfg, data.input_shape, data.n_outputs)
    loss_fn = loss_function(data.task)
    l2 = float(cfg.regularization.l2 or 0.0)
    notes = list(data.notes) + list(model_notes)
    if steps > 0:
        n_train = len(X_train)
        batch_size = n_train if cfg.optimizer.batch_size == "full" else min(int(cfg.optimizer.batch_size), n_train)
        optimizer = call_builder(cfg.optimizer, "optimizer", skip=("batch_size",),
                                 param_groups=parameter_groups(model, l2, batch_size))
        generator = torch.Generator().manual_seed(int(cfg.trainer.seed))
        model.train()
        for _ in range(steps):
            index = torch.randperm(n_train, generator=generator)[:batch_size]
            optimizer.zero_grad(set_to_none=True)
            training_loss(model(X_train[index]), y_train[index], loss_fn).backward()
            optimizer.step()
        notes.append(f"checked after {steps} training step(s) of the configured optimizer at its base learning rate "
                     f"(mini-batches of {batch_size}; no schedule, augmentation or clipping)")
    else:
        notes.append("checked at initialisation (the course also checks after some training: steps > 0)")
    result = gradient_check(model, loss_fn, X_train[:batch], y_train[:batch], l2=l2, epsilon=epsilon,
                            max_coordinates=max_coordinates, seed=int(cfg.trainer.seed))
    result.notes = notes + result.notes
    print_gradcheck(result, console)
    return result
