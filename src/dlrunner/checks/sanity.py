"""``dlrun check``: four quick sanity checks before a long run (SPEC H and the course's classics).

1. Initial loss: at initialisation the loss should sit near its chance value, ln C for softmax over
   C classes (ln 10 ~ 2.303), ln 2 for a sigmoid output.
2. Overfit a small batch: with no regularisation the model must drive the loss on a fixed batch of
   a few examples to almost 0.
3. Real vs shuffled labels: trained the same way, the loss falls clearly faster with the real labels
   than with randomly permuted ones (seed 003, L701: "with random labels the loss falls slowly").
4. Batch gradient descent decreases J at every step, at the configured learning rate (gd, sgd,
   momentum) or at a halving of an adaptive optimizer's lr, which is no gradient-descent step size
   (the adaptive optimizer itself, at its configured lr, must first not leave J above its start).
A failing check 2 tries the learning rate 10x and 100x smaller and 10x larger: one that fits names
the configured rate too large or too small, and check 3 then names that cause too.

Each check starts from a fresh model built with the run's seed (``trainer.seed``), runs on the CPU
on the first training examples (at most ``MAX_EXAMPLES``), and turns dropout and L2 off (a check of
the wiring, not of the regularisation); gradient clipping is kept; data augmentation and the
learning-rate schedule are not used (the configured lr throughout). The results are deterministic
for a fixed seed. ``run_checks`` runs the four on a composed config; the single checks take a model
(or a factory of fresh ones) and tensors, so tests and notebooks can feed them a broken model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from dlrunner.internals import DROPOUT

# The checks use the first training examples: at most MAX_EXAMPLES for mini-batch training, and at
# most FULL_PASS where one step or evaluation takes them all (initial loss, batch GD, and check 3
# when the optimizer is batch GD), so that a check takes seconds.
MAX_EXAMPLES = 4000
FULL_PASS = 1000

# 1. Initial loss: fail when it is more than INIT_EXCESS_NATS nats per label above ln C (ln 2):
# the correct class then gets on average e^3 = 20x less probability than chance (geometric mean).
# Not a ratio: ln 2 is small, and the course's He initialisation gives output logits of std ~1-2
# (costing about s^2/2 nats), so healthy ReLU MLPs start 0.3-1.4 nats above chance (60 seeds of
# MNIST-1D, digits, moons, spiral, breast cancer; 2.0x ln 2 on moons, 1.55x ln 10 on digits), while
# unnormalised inputs start 12 (digits) to 123 (breast cancer) nats above, and logits 3x too large
# already cost ~10 nats.
INIT_EXCESS_NATS = 3.0
# 2. Overfit a small batch: pass when the final loss on the batch is below this fraction of its initial loss.
OVERFIT_FRACTION = 0.05
# 3. Real vs shuffled labels: pass when the real labels take the training loss at least
# SHUFFLE_MIN_GAIN below chance, and the shuffled labels need SHUFFLE_SPEEDUP times as many steps
# to get half as far. Measured (200 steps): 10.7x on digits (an MLP memorises its 1079 shuffled
# labels too, only later); never within 200 steps for MNIST-1D (MLP, logreg, CNN, batch GD), moons,
# spiral; 2.4x for batch GD on only 500 MNIST-1D examples; 1.0-1.2x when the inputs are noise.
SHUFFLE_SPEEDUP = 2.0
SHUFFLE_MIN_GAIN = 0.10
# 4. Batch GD: GD_STEPS steps; J may rise by at most GD_NOISE relative to the previous value (float32 noise).
# The configured lr is the step size of gd, sgd and momentum (the course's v = beta*v + (1-beta)*dW);
# with any other optimizer, whose lr is no gradient-descent step, it is halved up to GD_HALVINGS
# times until J falls monotonically (Adam's 0.01 is too large a GD step for a regression on y ~ 7).
GD_STEPS = 20
GD_NOISE = 1e-5
GD_STEP_SIZES = ("dlrunner.optim.build_gd", "dlrunner.optim.build_sgd", "dlrunner.optim.build_momentum")
GD_HALVINGS = 6

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
def check_initial_loss(
    model: torch.nn.Module,
    X: torch.Tensor,
    y: torch.Tensor,
    task: str,
    n_classes: int | None,
    tolerance: float = INIT_EXCESS_NATS,
    pretrained: bool = False,
) -> CheckResult:
    """The loss of ``model`` as it is (at initialisation) on (X, y) against its chance value.

    multiclass: ln C; binary: ln 2; multilabel: ln 2 per labelled entry (the loss sums over an
    example's labels). Fails when the loss is more than ``tolerance`` nats per label above that,
    or below half of it (unless the weights are ``pretrained``). Regression has no fixed value (it
    depends on the output scale at init): skipped, with the zero predictor's E[y^2] and the mean
    predictor's Var(y) for comparison.
    """
    from dlrunner.train.evaluate import loss_function

    name = NAMES[0]
    model.train()  # as the first training step sees it (batch-norm on batch statistics); dropout is the caller's
    loss = float(loss_function(task)(_main_output(model(X)), y))
    if task == "regression":
        yd = y.double()
        measured = {
            "initial_loss": loss,
            "zero_predictor": float((yd**2).mean()),
            "mean_predictor": float(yd.var(unbiased=False)),
        }
        return CheckResult(
            name,
            None,
            measured,
            f"skipped for regression, which has no chance value: the initial MSE is {loss:.4g}; predicting 0 gives "
            f"{measured['zero_predictor']:.4g}, predicting the mean gives Var(y) = {measured['mean_predictor']:.4g}.",
        )
    labels = 1.0
    if task == "multiclass":
        expected, formula = math.log(n_classes), f"ln {n_classes}"
    elif task == "binary":
        expected, formula = math.log(2), "ln 2"
    else:
        labels = float((~torch.isnan(y)).sum()) / max(1, len(y))
        expected, formula = math.log(2) * labels, f"ln 2 x {labels:.3g} labels per example"
    excess = (loss - expected) / labels  # nats per label
    measured = {
        "initial_loss": loss,
        "expected": expected,
        "ratio": loss / expected,
        "excess_nats": excess,
        "tolerance_nats": tolerance,
    }
    what = f"initial loss {loss:.4g} vs {formula} = {expected:.3f}"
    if not math.isfinite(loss):
        return CheckResult(
            name,
            False,
            measured,
            f"{what}: usually inputs with huge values (not normalised) or a broken initialisation.",
        )
    if excess > tolerance:
        return CheckResult(
            name,
            False,
            measured,
            f"{what}, {excess:.1f} nats too high (tolerance {tolerance:g}): the model starts "
            "confidently wrong; usually a bad initialisation scale (weights too large), unnormalised inputs, "
            "or labels off by one.",
        )
    if loss < expected / 2 and not pretrained:
        return CheckResult(
            name,
            False,
            measured,
            f"{what}, far below chance before any training: usually labels leaking into the "
            "inputs, or a wrong number of classes.",
        )
    return CheckResult(
        name,
        True,
        measured,
        f"{what} ({excess:+.2f} nats): near chance, as a model should start (healthy ReLU networks start "
        f"0.3-1.4 nats above it; more than {tolerance:g} above fails).",
    )


def check_overfit(
    make_model,
    make_optimizer,
    X: torch.Tensor,
    y: torch.Tensor,
    task: str,
    steps: int = 200,
    fraction: float = OVERFIT_FRACTION,
    lr: float | None = None,
    grad_clip_norm: float | None = None,
) -> CheckResult:
    """Train a fresh model on the fixed batch (X, y) for ``steps`` steps; the loss must fall below
    ``fraction`` of its initial value. ``make_optimizer(model)`` builds the configured optimizer."""
    from dlrunner.diagnostics.metrics import predictions

    name = NAMES[1]
    model = make_model()
    optimizer = make_optimizer(model)
    with torch.no_grad():
        initial = float(_loss(model, X, y, task))
    _train(model, optimizer, [(X, y)] * steps, task, grad_clip_norm)
    with torch.no_grad():
        final = float(_loss(model, X, y, task))
        accuracy = None
        if task in ("binary", "multiclass"):
            accuracy = float((predictions(_main_output(model(X)), task) == y).double().mean())
    measured = {
        "examples": len(X),
        "steps": steps,
        "initial_loss": initial,
        "final_loss": final,
        "ratio": final / initial if initial > 0 else math.nan,
        "threshold": fraction,
    }
    if accuracy is not None:
        measured["accuracy"] = accuracy
    if lr is not None:
        measured["lr"] = lr
    acc = f", batch accuracy {accuracy:.0%}" if accuracy is not None else ""
    what = f"loss on a fixed batch of {len(X)} examples went from {initial:.3g} to {final:.3g} in {steps} steps{acc}"
    if math.isfinite(final) and initial > 0 and final <= fraction * initial:
        return CheckResult(name, True, measured, f"{what}: the model can fit data, as it should.")
    lr_text = f" (lr = {lr:g})" if lr is not None else ""
    verdict = _probe_learning_rates(make_model, make_optimizer, X, y, task, steps, fraction, lr, grad_clip_norm)
    if verdict is not None:
        direction, better, loss = verdict
        measured.update(lr_verdict=f"too {direction}", lr_that_fits=better)
        return CheckResult(
            name,
            False,
            measured,
            f"{what}: the learning rate {lr:g} is too {direction}; at {better:g} the same steps take the "
            f"loss to {loss:.3g} (below {fraction:.0%} of the start).",
        )
    if not math.isfinite(final):
        return CheckResult(
            name,
            False,
            measured,
            f"{what}: training diverged; the learning rate{lr_text} is too large (or the inputs are unnormalised).",
        )
    # no progress at all, or worse: steps too big to settle, or a network that cannot break symmetry
    if final >= initial:
        return CheckResult(
            name,
            False,
            measured,
            f"{what}, no lower than the start: usually a learning rate{lr_text} too large "
            "(the loss oscillates), or weights initialised to the same value (model.init=zeros: every unit of a "
            "layer learns the same thing), or a bug in the model/loss wiring.",
        )
    return CheckResult(
        name,
        False,
        measured,
        f"{what}, not below {fraction:.0%} of the start: usually a learning rate{lr_text} too small "
        "(or, if it falls and rises again, too large), too much regularisation (frozen layers, a tiny model), "
        "zero initialisation (model.init=zeros), or a bug in the model/loss wiring.",
    )


# When a batch does not fit, these multiples of the learning rate are tried (smaller ones first):
# one that fits names the configured rate too large or too small, measured rather than guessed.
LR_PROBES = (0.1, 0.01, 10.0)


def _probe_learning_rates(make_model, make_optimizer, X, y, task, steps, fraction, lr, grad_clip_norm):
    """("large" | "small", a learning rate at which the batch fits, its final loss), or None.

    ``make_optimizer(model, lr)`` must accept the learning rate to try (run_checks' does); a
    factory without it, or no configured ``lr``, probes nothing."""
    import inspect

    if lr is None or len(inspect.signature(make_optimizer).parameters) < 2:
        return None
    for factor in LR_PROBES:
        model = make_model()
        with torch.no_grad():
            initial = float(_loss(model, X, y, task))
        _train(model, make_optimizer(model, lr * factor), [(X, y)] * steps, task, grad_clip_norm)
        with torch.no_grad():
            final = float(_loss(model, X, y, task))
        if math.isfinite(final) and initial > 0 and final <= fraction * initial:
            return ("large" if factor < 1 else "small"), lr * factor, final
    return None


def check_shuffled_labels(
    make_model,
    make_optimizer,
    X: torch.Tensor,
    y: torch.Tensor,
    task: str,
    batch_size: int,
    steps: int = 200,
    seed: int = 0,
    grad_clip_norm: float | None = None,
    speedup: float = SHUFFLE_SPEEDUP,
    min_gain: float = SHUFFLE_MIN_GAIN,
    known_cause: str | None = None,
) -> CheckResult:
    """Train a fresh model ``steps`` steps on (X, y) and another, identical one on (X, y permuted),
    with the same mini-batches, and compare how fast their training loss falls.

    Gains are measured below the chance level (the best constant prediction's loss: the label
    entropy, or Var(y) for regression), on the mini-batch losses smoothed over ``steps // 20``
    steps. The real run must end at least ``min_gain`` below chance, and the shuffled run must need
    at least ``speedup`` times as many steps as the real one to get half as far. (The end values
    alone do not tell: a network memorises a thousand shuffled labels too, only later.)
    ``known_cause``: what another check has already measured to be wrong (a learning rate too
    large), named instead of the usual suspects when this check fails.
    """
    name = NAMES[2]
    chance = chance_loss(y, task)
    if not chance > 0:
        return CheckResult(
            name,
            None,
            {"chance_loss": chance},
            "skipped: every training label is the same, so shuffling changes nothing.",
        )
    generator = torch.Generator().manual_seed(seed)
    y_shuffled = y[torch.randperm(len(y), generator=generator)]
    batch_size = max(1, min(batch_size, len(X)))
    order = _batch_indices(len(X), batch_size, steps, generator)
    window = max(5, steps // 20)
    gains, diverged = {}, False
    for label, labels in (("real", y), ("shuffled", y_shuffled)):
        model = make_model()
        optimizer = make_optimizer(model)
        losses = _train(model, optimizer, ((X[i], labels[i]) for i in order), task, grad_clip_norm)
        smooth = _running_mean(losses, window)
        diverged |= not all(map(math.isfinite, losses)) or smooth[-1] > 2 * max(smooth[0], chance)
        gains[label] = [(chance - loss) / chance for loss in smooth]
    real, shuffled = gains["real"][-1], gains["shuffled"][-1]
    half = real / 2
    t_real = next((t + 1 for t, g in enumerate(gains["real"]) if g >= half), None)
    t_shuffled = next((t + 1 for t, g in enumerate(gains["shuffled"]) if g >= half), None)
    ratio = (math.inf if t_shuffled is None else t_shuffled / t_real) if t_real else math.nan
    measured = {
        "examples": len(X),
        "steps": steps,
        "batch_size": batch_size,
        "chance_loss": chance,
        "real_gain": real,
        "shuffled_gain": shuffled,
        "steps_to_half_real": t_real,
        "steps_to_half_shuffled": t_shuffled,
        "speedup": ratio,
        "min_speedup": speedup,
        "min_gain": min_gain,
        "diverged": diverged,
    }
    what = (
        f"in {steps} steps the training loss fell {real:.0%} below chance ({chance:.3g}) with the real labels "
        f"and {shuffled:.0%} with shuffled ones"
    )
    if diverged:
        return CheckResult(
            name,
            False,
            measured,
            f"{what}: training diverged (the loss ended far above its start, or not finite); "
            "usually a learning rate too large.",
        )
    causes = known_cause or (
        "the model is not learning from the inputs; usually a data-pipeline bug (features and labels misaligned, "
        "inputs disconnected from the labels) or inputs that carry no information about them"
    )
    if diverged and known_cause:
        return CheckResult(name, False, measured, f"{what}: training diverged; {known_cause}.")
    if real < min_gain:
        return CheckResult(
            name,
            False,
            measured,
            f"{what}, less than {min_gain:.0%} with the real labels: {causes}"
            + ("." if known_cause else "; or a learning rate too small or too few steps for this model."),
        )
    slower = "never got there" if t_shuffled is None else f"took {t_shuffled} steps ({ratio:.1f}x)"
    what += f"; half of the real labels' gain took {t_real} steps, the shuffled labels {slower}"
    if ratio >= speedup:
        return CheckResult(name, True, measured, f"{what}: the model learns from the inputs, as it should.")
    return CheckResult(
        name,
        False,
        measured,
        f"{what}, not {speedup:g}x slower: {causes}; or training too unstable to tell (see the other checks).",
    )


def chance_loss(y: torch.Tensor, task: str) -> float:
    """The loss of the best constant prediction: the entropy of the labels (per labelled entry,
    summed over the labels of a multilabel example), or Var(y) for regression."""
    if task == "regression":
        return float(y.double().var(unbiased=False))
    if task == "multilabel":
        labelled = ~torch.isnan(y)
        count = labelled.sum(0).double()
        p = (torch.nan_to_num(y).double() * labelled).sum(0) / count.clamp(min=1)
        entropy = -(p * p.clamp(min=1e-12).log() + (1 - p) * (1 - p).clamp(min=1e-12).log())
        return float((entropy * count).sum() / max(1, len(y)))
    counts = torch.bincount(y.long().flatten()).double()
    p = counts[counts > 0] / counts.sum()
    return float(-(p * p.log()).sum())


def check_batch_gd(
    make_model,
    X: torch.Tensor,
    y: torch.Tensor,
    task: str,
    lr: float,
    steps: int = GD_STEPS,
    noise: float = GD_NOISE,
    halvings: int = 0,
    make_optimizer=None,
) -> CheckResult:
    """``steps`` steps of full-batch gradient descent (W -= lr dW, no momentum) from a fresh model
    on (X, y): J must not rise at any step (up to ``noise`` relative to the previous J).

    ``halvings``: how many times to halve ``lr`` and start again while J rises. 0 when ``lr`` is a
    gradient-descent step size the user chose (gd, sgd, momentum): then a rise means that lr is
    too large. An adaptive optimizer's lr (Adam, RMSprop) is not one, so there the check looks
    for a step size at which J does fall monotonically; none means a wrong gradient. Given
    ``make_optimizer(model)`` (the configured adaptive optimizer), that optimizer runs the same
    full-batch steps first: J ending above its start there means its learning rate is too large.
    """
    from dlrunner.train.evaluate import loss_function, training_loss

    name = NAMES[3]
    configured = lr
    if make_optimizer is not None:  # the configured (adaptive) optimizer itself must not raise J
        model = make_model()
        J = _train(model, make_optimizer(model), [(X, y)] * steps, task)
        with torch.no_grad():
            J.append(float(training_loss(model(X), y, loss_function(task))))
        if not (math.isfinite(J[-1]) and J[-1] <= J[0]):
            measured = {"examples": len(X), "steps": steps, "lr": lr, "J_first": J[0], "J_last": J[-1], "J": J}
            return CheckResult(
                name,
                False,
                measured,
                f"{steps} full-batch steps of the configured optimizer on {len(X)} examples at lr = {lr:g}: J went "
                f"from {J[0]:.4g} to {J[-1]:.4g}, higher than it started: the learning rate {lr:g} is too large "
                "(lower it tenfold, or search it: dlrun sweep sweep=lr).",
            )
    for halved in range(halvings + 1):
        lr = configured / 2**halved
        model = make_model()
        optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=lr)
        J = _train(model, optimizer, [(X, y)] * steps, task)  # J before each step
        with torch.no_grad():
            J.append(float(training_loss(model(X), y, loss_function(task))))  # and after the last
        rises = [t for t in range(1, len(J)) if not (J[t] <= J[t - 1] + noise * abs(J[t - 1]))]
        if not rises:
            break
    measured = {
        "examples": len(X),
        "steps": steps,
        "lr": lr,
        "J_first": J[0],
        "J_last": J[-1],
        "rises": len(rises),
        "first_rise": rises[0] if rises else None,
        "J": J,
    }
    if halvings:
        measured.update(configured_lr=configured, halvings=halved)
    at = f"lr = {lr:g}" + (f" (the configured {configured:g} halved {halved} times)" if halved else "")
    what = f"{steps} full-batch GD steps on {len(X)} examples at {at}: J went from {J[0]:.4g} to {J[-1]:.4g}"
    if not rises:
        return CheckResult(name, True, measured, f"{what}, down at every step, as it should.")
    t = rises[0]
    what += f" and rose at {len(rises)} step(s), first at step {t} ({J[t - 1]:.4g} -> {J[t]:.4g})"
    if halvings:
        return CheckResult(
            name,
            False,
            measured,
            f"{what}: usually a wrong gradient (non-differentiable or detached parts of the "
            "model), or inputs or targets on a huge scale.",
        )
    return CheckResult(
        name,
        False,
        measured,
        f"{what}: usually a learning rate too large, or a wrong gradient "
        "(non-differentiable or detached parts of the model).",
    )


# ---------------------------------------------------------------------------------------------
# The four checks on a composed config.


def run_checks(cfg, console=None, steps: int = 200, batch: int = 16) -> list[CheckResult]:
    """Validate ``cfg``, build its data on the CPU and run the four checks; ``steps`` training steps
    for checks 2 and 3, a fixed batch of ``batch`` training examples for check 2."""
    from omegaconf import OmegaConf

    from dlrunner.config.validate import validate
    from dlrunner.data import build_data
    from dlrunner.models import count_parameters
    from dlrunner.runtime import cpu_threads
    from dlrunner.train.setup import batch_size_for, build_model, build_optimizer, prepare_process

    validate(cfg)
    seed = int(cfg.trainer.seed)
    torch.manual_seed(seed)
    data = build_data(cfg.data, "cpu")
    X, y = data.splits["train"]
    full_batch = batch_size_for(cfg, len(X)) == len(X)
    n = min(len(X), FULL_PASS if full_batch else MAX_EXAMPLES)
    batch_size = n if full_batch else max(1, min(batch_size_for(cfg, len(X)), n))
    lr = float(cfg.optimizer.lr)
    clip = cfg.regularization.grad_clip_norm
    notes = list(data.notes)

    def make_model() -> torch.nn.Module:
        torch.manual_seed(seed)
        model, model_notes = build_model(cfg, data.input_shape, data.n_outputs)
        notes.extend(note for note in model_notes if note not in notes)
        _no_dropout(model)
        return model.train()

    def make_optimizer(size: int):
        def configured(model, rate: float = lr):  # the configured optimizer; another rate for the probes
            chosen = cfg if rate == lr else OmegaConf.merge(cfg, {"optimizer": {"lr": rate}})
            return build_optimizer(chosen, model, size, l2=0.0)

        return configured

    prepare_process()  # as dlrun train does
    threads = torch.get_num_threads()
    try:
        model = make_model()
        n_params = count_parameters(model)

        def on_threads(examples: int):  # per check, by its batch, as dlrun train picks them (1 for small work)
            torch.set_num_threads(cfg.trainer.threads or cpu_threads(n_params, examples))

        small = min(batch, n)
        X_pass, y_pass = X[:FULL_PASS], y[:FULL_PASS]
        on_threads(len(X_pass))
        results = [
            check_initial_loss(
                model, X_pass, y_pass, data.task, data.n_classes, pretrained=bool(cfg.transfer.checkpoint)
            )
        ]
        on_threads(small)
        results.append(
            check_overfit(
                make_model, make_optimizer(small), X[:small], y[:small], data.task, steps, lr=lr, grad_clip_norm=clip
            )
        )
        overfit = results[-1].measured
        known = None
        if overfit.get("lr_verdict") == "too large":
            fits = overfit["lr_that_fits"]
            known = f"the learning rate {lr:g} is too large (see 'overfit a small batch': {fits:g} fits)"
        on_threads(batch_size)
        results.append(
            check_shuffled_labels(
                make_model,
                make_optimizer(batch_size),
                X[:n],
                y[:n],
                data.task,
                batch_size,
                steps,
                seed,
                grad_clip_norm=clip,
                known_cause=known,
            )
        )
        on_threads(len(X_pass))
        halvings = 0 if cfg.optimizer.get("_target_") in GD_STEP_SIZES else GD_HALVINGS
        adaptive = make_optimizer(len(X_pass)) if halvings else None
        results.append(
            check_batch_gd(make_model, X_pass, y_pass, data.task, lr, halvings=halvings, make_optimizer=adaptive)
        )
    finally:
        torch.set_num_threads(threads)
    if console is not None:
        for note in notes:
            console.print(f"[yellow]note: {note}[/yellow]")
    return results


def print_checks(results: list[CheckResult], console) -> None:
    """A table: check, PASS/FAIL/skipped, the main numbers, the message; then a one-line verdict."""
    from rich.table import Table

    from dlrunner.console import table_fits

    table = Table(title="Sanity checks", show_lines=True)
    table.add_column("check", style="bold")
    table.add_column("result")
    table.add_column("numbers", no_wrap=True)  # `name = value` lines: never cut
    table.add_column("message")
    shown = []
    for result in results:
        status = {True: "[green]PASS[/green]", False: "[red]FAIL[/red]", None: "[yellow]skipped[/yellow]"}[
            result.passed
        ]
        shown.append((result.name, status, _numbers(result.measured), result.message))
        table.add_row(*shown[-1])
    if table_fits(console, table, prose_width=40):
        console.print(table)
    else:  # too narrow for the table: one block a check, nothing cut
        for name, status, numbers, message in shown:
            console.print(f"[bold]{name}[/bold]: {status}")
            console.print("    " + numbers.replace("\n", "\n    "), highlight=False)
            console.print(f"    {message}", highlight=False)
    failed = [r.name for r in results if r.passed is False]
    passed = sum(r.passed is True for r in results)
    skipped = sum(r.passed is None for r in results)
    tail = f", {skipped} skipped" if skipped else ""
    if failed:
        console.print(
            f"[red]{len(failed)} of {len(results)} checks failed ({', '.join(failed)}){tail}: "
            "fix these before a long run.[/red]"
        )
    else:
        console.print(f"[green]{passed} of {len(results)} checks passed{tail}.[/green]")


# ---------------------------------------------------------------------------------------------
# Helpers


def _main_output(outputs):
    """A model with side heads returns (main, side, ...) in training mode: the main scores."""
    return outputs[0] if isinstance(outputs, (tuple, list)) else outputs


def _loss(model, X, y, task) -> torch.Tensor:
    """The loss of the main output on (X, y) in one pass, in training mode (dropout is off in the
    checks' models; batch norm uses the batch's statistics, as in training)."""
    from dlrunner.train.evaluate import loss_function

    model.train()
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


def _running_mean(values: list[float], window: int) -> list[float]:
    """The mean of the last ``window`` values at each position (fewer at the start)."""
    out, total = [], 0.0
    for i, value in enumerate(values):
        total += value
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def _no_dropout(model: torch.nn.Module) -> None:
    """Turn dropout off (dropout layers and the dropout between stacked RNN layers)."""
    for module in model.modules():
        if isinstance(module, DROPOUT):
            module.p = 0.0
        elif isinstance(module, torch.nn.RNNBase):
            module.dropout = 0.0


_THRESHOLDS = (
    "tolerance_nats",
    "threshold",
    "min_speedup",
    "min_gain",
)  # the same every run: in the message, not the table


def _numbers(measured: dict) -> str:
    """The measured numbers, one per line (not the thresholds, nor a list such as J's values)."""
    lines = []
    for key, value in measured.items():
        if isinstance(value, list) or key in _THRESHOLDS or (key == "diverged" and not value):
            continue
        if isinstance(value, float):
            value = f"{value:.4g}"
        lines.append(f"{key} = {value}")
    return "\n".join(lines)
