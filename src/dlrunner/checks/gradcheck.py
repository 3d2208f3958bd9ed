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
* batch norm: by default (``batch_norm="batch"``) it stays in training mode and normalises with
  the mean and variance of the checked batch, which is fixed, so J is still a deterministic
  function of theta, and the backward that training uses (through the batch statistics) is the
  one checked. ``batch_norm="running"`` puts it in eval mode instead (the running statistics: a
  fixed affine map); that is also what happens with a batch of one example, where batch
  statistics do not exist. The running statistics of the copy are never written back.

Large models: each coordinate costs two forward passes, so at most ``max_coordinates``
coordinates are checked (2000 by default), drawn at random per tensor in proportion to its size,
with at least a few in every tensor; the ratios are then over those coordinates only.

Thresholds (the course: <= 1e-7 great, ~1e-5 look closely, >= 1e-3 probably a bug):

* ``"pass"``        ratio < 1e-5   (PASS_BELOW)
* ``"look closer"`` 1e-5 <= ratio < 1e-3
* ``"fail"``        ratio >= 1e-3  (FAIL_FROM)

and one exception for float64 rounding: a tensor whose every checked coordinate agrees to within
ROUNDING_ULPS * eps_float64 * |J| / epsilon (5e-8 for J = 2.3) passes whatever its ratio (row note
"within rounding"). J(theta +- eps) are each computed to about an ulp of J, so every difference
quotient carries ~eps_float64 |J| / eps ~ 3e-9 of noise whatever the gradient; where the gradient
itself is that small (a bias just before batch norm, whose true gradient is exactly 0, or the
batch-norm gammas of a deep MobileNet, ~1e-5) the ratio compares noise (up to ~1) and says nothing.

Measured with eps = 1e-7, batch 8, seed 0, at init and after 5 steps (overall ratio; worst
tensor): logreg 8e-9; MLP 2x100 with L2 and dropout 9e-8 (1e-7); MLP with batch norm 3e-8 (5e-8);
CNN 3e-9 (1e-8); CNN with batch norm 1e-8 (2e-8, its pre-BN biases "within rounding"); LSTM,
GRU, RNN (hidden 8) 4e-8, 3e-8, 2e-8 (W_hh 4e-7); LeNet-5 7e-8 (5e-7); ResNet-18 width 4 1e-8
(1e-7); ResNet-18 full width 2e-8 (5e-6 on a batch-norm gamma checked at 4 coordinates);
MobileNet width 0.25 3e-9 (BN gammas 1e-5 to 1e-4, all within rounding). Correct models thus
sit at 1e-9..1e-7 overall and at most ~5e-6 on a single tensor outside the rounding exception.
A backward 10% off gives ~5e-2 on every tensor upstream of it, a wrong sign ~1: far above 1e-3.
So "pass" is put at the course's "look closely" level 1e-5 rather than its 1e-7, which correct
deep networks exceed on single tensors.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field

import torch
from torch import nn

from dlrunner.internals import BATCH_NORM
from dlrunner.models.summary import parameter_owner

PASS_BELOW = 1e-5  # ratio below this: "pass" (the course's 1e-7 "great", with room for float64 noise in deep nets)
FAIL_FROM = 1e-3  # ratio from this on: "fail" (the course: "probably a bug")
DEFAULT_MAX_SECONDS = (
    30.0  # run_gradcheck's time budget: the default zoo networks on 8x8 digits take ~50-130 ms a pass on a CPU
)
# |d_theta_approx - d_theta| below 10 eps|J|/epsilon (5e-8 for J = 2.3; measured noise ~3e-9) is rounding, not a bug
ROUNDING_ULPS = 10
MIN_PER_TENSOR = 4  # coordinates checked in every tensor when only a subset is checked
# parameters x batch below which one thread is faster (as dlrunner.runtime.cpu_threads; 30 us vs 1 ms per MLP pass
# on 2 busy cores)
SMALL_WORK = 2e7
MEANING = (
    "≤1e-7: great; ~1e-5: look closely at the tensors with the largest ratios; "
    "≥1e-3: probably a bug in that layer's backward"
)

_DROPOUT = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.FeatureAlphaDropout)
_BATCH_NORM = BATCH_NORM


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
    proportional to each tensor's size, at least MIN_PER_TENSOR (1 when the budget is too small for
    that; a tensor smaller than the minimum is checked whole), the rest handed out by largest
    remainder. Never more than ``budget`` in all, unless it is below one per tensor."""
    total = sum(sizes)
    if total <= budget:
        return list(sizes)
    minimum = MIN_PER_TENSOR if len(sizes) * MIN_PER_TENSOR <= budget else 1
    counts = [min(n, minimum) for n in sizes]
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


def gradient_check(
    model: nn.Module,
    loss_fn,
    X: torch.Tensor,
    y: torch.Tensor,
    l2: float = 0.0,
    epsilon: float = 1e-7,
    max_coordinates: int = 2000,
    seed: int = 0,
    max_seconds: float | None = None,
    batch_norm: str = "batch",
) -> GradcheckResult:
    """Compare backprop's gradient of J = loss_fn(model(X), y) + (l2/2m) sum ||W||_F^2 with two-sided
    differences, on a float64 deep copy of ``model`` (which is left unchanged). See the module docstring.

    ``max_coordinates`` caps the coordinates checked (a random subset, proportional per tensor);
    ``max_seconds``, when given, lowers that cap further so that the two forward passes per
    coordinate fit in about that time (estimated from a timed pass; said in the notes): with a
    large network at ~100 ms per pass, 2000 coordinates would take minutes. ``batch_norm``: "batch"
    (training-mode batch norm on the checked batch's statistics) or "running" (eval mode)."""
    if batch_norm not in ("batch", "running"):
        raise ValueError(f"batch_norm must be 'batch' or 'running', not {batch_norm!r}")
    threads = torch.get_num_threads()
    small = sum(p.numel() for p in model.parameters()) * len(X) < SMALL_WORK
    if small:
        # thousands of tiny forward passes: splitting each across threads costs more than it saves
        torch.set_num_threads(1)
    try:
        return _gradient_check(model, loss_fn, X, y, l2, epsilon, max_coordinates, seed, max_seconds, batch_norm)
    finally:
        torch.set_num_threads(threads)


def _gradient_check(
    model, loss_fn, X, y, l2, epsilon, max_coordinates, seed, max_seconds, batch_norm
) -> GradcheckResult:
    started = time.perf_counter()
    notes: list[str] = []
    net = copy.deepcopy(model).double()
    net.eval()  # dropout off; no Inception side heads; batch norm below
    dropouts = [m for m in net.modules() if isinstance(m, _DROPOUT) and m.p > 0]
    recurrent_dropout = [m for m in net.modules() if isinstance(m, nn.RNNBase) and m.dropout > 0]
    if dropouts or recurrent_dropout:
        notes.append(
            f"dropout switched off for the check ({len(dropouts) + len(recurrent_dropout)} dropout layer(s) "
            "in eval mode), as the course says: with random masks J is not a function of theta"
        )
    batch_norms = [m for m in net.modules() if isinstance(m, _BATCH_NORM)]
    if batch_norms and batch_norm == "batch" and len(X) > 1:
        for module in batch_norms:
            module.train()  # the statistics of the fixed batch: deterministic, and the backward training uses
        notes.append(
            f"batch norm ({len(batch_norms)} layer(s)) normalises with the mean and variance of the checked batch, "
            "as in training: the batch is fixed, so J is a deterministic function of theta"
        )
    elif batch_norms:
        why = "a batch of one example has no batch statistics" if batch_norm == "batch" else "batch_norm='running'"
        notes.append(
            f"batch norm ({len(batch_norms)} layer(s)) in eval mode ({why}): "
            "it normalises with its running statistics, so J is a deterministic function of theta; "
            "the batch-statistics terms of its backward are not checked"
        )

    X = X.detach().to(torch.float64) if X.is_floating_point() else X.detach()
    y = y.detach().to(torch.float64) if y.is_floating_point() else y.detach()
    m = len(X)
    named = [(name, p) for name, p in net.named_parameters() if p.requires_grad]
    for _, p in named:
        p.data = p.data.contiguous()  # each coordinate is perturbed through a flat view
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
        J = cost()
        J.backward()
    # What rounding alone can put between the two: J(theta +- eps) are each off by ~1 ulp of J.
    rounding = ROUNDING_ULPS * torch.finfo(torch.float64).eps * abs(J.detach().item()) / epsilon
    exact_all = [
        p.grad.detach().reshape(-1).clone() if p.grad is not None else torch.zeros(p.numel(), dtype=p.dtype)
        for _, p in named
    ]
    unused = [name for name, p in named if p.grad is None]
    if unused:
        notes.append(
            f"{len(unused)} tensor(s) J does not use in eval mode (e.g. {unused[0]}): both gradients are 0 there"
        )

    # d_theta_approx on (a random subset of) the coordinates
    sizes = [p.numel() for _, p in named]
    total = sum(sizes)
    counts = _allocate(sizes, max_coordinates)
    if max_seconds is not None and sum(counts) > len(sizes):
        with torch.no_grad():
            per_pass = min(_timed(cost) for _ in range(2))
        affordable = max(1, int(max_seconds / (2 * per_pass)))
        if affordable < sum(counts):
            planned, counts = sum(counts), _allocate(sizes, affordable)
            notes.append(
                f"a forward pass takes {per_pass * 1e3:.0f} ms: checking {sum(counts)} coordinates "
                f"instead of {planned} to stay near max_seconds={max_seconds:g}"
            )
    generator = torch.Generator().manual_seed(seed)
    rows, all_approx, all_exact, within_rounding = [], [], [], []
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
            row = {"name": name, "layer": parameter_owner(net, name), "shape": list(p.shape), "checked": k}
            row.update(ratio=ratio, verdict=verdict(ratio))
            if row["verdict"] != "pass" and k and float((approx - checked_exact).abs().max()) < rounding:
                row["verdict"] = "pass"
                row["note"] = "within rounding"
                within_rounding.append(name)
            rows.append(row)
            all_approx.append(approx)
            all_exact.append(checked_exact)
    checked = sum(counts)
    overall = _ratio(torch.cat(all_approx), torch.cat(all_exact)) if all_approx else 0.0
    overall_verdict = verdict(overall)
    if (
        overall_verdict != "pass"
        and checked
        and float((torch.cat(all_approx) - torch.cat(all_exact)).abs().max()) < rounding
    ):
        overall_verdict = "pass"
        notes.append(
            "every difference between the two gradients is within rounding: the gradient is too small "
            "for finite differences to say more (a saturated or vanishing network?)"
        )
    if checked < total:
        least = MIN_PER_TENSOR if len(sizes) * MIN_PER_TENSOR <= checked else 1
        notes.append(
            f"checked {checked} of {total} coordinates (max_coordinates={max_coordinates}), "
            f"drawn at random (seed {seed}) per tensor in proportion to its size, "
            f"at least {least} each (or the whole tensor): the ratios are over those coordinates only"
        )
    if within_rounding:
        listed = ", ".join(within_rounding[:5]) + (
            f" and {len(within_rounding) - 5} more" if len(within_rounding) > 5 else ""
        )
        notes.append(
            f"{listed}: ratio of {PASS_BELOW:g} or more, but every checked coordinate agrees to {rounding:.0e} "
            f"({ROUNDING_ULPS} x float64 eps x |J| / epsilon, what rounding alone can cause): a pass. "
            "Their gradient is tiny or exactly 0 (e.g. a bias just before batch norm, which subtracts the mean), "
            "so the ratio compares rounding noise"
        )
    if l2:
        notes.append(
            f"J includes the L2 term (lambda/2m) sum ||W||_F^2 with lambda = {l2:g}, m = {m} (the checked batch)"
        )
    notes.append(
        f"float64 copy of the model, batch of {m}, epsilon = {epsilon:g}; {time.perf_counter() - started:.1f} s"
    )
    return GradcheckResult(
        overall=overall,
        verdict=overall_verdict,
        tensors=rows,
        checked=checked,
        total=total,
        epsilon=epsilon,
        notes=notes,
    )


def _timed(fn) -> float:
    started = time.perf_counter()
    float(fn())
    return time.perf_counter() - started


_COLOURS = {"pass": "green", "look closer": "yellow", "fail": "bold red"}


def print_gradcheck(result: GradcheckResult, console) -> None:
    """A table of the per-tensor ratios, then the overall ratio, its verdict and the course's reading of it."""
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"Gradient check (epsilon = {result.epsilon:g})")
    table.add_column("tensor")
    table.add_column("layer")  # numbered as in dlrun summary's # column
    table.add_column("shape")
    table.add_column("checked", justify="right")
    table.add_column("ratio", justify="right")
    table.add_column("verdict")
    notes = any(row.get("note") for row in result.tensors)
    if notes:
        table.add_column("note")
    for row in result.tensors:
        colour = _COLOURS.get(row["verdict"], "white")
        shape = "×".join(str(s) for s in row["shape"]) or "scalar"
        table.add_row(
            escape(row["name"]),
            escape(row.get("layer", "")),
            shape,
            str(row["checked"]),
            f"{row['ratio']:.2e}",
            f"[{colour}]{row['verdict']}[/{colour}]",
            *([row.get("note", "")] if notes else []),
        )
    console.print(table)
    colour = _COLOURS.get(result.verdict, "white")
    console.print(
        f"Overall ratio {result.overall:.2e} over {result.checked} of {result.total} coordinates: "
        f"[{colour}]{result.verdict}[/{colour}]  (pass < {PASS_BELOW:g} ≤ look closer < {FAIL_FROM:g} ≤ fail)",
        highlight=False,
    )
    console.print(f"The course: {MEANING}", highlight=False)
    for note in result.notes:
        console.print(f"[yellow]note: {escape(note)}[/yellow]", highlight=False)


def run_gradcheck(
    cfg,
    console,
    steps: int = 0,
    batch: int = 8,
    epsilon: float = 1e-7,
    max_coordinates: int = 2000,
    max_seconds: float | None = DEFAULT_MAX_SECONDS,
) -> GradcheckResult:
    """Gradient-check the model a composed config describes, on its first ``batch`` training examples,
    at initialisation or after ``steps`` training steps with the configured optimizer (SPEC B14:
    check at init and after some training). J includes cfg.regularization.l2. Large networks check
    fewer coordinates so as to take about ``max_seconds`` (None: all ``max_coordinates``)."""
    from dlrunner.config.validate import validate
    from dlrunner.data import build_data
    from dlrunner.train.evaluate import loss_function, training_loss
    from dlrunner.train.setup import batch_size_for, build_model, build_optimizer

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
        batch_size = batch_size_for(cfg, n_train)
        optimizer = build_optimizer(cfg, model, batch_size, l2)
        generator = torch.Generator().manual_seed(int(cfg.trainer.seed))
        model.train()
        for _ in range(steps):
            index = torch.randperm(n_train, generator=generator)[:batch_size]
            optimizer.zero_grad(set_to_none=True)
            training_loss(model(X_train[index]), y_train[index], loss_fn).backward()
            optimizer.step()
        notes.append(
            f"checked after {steps} training step(s) of the configured optimizer at its base learning rate "
            f"(mini-batches of {batch_size}; no schedule, augmentation or clipping)"
        )
    else:
        notes.append("checked at initialisation (the course also checks after some training: steps > 0)")
    result = gradient_check(
        model,
        loss_fn,
        X_train[:batch],
        y_train[:batch],
        l2=l2,
        epsilon=epsilon,
        max_coordinates=max_coordinates,
        seed=int(cfg.trainer.seed),
        max_seconds=max_seconds,
    )
    result.notes = notes + result.notes
    print_gradcheck(result, console)
    return result
