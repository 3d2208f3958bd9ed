"""``dlrun check``: four quick sanity checks before a long run (SPEC H and the course's classics).

1. Initial loss: at initialisation the loss should sit near its chance value, ln C for softmax over
   C classes (ln 10 ~ 2.303), ln 2 for a sigmoid output.
2. Overfit a small batch: with no regularisation the model must drive the loss on a fixed batch of
   a few examples to almost 0.
3. Real vs shuffled labels: trained the same way, the loss falls clearly faster with the real labels
   than with randomly permuted ones (seed 003, L701: "with random labels the loss falls slowly").
4. Batch gradient descent decreases J at every step (with a small enough learning rate).

Each check starts from a fresh model built with the run's seed (``trainer.seed``), runs on the CPU,
uses at most ``MAX_EXAMPLES`` training examples, and turns off dropout and L2 (a check of the
wiring, not of the regularisation); data augmentation and the learning-rate schedule are not used.
The results are deterministic for a fixed seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

MAX_EXAMPLES = 2000  # training examples the checks use at most (the first ones of the training split)

# 1. Initial loss: pass when expected / INIT_TOLERANCE <= measured <= expected * INIT_TOLERANCE.
# With random logits of standard deviation s the softmax cross-entropy is about ln C + s^2/2, so
# 1.5x ln 10 allows logits of std up to ~1.5: He-initialised networks on normalised inputs land at
# 1.0-1.2x; a network whose scores are 10x too large lands far above.
INIT_TOLERANCE = 1.5
# 2. Overfit a small batch: pass when the final loss on the batch is below this fraction of its initial loss.
OVERFIT_FRACTION = 0.05
# 3. Real vs shuffled labels: pass when the real labels' relative loss decrease is at least
# SHUFFLE_RATIO times the shuffled labels', and at least SHUFFLE_MIN_DROP.
SHUFFLE_RATIO = 2.0
SHUFFLE_MIN_DROP = 0.10
# 4. Batch GD: GD_STEPS steps; J may rise by at most GD_NOISE relative to the previous value (float32 noise).
GD_STEPS = 20
GD_NOISE = 1e-5

NAMES = ("initial loss", "overfit a small batch", "real vs shuffled labels", "batch GD decreases J")


@dataclass
class CheckResult:
    name: str  # one of NAMES
    passed: bool | None  # None = skipped
    measured: dict = field(default_factory=dict)  # the numbers (initial_loss, expected, final_loss, ...)
    message: str = ""  # one sentence: what was measured and, on failure, what it usually means


# ---------------------------------------------------------------------------------------------
# The single checks: each takes a model (or a factory of fresh ones) and tensors, so a test can feed
# a deliberately broken model.


@torch.no_grad()
def check_initial_loss(model: torch.nn.Module, X: torch.Tensor, y: torch.Tensor, task: str, n_classes: int | None,
                       tolerance: float = INIT_TOLERANCE, pretrained: bool = False) -> CheckResult:
    """The loss of ``model`` as it is (at initialisation) against its chance value.

    multiclass: ln C; binary: ln 2; multilabel: ln 2 per labelled entry, i.e. ln 2 times the mean
    number of labels per example (the loss sums over labels). Regression has no fixed value (it
    depends on the output scale at init): skipped, reporting the zero predictor's E[y^2] and the
    mean predictor's Var(y) for comparison. ``pretrained`` (transferred weights) allows a loss
    below the chance value.
    """
    from dlrunner.train.evaluate import loss_function

    name = NAMES[0]
    loss = float(loss_function(task)(_main_output(model(X)), y))
    if task == "regression":
        yd = y.double()
        measured = {"initial_loss": loss, "zero_predictor": float((yd**2).mean()), "mean_predictor": float(yd.var(unbiased=False))}
        return CheckResult(name, None, measured,
                           f"skipped for regression: no chance value to compare with (initial MSE {loss:.4g}; predicting 0 gives "
                           f"{measured['zero_predictor']:.4g}, predicting the mean gives Var(y) = {measured['mean_predictor']:.4g}).")
    if task == "multiclass":
        expected, formula = math.log(n_classes), f"ln {n_classes}"
    elif task == "binary":
        expected, formula = math.log(2), "ln 2"
    else:
        per_example = float((~torch.isnan(y)).sum()) / max(1, len(y))
        expected, formula = math.log(2) * per_example, f"ln 2 x {per_example:.3g} labels per example"
    ratio = loss / expected if expected > 0 else math.inf
    measured = {"initial_loss": loss, "expected": expected, "ratio": ratio, "tolerance": tolerance}
    if not math.isfinite(loss):
        return CheckResult(name, False, measured, f"the initial loss is {loss} (expected {formula} = {expected:.3f}): "
                           "usually inputs with huge or non-finite values (not normalised) or a broken initialisation.")
    low_ok = pretrained
    passed = ratio <= tolerance and (low_ok or ratio >= 1 / tolerance)
    what = f"initial loss {loss:.3f} vs {formula} = {expected:.3f} ({ratio:.2f}x)"
    if passed:
        return CheckResult(name, True, measured, f"{what}: the model starts from chance-level predictions, as it should.")
    if ratio > tolerance:
        return CheckResult(name, False, measured, f"{what}, more than {tolerance:g}x too high: the model starts confidently wrong; "
                           "usually a bad initialisation scale (weights too large), unnormalised inputs, or labels off by one.")
    return CheckResult(name, False, measured, f"{what}, far below chance before any training: usually labels leaking into the inputs, "
                       "a loss on the wrong outputs, or a mis-set number of classes.")


def check_overfit(make_model, make_optimizer, X: torch.Tensor, y: torch.Tensor, task: str, steps: int = 200,
                  fraction: float = OVERFIT_FRACTION, lr: float | None = None, grad_clip_norm: float | None = None) -> CheckResult:
    """Train a fresh model on the fixed batch (X, y) for ``steps`` steps; the loss must fall below
    ``fraction`` of its initial value. ``make_optimizer(model)`` builds the configured optimizer."""
    from dlrunner.diagnostics.metrics import predictions

    name = NAMES[1]
    model = make_model()
    optimizer = make_optimizer(model)
    losses = _train(model, optimizer, [(X, y)] * steps, task, grad_clip_norm)
    with torch.no_grad():
        final = float(_loss(model, X, y, task))
        accuracy = None
        if task in ("binary", "multiclass"):
            accuracy = float((predictions(_main_output(model(X)), task) == y).double().mean())
    initial = losses[0]
    measured = {"examples": len(X), "steps": steps, "initial_loss": initial, "final_loss": final,
                "ratio": final / initial if initial > 0 else math.nan, "threshold": fraction}
    if accuracy is not None:
        measured["accuracy"] = accuracy
    if lr is not None:
        measured["lr"] = lr
    acc = f", batch accuracy {accuracy:.0%}" if accuracy is not None else ""
    what = f"loss on a fixed batch of {len(X)} examples went from {initial:.3g} to {final:.3g} in {steps} steps{acc}"
    if math.isfinite(final) and initial > 0 and final <= fraction * initial:
        return CheckResult(name, True, measured, f"{what}: the model can fit data, as it should.")
    lr_text = f" (lr = {lr:g})" if lr is not None else ""
    if not math.isfinite(final):
        return CheckResult(name, False, measured, f"{what}: training diverged; the learning rate{lr_text} is too large "
                           "(or the inputs are unnormalised).")
    return CheckResult(name, False, measured, f"{what}, not below {fraction:.0%} of the start: usually a bug in the model/loss wiring, "
                       f"a learning rate{lr_text} far too small, or too much regularisation (frozen layers, a tiny model).")


def check_shuffled_labels(make_model, make_optimizer, X: torch.Tensor, y: torch.Tensor, task: str, batch_size: int,
                          steps: int = 200, seed: int = 0, grad_clip_norm: float | None = None,
                          ratio: float = SHUFFLE_RATIO, min_drop: float = SHUFFLE_MIN_DROP) -> CheckResult:
    """Train a fresh model ``steps`` steps on (X, y) and another, identical, on (X, y permuted),
    with the same mini-batches; compare the relative decrease of the loss on those examples."""
    name = NAMES[2]
    generator = torch.Generator().manual_seed(seed)
    y_shuffled = y[torch.randperm(len(y), generator=generator)]
    batch_size = max(1, min(batch_size, len(X)))
    order = _batch_indices(len(X), batch_size, steps, generator)
    drops, initial, final = {}, {}, {}
    for label, labels in (("real", y), ("shuffled", y_shuffled)):
        model = make_model()
        optimizer = make_optimizer(model)
        with torch.no_grad():
            initial[label] = float(_loss(model, X, labels, task))
        _train(model, optimizer, ((X[i], labels[i]) for i in order), task, grad_clip_norm)
        with torch.no_grad():
            final[label] = float(_loss(model, X, labels, task))
        drops[label] = (initial[label] - final[label]) / initial[label] if initial[label] > 0 else math.nan
    measured = {"examples": len(X), "steps": steps, "batch_size": batch_size,
                "real_initial": initial["real"], "real_final": final["real"], "real_drop": drops["real"],
                "shuffled_initial": initial["shuffled"], "shuffled_final": final["shuffled"], "shuffled_drop": drops["shuffled"],
                "min_ratio": ratio, "min_drop": min_drop}
    what = (f"in {steps} steps the loss fell by {drops['real']:.0%} with the real labels ({initial['real']:.3g} -> {final['real']:.3g}) "
            f"and by {drops['shuffled']:.0%} with shuffled ones ({initial['shuffled']:.3g} -> {final['shuffled']:.3g})")
    if not all(map(math.isfinite, drops.values())):
        return CheckResult(name, False, measured, f"{what}: training diverged; lower the learning rate.")
    if drops["real"] >= min_drop and drops["real"] >= ratio * max(drops["shuffled"], 0.0):
        return CheckResult(name, True, measured, f"{what}: the model learns from the inputs, as it should.")
    return CheckResult(name, False, measured, f"{what}, not clearly faster (needs >= {ratio:g}x and >= {min_drop:.0%}): the model is not "
                       "learning from the inputs; usually a data-pipeline bug (features and labels misaligned or disconnected) "
                       "or inputs that carry no information about the labels.")


def check_batch_gd(make_model, X: torch.Tensor, y: torch.Tensor, task: str, lr: float, steps: int = GD_STEPS,
                   noise: float = GD_NOISE) -> CheckResult:
    """``steps`` steps of full-batch gradient descent (W -= lr dW, no momentum, whatever optimizer
    the config names) at ``lr`` on (X, y): J must not rise at any step (up to ``noise`` relative)."""
    name = NAMES[3]
    model = make_model()
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=lr)
    J = _train(model, optimizer, [(X, y)] * steps, task)
    with torch.no_grad():
        J.append(float(_loss(model, X, y, task, train_mode=True)))
    rises = [t for t in range(1, len(J)) if not (J[t] <= J[t - 1] + noise * abs(J[t - 1]))]
    measured = {"examples": len(X), "steps": steps, "lr": lr, "J_first": J[0], "J_last": J[-1],
                "rises": len(rises), "first_rise": rises[0] if rises else None, "J": J}
    what = f"{steps} full-batch GD steps on {len(X)} examples at lr = {lr:g}: J went from {J[0]:.4g} to {J[-1]:.4g}"
    if not rises:
        return CheckResult(name, True, measured, f"{what}, down at every step, as it should.")
    t = rises[0]
    return CheckResult(name, False, measured, f"{what} and rose at {len(rises)} step(s), first at step {t} ({J[t - 1]:.4g} -> {J[t]:.4g}): "
                       "usually a learning rate too large, or a wrong gradient (non-differentiable or detached parts of the model).")


# ---------------------------------------------------------------------------------------------
# The four checks on a composed config.


def run_checks(cfg, console=None, steps: int = 200, batch: int = 16) -> list[CheckResult]:
    """Validate ``cfg``, build its data on the CPU and run the four checks; ``steps`` training steps
    for checks 2 and 3, a fixed batch of ``batch`` training examples for check 2."""
    from dlrunner.config.builders import call_builder
    from dlrunner.config.validate import validate
    from dlrunner.data import build_data
    from dlrunner.models import count_parameters
    from dlrunner.optim import parameter_groups
    from dlrunner.train.run import build_model, cpu_threads

    validate(cfg)
    seed = int(cfg.trainer.seed)
    torch.manual_seed(seed)
    data = build_data(cfg.data, "cpu")
    X, y = data.splits["train"]
    X, y = X[:MAX_EXAMPLES], y[:MAX_EXAMPLES]
    n = len(X)
    configured = cfg.optimizer.batch_size
    batch_size = n if configured == "full" else max(1, min(int(configured), n))
    lr = float(cfg.optimizer.lr)
    clip = cfg.regularization.grad_clip_norm
    pretrained = bool(cfg.transfer.checkpoint)
    notes = list(data.notes)

    def make_model() -> torch.nn.Module:
        torch.manual_seed(seed)
        model, model_notes = build_model(cfg, data.input_shape, data.n_outputs)
        notes.extend(n for n in model_notes if n not in notes)
        _no_dropout(model)
        return model.train()

    def make_optimizer(size: int):
        return lambda model: call_builder(cfg.optimizer, "optimizer", skip=("batch_size",), param_groups=parameter_groups(model, 0.0, size))

    threads = torch.get_num_threads()
    try:
        probe = make_model()
        torch.set_num_threads(cfg.trainer.threads or cpu_threads(count_parameters(probe), batch_size))
        results = [
            check_initial_loss(probe, X, y, data.task, data.n_classes, pretrained=pretrained),
            check_overfit(make_model, make_optimizer(min(batch, n)), X[:batch], y[:batch], data.task, steps, lr=lr, grad_clip_norm=clip),
            check_shuffled_labels(make_model, make_optimizer(batch_size), X, y, data.task, batch_size, steps, seed, grad_clip_norm=clip),
            check_batch_gd(make_model, X, y, data.task, lr),
        ]
    finally:
        torch.set_num_threads(threads)
    if console is not None:
        for note in notes:
            console.print(f"[yellow]note: {note}[/yellow]")
    return results


def print_checks(results: list[CheckResult], console) -> None:
    """A table: check, PASS/FAIL/skipped, the main numbers, the message; then a one-line verdict."""
    from rich.table import Table

    table = Table(title="Sanity checks", show_lines=True)
    table.add_column("check", style="bold")
    table.add_column("result")
    table.add_column("numbers")
    table.add_column("message", overflow="fold")
    for result in results:
        status = {True: "[green]PASS[/green]", False: "[red]FAIL[/red]", None: "[yellow]skipped[/yellow]"}[result.passed]
        table.add_row(result.name, status, _numbers(result.measured), result.message)
    console.print(table)
    failed = [r.name for r in results if r.passed is False]
    passed = sum(r.passed is True for r in results)
    skipped = sum(r.passed is None for r in results)
    tail = f", {skipped} skipped" if skipped else ""
    if failed:
        console.print(f"[red]{len(failed)} of {len(results)} checks failed ({', '.join(failed)}){tail}: fix these before a long run.[/red]")
    else:
        console.print(f"[green]{passed} of {len(results)} checks passed{tail}.[/green]")


# ---------------------------------------------------------------------------------------------
# Helpers


def _main_output(outputs):
    """A model with side heads returns (main, side, ...) in training mode: the main scores."""
    return outputs[0] if isinstance(outputs, (tuple, list)) else outputs


def _loss(model, X, y, task, train_mode: bool = True) -> torch.Tensor:
    """The loss of the main output on (X, y) in one pass (dropout is off in the checks' models)."""
    from dlrunner.train.evaluate import loss_function

    model.train(train_mode)
    return loss_function(task)(_main_output(model(X)), y)


def _train(model, optimizer, batches, task: str, grad_clip_norm: float | None = None) -> list[float]:
    """One optimizer step per (xb, yb); returns the training loss of each step, before its update."""
    from dlrunner.train.evaluate import loss_function, training_loss

    loss_fn = loss_function(task)
    model.train()
    losses = []
    for xb, yb in batches:
        loss = training_loss(model(xb), yb, loss_fn)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip_norm:
            torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip_norm)
        optimizer.step()
        losses.append(loss.detach())
    return [float(v) for v in losses]


def _batch_indices(n: int, batch_size: int, steps: int, generator: torch.Generator) -> list[torch.Tensor]:
    """Mini-batch index tensors for ``steps`` steps, a fresh permutation each epoch."""
    batches, order, position = [], None, n
    for _ in range(steps):
        if position >= n:
            order = torch.randperm(n, generator=generator) if batch_size < n else torch.arange(n)
            position = 0
        batches.append(order[position : position + batch_size])
        position += batch_size
    return batches


def _no_dropout(model: torch.nn.Module) -> None:
    """Turn dropout off (dropout layers and the dropout between stacked RNN layers)."""
    for module in model.modules():
        if isinstance(module, torch.nn.modules.dropout._DropoutNd):
            module.p = 0.0
        elif isinstance(module, torch.nn.RNNBase):
            module.dropout = 0.0


def _numbers(measured: dict) -> str:
    lines = []
    for key, value in measured.items():
        if isinstance(value, list):
            continue
        if isinstance(value, float):
            value = f"{value:.4g}"
        lines.append(f"{key} = {value}")
    return "\n".join(lines)
