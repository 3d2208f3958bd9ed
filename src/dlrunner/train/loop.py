"""The training loop: mini-batches by index from tensors on the device, evaluation at intervals,
early stopping, checkpoints, divergence. It reads top to bottom; ``fit`` is the one long function.

Speed notes: the data already sits on the device and batches are index slices (no DataLoader);
the loss is summed on the device and read only at evaluations (reading it is a host-device sync).
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from dlrunner.diagnostics import diagnose
from dlrunner.internals import eager_step, eager_zero_grad
from dlrunner.train.accelerate import model_device
from dlrunner.train.evaluate import evaluate, l2_penalty, loss_function, training_loss
from dlrunner.train.signals import STOP, Interrupted


@dataclass
class FitSettings:
    total_steps: int
    batch_size: int  # examples per mini-batch; the whole training set for batch gradient descent
    eval_every: int  # steps between evaluations
    checkpoint_every: int  # evaluations between "last" checkpoints
    base_lr: float
    schedule: Callable[[int, int, int], float]  # factor(epoch counted from 1, step, total_steps)
    l2: float = 0.0
    weights: list = field(default_factory=list)  # the tensors L2 applies to
    grad_clip_norm: float | None = None
    early_stopping: bool = False
    patience: int = 10
    precision: str = "fp32"  # fp32 | bf16 | fp16
    human_error: float | None = None
    significant_gap: float = 0.015
    augment: Callable | None = None  # augment(batch, generator) -> a changed copy; training batches only


@dataclass
class FitResult:
    status: str  # completed | diverged | interrupted
    message: str
    step: int
    epoch: int
    train_s: float
    eval_s: float
    stopped_early: bool = False
    best_step: int | None = None
    best_dev_error: float | None = None
    final_metrics: dict | None = (
        None  # the last evaluation's split metrics, when the model ends with the weights it evaluated
    )


EVALUATED_SPLITS = ("train", "dev", "train_dev")  # the splits every evaluation measures


# The stop rules, one definition for a solo run and for each trial of a stack.


def divergence(record: dict) -> str | None:
    """Why training must stop after this evaluation because the loss is no longer a number, or None."""
    if math.isfinite(record["train_loss"]) and math.isfinite(record["J"]):
        return None
    return f"the loss became {record['train_loss']} at step {record['step']}: lower the learning rate"


def patience_ran_out(settings: FitSettings, evals_since_best: int, best_step: int) -> str | None:
    """Why early stopping ends training now (SPEC B8: no better dev error for ``patience`` evaluations), or None."""
    if not (settings.early_stopping and evals_since_best >= settings.patience):
        return None
    return f"dev error did not improve for {settings.patience} evaluations; best at step {best_step}"


def final_metrics(status: str, stopped_early: bool, last_record: dict | None, step: int) -> dict | None:
    """The split metrics of the last evaluation if they describe the final model (a completed run
    evaluates at its last step; early stopping goes back to the best weights), so that the summary
    need not evaluate those splits again: ~10 ms per run, per trial of a stack or a sweep."""
    if status != "completed" or stopped_early or last_record is None or last_record["step"] != step:
        return None
    return {name: last_record[name] for name in EVALUATED_SPLITS if name in last_record}


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
    best_dev_error, best_step, evals_since_best, evals_done = math.inf, None, 0, 0
    best_weights, last_record = None, None
    elapsed_before = 0.0
    shuffle.manual_seed(int(torch.initial_seed()) % 2**63)
    if resume is not None:
        step, epoch, position, order = resume["step"], resume["epoch"], resume["position"], resume["order"]
        if order is not None:
            order = order.to(X.device)
        best_dev_error, best_step = resume["best_dev_error"], resume["best_step"]
        evals_since_best, evals_done = resume["evals_since_best"], resume["evals_done"]
        best_weights = resume["best_weights"]
        elapsed_before = resume["train_s"]
        shuffle.set_state(resume["shuffle_state"])
        _set_rng_state(resume["rng_state"])

    def training_state() -> dict:
        return {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "step": step,
            "epoch": epoch,
            "position": position,
            "order": order,
            "best_dev_error": best_dev_error,
            "best_step": best_step,
            "best_weights": best_weights,
            "evals_since_best": evals_since_best,
            "evals_done": evals_done,
            "shuffle_state": shuffle.get_state(),
            "rng_state": get_rng_state(),
            # mid-interval (a stop signal): the interval's losses so far, so its train_loss comes out whole on resume
            "batch_losses": torch.stack(batch_losses).cpu() if batch_losses else None,
            "train_s": elapsed_before + time.perf_counter() - started,
        }

    def set_lr() -> float:
        lr = settings.base_lr * settings.schedule(max(epoch, 1), step, settings.total_steps)
        for group in optimizer.param_groups:
            group["lr"] = lr
        return lr

    batch_losses = []  # this interval's mini-batch losses, still on the device: read at evaluations only
    if resume is not None and resume.get("batch_losses") is not None:
        batch_losses = list(resume["batch_losses"].to(device))
    status, message, stopped_early = "completed", "", False
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
                xb, yb = X[batch], Y[batch]
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
            record = evaluation_record(model, data, settings, step, epoch, lr, sum(losses) / len(losses), batch_size)
            record["batch_losses"] = losses  # every mini-batch loss since the last evaluation (the report smooths them)
            evals_done += 1
            last_record = record
            outputs.append_metrics(record)
            progress.evaluated(record)
            if diverged := divergence(record):
                status, message = "diverged", diverged
                break
            dev_error = record["dev"]["error"]
            if dev_error < best_dev_error:
                best_dev_error, best_step, evals_since_best = dev_error, step, 0
                best_weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
                outputs.save_checkpoint("best", {"model": best_weights, "step": step, "dev_error": dev_error})
            else:
                evals_since_best += 1
            if patience := patience_ran_out(settings, evals_since_best, best_step):
                stopped_early, message = True, patience
            if stopped_early or evals_done % settings.checkpoint_every == 0 or step >= settings.total_steps:
                outputs.save_checkpoint("last", training_state())
            eval_s += time.perf_counter() - eval_started
            if stopped_early:
                break
    except KeyboardInterrupt:
        status, message = "interrupted", f"interrupted at step {step}"  # train() adds how to resume this run
        outputs.save_checkpoint("last", training_state())

    if device.type == "cuda":
        torch.cuda.synchronize(device)
    train_s = elapsed_before + time.perf_counter() - started
    if stopped_early and best_weights is not None:
        model.load_state_dict(best_weights)  # early stopping keeps the best dev weights (SPEC B8)
    return FitResult(
        status,
        message,
        step,
        epoch,
        train_s,
        eval_s,
        stopped_early,
        best_step,
        None if best_step is None else best_dev_error,
        final_metrics(status, stopped_early, last_record, step),
    )


def evaluation_record(model, data, settings: FitSettings, step, epoch, lr, train_loss, batch_size) -> dict:
    """One line of metrics.jsonl: every split's loss and error, J with and without the L2 term,
    and the bias/variance gaps at this point of training."""
    record = {"step": step, "epoch": epoch, "lr": lr, "train_loss": train_loss}
    for name in EVALUATED_SPLITS:
        if name in data.splits:
            record[name] = evaluate(model, *data.splits[name], data.task)
    record["J"] = record["train"]["loss"]
    # With mini-batches the course's m in lambda/2m is the batch size (SPEC B4).
    record["J_with_penalty"] = record["J"] + l2_penalty(settings.weights, settings.l2, batch_size)
    gaps = diagnose(
        train=record["train"]["error"],
        dev=record["dev"]["error"],
        human=settings.human_error,
        train_dev=record.get("train_dev", {}).get("error"),
        significant_gap=settings.significant_gap,
        scale=data.error_scale,
    )
    record["diagnosis"] = {k: gaps[k] for k in ("avoidable_bias", "variance", "data_mismatch")}
    return record


def _mixed_precision(precision: str, device: torch.device):
    """Autocast context and gradient scaler: bf16/fp16 on CUDA; fp32 is a no-op."""
    if precision == "fp32" or device.type != "cuda":
        disabled = torch.amp.GradScaler("cuda", enabled=False)
        return contextlib.nullcontext, disabled
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    scaler = torch.amp.GradScaler("cuda", enabled=precision == "fp16")  # bf16 needs no loss scaling
    return (lambda: torch.autocast("cuda", dtype=dtype)), scaler


def get_rng_state() -> dict:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
