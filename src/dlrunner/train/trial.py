"""One trial's evaluations: the settings of a fit, the metrics record of an evaluation, the stop
rules and the bookkeeping they need (best dev error, patience), and the result.

A solo run (``dlrunner.train.loop.fit``) keeps one ``TrialTracker``; a stack
(``dlrunner.stack.train``) keeps one per trial. Both feed it the records ``metrics_record`` builds,
so a trial's metrics.jsonl, its stop messages and its result come from one definition.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from dlrunner.diagnostics import diagnose

EVALUATED_SPLITS = ("train", "dev", "train_dev")  # the splits every evaluation measures


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
    # a sweep's successive halving (search.pruning.TrialPruner): told the dev error at each evaluation
    pruner: object | None = None

    def lr_at(self, epoch: int, step: int) -> float:
        """The learning rate of this step: base lr times the schedule's factor, in double precision."""
        return self.base_lr * self.schedule(max(epoch, 1), step, self.total_steps)


@dataclass
class FitResult:
    status: str  # completed | diverged | pruned | interrupted
    message: str
    step: int
    epoch: int
    train_s: float
    eval_s: float
    stopped_early: bool = False
    best_step: int | None = None
    best_dev_error: float | None = None
    final_metrics: dict | None = None  # the last evaluation's split metrics, when the model ends with them


def metrics_record(
    step: int,
    epoch: int,
    lr: float,
    batch_losses: list[float],
    split_metrics: dict,
    penalty: float,
    settings: FitSettings,
    error_scale: float,
) -> dict:
    """One line of metrics.jsonl: every split's loss and error, J with and without the L2 term
    (``penalty``), the bias/variance gaps at this point of training, and every mini-batch loss since
    the last evaluation (the report smooths them)."""
    record = {"step": step, "epoch": epoch, "lr": lr, "train_loss": sum(batch_losses) / len(batch_losses)}
    record.update(split_metrics)
    record["J"] = record["train"]["loss"]
    record["J_with_penalty"] = record["J"] + penalty
    gaps = diagnose(
        train=record["train"]["error"],
        dev=record["dev"]["error"],
        human=settings.human_error,
        train_dev=record.get("train_dev", {}).get("error"),
        significant_gap=settings.significant_gap,
        scale=error_scale,
    )
    record["diagnosis"] = {k: gaps[k] for k in ("avoidable_bias", "variance", "data_mismatch")}
    record["batch_losses"] = batch_losses
    return record


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


class TrialTracker:
    """What one trial's evaluations decide: a new best (its weights are to be kept), divergence,
    early stopping, pruning by the sweep, when a checkpoint is due, and the result at the end."""

    def __init__(self, settings: FitSettings, resume: dict | None = None):
        self.settings = settings
        self.best_dev_error, self.best_step = math.inf, None
        self.evals_since_best, self.evals_done = 0, 0
        self.status, self.message, self.stopped_early = "completed", "", False
        self.last_record = None
        if resume is not None:  # the fields of ``state()``, from a checkpoint
            self.best_dev_error, self.best_step = resume["best_dev_error"], resume["best_step"]
            self.evals_since_best, self.evals_done = resume["evals_since_best"], resume["evals_done"]

    def observe(self, record: dict, judged_together: list | None = None) -> bool:
        """Take one evaluation's record; True when it is the best dev error so far (keep these weights).
        With ``judged_together`` (a stack's rows), a report to the sweep's pruner is appended there
        instead, for ``prune_together`` to judge with the other rows'."""
        self.evals_done += 1
        self.last_record = record
        if diverged := divergence(record):
            self.status, self.message = "diverged", diverged
            return False
        improved = record["dev"]["error"] < self.best_dev_error
        if improved:
            self.best_dev_error, self.best_step, self.evals_since_best = record["dev"]["error"], record["step"], 0
        else:
            self.evals_since_best += 1
        if patience := patience_ran_out(self.settings, self.evals_since_best, self.best_step):
            self.stopped_early, self.message = True, patience
        pruner = self.settings.pruner
        if pruner is not None and not self.stopped_early:
            if judged_together is not None:
                judged_together.append((self, record["step"], record["dev"]["error"]))
            elif pruner.report(record["step"], record["dev"]["error"]):
                self.prune()
        return improved

    def prune(self) -> None:
        """Stopped where it stands by the sweep's pruner: its last metrics are its result, never chosen as best."""
        self.status, self.message = "pruned", self.settings.pruner.explain("dev error")

    @property
    def finished(self) -> bool:
        """Diverged, stopped early or pruned: this trial trains no further."""
        return self.status in ("diverged", "pruned") or self.stopped_early

    def checkpoint_due(self) -> bool:
        """A "last" checkpoint after every ``checkpoint_every`` evaluations."""
        return self.evals_done % self.settings.checkpoint_every == 0

    def interrupt(self, message: str) -> None:
        self.status, self.message = "interrupted", message

    def state(self) -> dict:
        """The bookkeeping a checkpoint keeps, so that a resumed trial decides as it would have."""
        return {
            "best_dev_error": self.best_dev_error,
            "best_step": self.best_step,
            "evals_since_best": self.evals_since_best,
            "evals_done": self.evals_done,
        }

    def result(self, step: int, epoch: int, train_s: float, eval_s: float) -> FitResult:
        return FitResult(
            self.status,
            self.message,
            step,
            epoch,
            train_s,
            eval_s,
            self.stopped_early,
            self.best_step,
            None if self.best_step is None else self.best_dev_error,
            self._final_metrics(step),
        )

    def _final_metrics(self, step: int) -> dict | None:
        """The split metrics of the last evaluation if they describe the final model (a completed run
        evaluates at its last step; early stopping goes back to the best weights), so that the summary
        need not evaluate those splits again: ~10 ms per run, per trial of a stack or a sweep."""
        last = self.last_record
        if self.status not in ("completed", "pruned") or self.stopped_early or last is None or last["step"] != step:
            return None
        return {name: last[name] for name in EVALUATED_SPLITS if name in last}


def prune_together(reports: list[tuple[TrialTracker, int, float]]) -> None:
    """The pruning reports that ``TrialTracker.observe`` set aside for trials evaluated at once,
    judged together (``search.pruning.report_together``): the rows' order decides nothing."""
    from dlrunner.search.pruning import report_together

    decisions = report_together([(tracker.settings.pruner, step, value) for tracker, step, value in reports])
    for (tracker, _, _), pruned in zip(reports, decisions):
        if pruned:
            tracker.prune()
