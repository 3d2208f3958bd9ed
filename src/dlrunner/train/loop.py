"""The training loop: mini-batches by index from tensors on the device, evaluation at intervals,
early stopping, checkpoints, divergence. It reads top to bottom; ``fit`` is the one long function.

Speed notes: the data already sits on the device and batches are index slices (no DataLoader);
the loss is summed on the device and read only at evaluations (reading it is a host-device sync).
"""

from __future__ import annotations

import contextlib
import time

import torch

from dlrunner.internals import eager_step, eager_zero_grad
from dlrunner.train.accelerate import model_device
from dlrunner.train.evaluate import evaluate, l2_penalty, loss_function, training_loss
from dlrunner.train.signals import STOP, Interrupted
from dlrunner.train.trial import EVALUATED_SPLITS, FitResult, FitSettings, TrialTracker, metrics_record


def fit(model, optimizer, data, settings: FitSettings, outputs, progress, resume: dict | None = None) -> FitResult:
    """Train ``model`` on ``data.splits['train']`` and report to ``outputs`` (metrics, checkpoints)."""
    X, Y = data.splits["train"]
    device = model_device(model)
    copy_batches = X.device != device  # training data kept in pinned host memory (too big for the device)
    n_train = len(X)
    batch_size = min(settings.batch_size, n_train)
    loss_fn = loss_function(data.task)
    autocast, scaler = _mixed_precision(settings.precision, device)
    scaling = scaler.is_enabled()
    optimizer_step = eager_step(optimizer)  # optimizer.step, without importing torch._dynamo when nothing compiles
    zero_grad = eager_zero_grad(optimizer)  # optimizer.zero_grad(set_to_none=True), without a profiler range per step
    shuffle = torch.Generator(device=X.device)

    # Where we are: a fresh start, or the state saved in a checkpoint.
    step, epoch, position, order = 0, 0, n_train, None
    tracker = TrialTracker(settings, resume)
    best_weights = None
    elapsed_before = 0.0
    shuffle.manual_seed(int(torch.initial_seed()) % 2**63)
    if resume is not None:
        step, epoch, position, order = resume["step"], resume["epoch"], resume["position"], resume["order"]
        if order is not None:
            order = order.to(X.device)
        best_weights = resume["best_weights"]
        elapsed_before = resume["train_s"]
        shuffle.set_state(resume["shuffle_state"])
        set_rng_state(resume["rng_state"])

    def training_state() -> dict:
        return {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "step": step,
            "epoch": epoch,
            "position": position,
            "order": order,
            **tracker.state(),
            "best_weights": best_weights,
            "shuffle_state": shuffle.get_state(),
            "rng_state": get_rng_state(),
            # mid-interval (a stop signal): the interval's losses so far, so its train_loss comes out whole on resume
            "batch_losses": torch.stack(batch_losses).cpu() if batch_losses else None,
            "train_s": elapsed_before + time.perf_counter() - started,
        }

    def set_lr() -> float:
        lr = settings.lr_at(epoch, step)
        for group in optimizer.param_groups:
            group["lr"] = lr
        return lr

    batch_losses = []  # this interval's mini-batch losses, still on the device: read at evaluations only
    if resume is not None and resume.get("batch_losses") is not None:
        batch_losses = list(resume["batch_losses"].to(device))
    eval_s = 0.0
    model.train()
    started = time.perf_counter()
    lr = settings.base_lr
    stop = STOP  # SIGINT/SIGTERM handlers record the signal; the loop stops here, between whole steps
    try:
        while step < settings.total_steps:
            if stop.received is not None:
                raise Interrupted(stop.received)
            if position >= n_train:  # a new epoch: a fresh shuffle (none for full-batch GD)
                epoch += 1
                position = 0
                order = torch.randperm(n_train, device=X.device, generator=shuffle) if batch_size < n_train else None
            if order is None:
                xb, yb = X, Y
            else:
                batch = order[position : position + batch_size]
                xb, yb = take_rows(X, batch), take_rows(Y, batch)
                if copy_batches:  # from pinned memory, so the copy overlaps with the device's work
                    xb, yb = (
                        xb.pin_memory().to(device, non_blocking=True),
                        yb.pin_memory().to(device, non_blocking=True),
                    )
            if settings.augment is not None:
                xb = settings.augment(xb, shuffle)  # its draws come from the saved generator, so resuming repeats them
            position += batch_size
            lr = set_lr()  # a Python float per step: no device work

            with autocast():
                loss = training_loss(model(xb), yb, loss_fn)
            zero_grad()
            if scaling:  # fp16 on CUDA: scaled loss, unscaled gradients before clipping
                scaler.scale(loss).backward()
                if settings.grad_clip_norm:
                    scaler.unscale_(optimizer)
                    torch.nn.utils.clip_grad_norm_(model.parameters(), settings.grad_clip_norm)
                scaler.step(optimizer)
                scaler.update()
            else:  # the plain step: no scaler calls on the hot path
                loss.backward()
                if settings.grad_clip_norm:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), settings.grad_clip_norm)
                optimizer_step()
            batch_losses.append(loss.detach())
            step += 1
            progress.advance(step, epoch)

            if step % settings.eval_every and step != settings.total_steps:
                continue

            # ---- evaluation: the one place where the host waits for the device
            eval_started = time.perf_counter()
            losses = torch.stack(batch_losses).float().tolist()
            batch_losses.clear()
            record = evaluation_record(model, data, settings, step, epoch, lr, losses, batch_size)
            outputs.append_metrics(record)
            progress.evaluated(record)
            if tracker.observe(record):
                best_weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
                outputs.save_checkpoint(
                    "best", {"model": best_weights, "step": step, "dev_error": record["dev"]["error"]}
                )
            if tracker.status == "diverged":
                break
            if tracker.finished or tracker.checkpoint_due() or step >= settings.total_steps:
                outputs.save_checkpoint("last", training_state())
            eval_s += time.perf_counter() - eval_started
            if tracker.finished:  # stopped early or pruned
                break
    except KeyboardInterrupt:
        tracker.interrupt(f"interrupted at step {step}")  # train() adds how to resume this run
        outputs.save_checkpoint("last", training_state())

    if device.type == "cuda":
        torch.cuda.synchronize(device)
    train_s = elapsed_before + time.perf_counter() - started
    if tracker.stopped_early and best_weights is not None:
        model.load_state_dict(best_weights)  # early stopping keeps the best dev weights (SPEC B8)
    return tracker.result(step, epoch, train_s, eval_s)


def evaluation_record(model, data, settings: FitSettings, step, epoch, lr, losses: list[float], batch_size) -> dict:
    """The metrics record of this evaluation of ``model`` (``trial.metrics_record``)."""
    splits = {name: evaluate(model, *data.splits[name], data.task) for name in EVALUATED_SPLITS if name in data.splits}
    # With mini-batches the course's m in lambda/2m is the batch size (SPEC B4).
    penalty = l2_penalty(settings.weights, settings.l2, batch_size)
    return metrics_record(step, epoch, lr, losses, splits, penalty, settings, data.error_scale)


def _mixed_precision(precision: str, device: torch.device):
    """Autocast context and gradient scaler: bf16/fp16 on CUDA; fp32 is a no-op."""
    if precision == "fp32" or device.type != "cuda":
        disabled = torch.amp.GradScaler("cuda", enabled=False)
        return contextlib.nullcontext, disabled
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    scaler = torch.amp.GradScaler("cuda", enabled=precision == "fp16")  # bf16 needs no loss scaling
    return (lambda: torch.autocast("cuda", dtype=dtype)), scaler


def take_rows(tensor: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``tensor[index]`` for an index of any shape (a mini-batch, or one per trial of a stack):
    rows copied by ``index_select``, which on the CPU takes a third of the time advanced indexing
    takes for MNIST-1D's 100 rows of 40 values (measured: 2.3 against 5.9 us; 16 x 100: 15 against 60 us)."""
    return tensor.index_select(0, index.reshape(-1)).view(*index.shape, *tensor.shape[1:])


def get_rng_state() -> dict:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
