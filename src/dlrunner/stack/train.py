"""Train K trials of one architecture at once, and give each the files a solo run gives it.

``train_stacked`` is ``dlrunner.train.run.train`` for a group of configs that share a stack
(``dlrunner.stack.group``): the same validation, data, per-trial model initialisation (each
trial's seed, as its solo run), the same shuffles (each trial's own generator), learning-rate
schedules, L2, gradient clipping, evaluation schedule, early stopping and divergence rules --
kept per trial -- and when it finishes each trial's folder gets metrics.jsonl, summary.json (via
the solo ``summarize``), analysis.json, checkpoints (best.pt and last.pt in the solo formats) and
its logger run. A trial that finishes, diverges, stops early or is pruned by the sweep leaves the
stack; the others go on, and a trial waiting for a row joins at the start of the next epoch
(``StackFit``): a stack may hold fewer rows than its group has trials.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from torch import nn

from dlrunner.config.validate import validate
from dlrunner.data import build_data
from dlrunner.diagnostics.error_analysis import misclassified
from dlrunner.internals import BATCH_NORM as BATCH_NORM_LAYERS
from dlrunner.internals import keep_freed_memory, spare_dynamo_import
from dlrunner.loggers import build_logger
from dlrunner.runtime import cpu_threads_for, pick_device
from dlrunner.stack.evaluate import TASKS, evaluate_stack, l2_penalties, per_trial_loss
from dlrunner.stack.group import BATCH_NORM, stack_problem
from dlrunner.stack.model import StackedModel, structure
from dlrunner.stack.optim import StackedOptimizer
from dlrunner.stack.processes import (
    not_trained,
    process_shares,
    resumed_runs,
    runs_in_turn,
    train_in_turn,
    train_shares,
)
from dlrunner.train.accelerate import place_data
from dlrunner.train.loop import get_rng_state, set_rng_state, take_rows
from dlrunner.train.outputs import RunFiles, checkpoint_attachments, failure, write_analysis
from dlrunner.train.progress import NoProgress, make_progress
from dlrunner.train.run import history_before, resume_point, summarize
from dlrunner.train.setup import (
    batch_size_for,
    build_model,
    build_optimizer,
    fit_settings,
    prepare_process,
    sweep_pruner,
)
from dlrunner.train.signals import STOP, Interrupted
from dlrunner.train.trial import EVALUATED_SPLITS, FitResult, FitSettings, TrialTracker, metrics_record, prune_together


class NotStackable(Exception):
    """This group must train one trial at a time; the message says why."""


@dataclass(eq=False)
class StackedTrial:
    """One trial of a stacked group, and what its solo loop would keep between steps."""

    number: int  # its place in ``train_stacked``'s lists
    cfg: DictConfig
    run_dir: Path
    settings: FitSettings
    model: nn.Module  # its solo model: its initial weights; its row is written back when the stack regroups
    l2: float
    files: RunFiles | None = None  # opened when it joins the stack
    tracker: TrialTracker | None = None
    shuffle: torch.Generator | None = None
    order: torch.Tensor | None = None  # this epoch's order of the training examples
    joined: int = 0  # the stack's step count when it joined: its own steps are counted from there
    epoch: int = 0
    stack_size: int = 0  # trials in the stack when it joined
    started: float = 0.0  # clock and evaluation time of the stack when it joined
    eval_s_before: float = 0.0
    losses: list[float] = field(default_factory=list)  # its mini-batch losses since its last evaluation
    records: list[dict] = field(default_factory=list)  # replayed to its logger when it finishes
    best_row: torch.Tensor | None = None  # its best weights (a row of flat), saved as best.pt
    stopped_at: tuple[int, int] | None = None  # (its step, its epoch) where it stopped
    summary: dict | None = None
    resume: dict | None = None  # the state in its unfinished checkpoint (a killed or stopped stack), if any
    resume_path: Path | None = None


def train_stacked(
    cfgs: list[DictConfig],
    run_dirs: list[Path],
    console: Console | None = None,
    progress: str = "none",
    environments: list[dict] | None = None,
    slots: int | None = None,
    on_finish: Callable[[int, dict], None] | None = None,
) -> list[dict]:
    """Train the trials ``cfgs`` (one group) into ``run_dirs``, at most ``slots`` at once (None: all);
    return their summaries. A trial that finishes (completed, stopped early, diverged, pruned by the
    sweep) leaves the stack, and the next waiting trial takes its row at the start of the stack's next
    epoch (or at once when the stack is empty). ``progress``: one bar (or plain lines) for the whole
    stack, showing its best trial (``trainer.progress`` modes). ``environments``: each trial's
    ``hydra.job.env_set`` (its place in a sweep, the sweep's pruner: the trials share this process,
    so not its environment). ``on_finish(i, summary)``: called as trial i's files are complete.
    After a stop signal, the trials that had not joined the stack have no files, and a summary
    with only ``status`` (interrupted), ``signal`` and ``message``. Trials with the checkpoints of a
    stopped stack go on as the stacks they stopped in (``processes.resumed_runs``), in processes of
    their own as before where the stack was split, else one after another.
    Raises NotStackable, before any file is written, when they cannot share a stack."""
    console = console or Console(quiet=True)
    for cfg in cfgs:
        validate(cfg)
        if (reason := stack_problem(cfg)) is not None:
            raise NotStackable(reason)
    first = cfgs[0]
    prepare_process()
    spare_dynamo_import()  # the solo optimizers that write each trial's checkpoints (stacks never compile)
    device = pick_device(first.trainer.device)
    data = build_data(first.data)  # the same data config for every trial of a stack
    place_data(data, device, first.trainer.data_on_device)
    if data.task not in TASKS or data.splits["train"][1].ndim != 1:
        raise NotStackable(
            f"a {data.task} task with labels of shape {tuple(data.splits['train'][1].shape[1:])} trains alone"
        )
    models = []
    for cfg in cfgs:
        torch.manual_seed(cfg.trainer.seed)  # each trial starts from its solo run's initial weights
        models.append(build_model(cfg, data.input_shape, data.n_outputs)[0].to(device))
    if len({structure(m) for m in models}) > 1:
        raise NotStackable("the trials' models differ in shape")
    if any(isinstance(m, BATCH_NORM_LAYERS) for m in models[0].modules()):
        raise NotStackable(BATCH_NORM)

    n_train = len(data.splits["train"][0])
    batch_size = batch_size_for(first, n_train)
    slots = min(slots or len(cfgs), len(cfgs))
    if device.type == "cpu":
        keep_freed_memory()  # a stack's per-step tensors are big enough for glibc to unmap each one when freed
        torch.set_num_threads(first.trainer.threads or cpu_threads_for(models[0], data.input_shape, slots * batch_size))
    trials = []
    for i, (cfg, run_dir, model, environment) in enumerate(
        zip(cfgs, run_dirs, models, environments or [{}] * len(cfgs))
    ):
        settings = fit_settings(cfg, n_train, batch_size)
        settings.pruner = sweep_pruner(environment, settings)  # a pruned trial leaves the stack
        trial = StackedTrial(i, cfg, run_dir, settings, model, float(cfg.regularization.l2))
        # As every sweep trial: an unfinished checkpoint in its folder (the stack was stopped) goes on from there
        trial.resume_path, trial.resume, _ = resume_point(cfg, run_dir, "auto")
        trials.append(trial)
    # the trials of a stopped stack go on together, from where they were, as the stack they were in
    slots = max([slots] + [len(run) for run in resumed_runs(trials)])

    def fit_share(share: list[StackedTrial], rows: int, progress: str, on_finish) -> list[dict]:
        """Train ``share`` (all of the trials, or one process's share of them) as one stack of at most
        ``rows``; their summaries."""

        def finish(fit: StackFit, trial: StackedTrial, row: int, result: FitResult, position: int) -> None:
            trial.summary = finish_trial(trial, data, fit, row, result, position, console, STOP.name)
            if on_finish is not None:
                on_finish(trial.number, trial.summary)

        fit = StackFit(share, data, rows, device, finish)
        try:
            with make_progress(progress, fit.expected_steps(), fit.steps_done, Console()) as fit.progress:
                fit.run()
        except Exception as err:  # as a solo run does: a crash leaves a summary that says so, beside its metrics
            for trial in fit.rows:
                trial.files.write_summary(failure(err))
            raise
        finally:
            for trial in share:
                if trial.files is not None:
                    trial.files.close()
        for trial in fit.waiting:  # stopped before they joined: no files; the resumed sweep runs them
            trial.summary = not_trained(STOP.name)
        return [trial.summary for trial in share]

    def fit_in_turn(share: list[StackedTrial], rows: int, progress: str, on_finish) -> list[dict]:
        """``fit_share`` for each of the stacks the share's trials stopped in, one after another: for
        the whole share at once when none of them resumes."""
        summaries = train_in_turn(runs_in_turn(share), rows, fit_share, progress, on_finish)
        return [summaries[trial.number] for trial in share]

    stop = STOP.install()  # SIGTERM, like Ctrl-C, stops the stack at its next step (train/signals.py)
    try:
        shares = process_shares(trials, device, torch.get_num_threads(), slots)
        if shares is not None:
            summaries = train_shares(shares, slots, fit_in_turn, progress, on_finish)
            return [summaries[trial.number] for trial in trials]
        if len(runs := runs_in_turn(trials)) > 1 and progress != "none":
            print(f"  going on as the {len(runs)} stacks they stopped in, one after another", flush=True)
        return fit_in_turn(trials, slots, progress, on_finish)
    finally:
        stop.restore()  # last, as in a solo run: on SLURM it may hand SIGUSR2 on to submitit


class StackFit:
    """The loop of ``dlrunner.train.loop.fit`` for a group of trials, up to ``slots`` of them at once
    as one stack (see that function for the solo form). Each trial counts its own steps and epochs
    from the step it joined; all share the position in the epoch (trials join at an epoch's start),
    so their mini-batches have one size."""

    def __init__(self, trials: list[StackedTrial], data, slots: int, device, finish):
        self.trials, self.data, self.slots, self.device, self.finish = trials, data, slots, device, finish
        self.waiting = list(trials)
        self.rows: list[StackedTrial] = []  # the trials in the stack, in the order of its rows
        self.stacked: StackedModel | None = None
        self.optimizer: StackedOptimizer | None = None
        self.eval_s_total = 0.0
        # where the progress line starts: the steps its resumed trials had trained before they stopped
        self.steps_done = min((trial.resume["step"] for trial in trials if trial.resume is not None), default=0)
        self.progress = NoProgress()

    def expected_steps(self) -> int:
        """The stack's steps if no trial stops early: each wave of ``slots`` trials trains to the end."""
        return self.trials[0].settings.total_steps * -(-len(self.trials) // self.slots)

    def regroup(self, joining: list[StackedTrial], step: int) -> None:
        """A new stack for the trials that go on (their weights and optimizer state carried over, bit
        for bit) and those that join now (their initial weights, fresh state)."""
        staying = [row for row, trial in enumerate(self.rows) if trial.stopped_at is None]
        for row in staying:  # the trial's weights now, in its solo model
            self.rows[row].model.load_state_dict(self.stacked.state_dict(row))
        rows = [self.rows[row] for row in staying] + joining
        self.rows, self.stacked, self.optimizer, old = rows, None, None, self.optimizer
        if not rows:
            return
        for trial in joining:
            if trial.resume is not None:
                trial.model.load_state_dict(trial.resume["model"])
        self.stacked = StackedModel([trial.model for trial in rows])
        first = rows[0].cfg
        self.optimizer = StackedOptimizer(
            first.optimizer._target_,
            self.stacked.flat,
            [OmegaConf.to_container(trial.cfg.optimizer) for trial in rows],
            [trial.l2 / trial.settings.batch_size for trial in rows],  # lambda/m, as optim.parameter_groups
            self.stacked.weight_mask,
            self.stacked.sizes,
        )
        if old is not None and staying:
            self.optimizer.carry(old, staying)
        clip = [trial.settings.grad_clip_norm for trial in rows]
        self.clip_norms = None
        if any(clip):
            self.clip_norms = torch.tensor([c or math.inf for c in clip], device=self.device)[:, None]
        for trial in joining:
            trial.joined, trial.stack_size = step, len(rows)
            trial.started, trial.eval_s_before = time.perf_counter(), self.eval_s_total
            trial.tracker = TrialTracker(trial.settings, trial.resume)
            trial.shuffle = torch.Generator(device=self.data.splits["train"][0].device)
            trial.shuffle.manual_seed(int(trial.cfg.trainer.seed) % 2**63)  # as the solo loop seeds its shuffle
            if trial.resume is not None:
                self.resume_row(trial, rows.index(trial), step)
            trial.files = RunFiles(trial.run_dir)  # from here on its run folder fills up
            trial.files.attachments = checkpoint_attachments(self.data, OmegaConf.to_container(trial.cfg, resolve=True))
            trial.files.start(history_before(trial.resume_path, trial.resume))
            trial.files.write_provenance(trial.cfg.trainer.seed, str(self.device))

    def resume_row(self, trial: StackedTrial, row: int, step: int) -> None:
        """A trial that goes on from its checkpoint (as the solo loop resumes one): its optimizer
        state, step and epoch counts, place in its epoch's order, shuffle, best weights, clock and
        the mini-batch losses since its last evaluation."""
        state = trial.resume
        self.optimizer.load_solo_state(row, state["optimizer"]["state"], self.stacked.sizes, solo_groups(trial)[1])
        trial.joined, trial.epoch = step - state["step"], state["epoch"]
        trial.order = None if state["order"] is None else state["order"].to(self.data.splits["train"][0].device)
        trial.shuffle.set_state(state["shuffle_state"])
        trial.started -= state["train_s"]
        if state["best_weights"] is not None:
            best = state["best_weights"]
            trial.best_row = torch.cat([best[name].reshape(-1) for name in self.stacked.names]).to(self.device)
        if state.get("batch_losses") is not None:
            trial.losses = state["batch_losses"].float().tolist()

    def run(self) -> None:
        X, Y = self.data.splits["train"]
        n_train, batch_size = len(X), self.trials[0].settings.batch_size
        total_steps, eval_every = self.trials[0].settings.total_steps, self.trials[0].settings.eval_every
        loss_fn = per_trial_loss(self.data.task)
        constant_lr = all(
            t.settings.schedule(1, 0, total_steps) == t.settings.schedule(2, total_steps - 1, total_steps) == 1.0
            for t in self.trials
        )
        step, position, batch_losses = 0, n_train, []
        resumed = [trial for trial in self.waiting if trial.resume is not None]
        if resumed:  # they go on together from their place in the epoch; the others join at the next epoch
            self.waiting = [trial for trial in self.waiting if trial.resume is None]
            position = resumed[0].resume["position"]
            self.regroup(resumed, step)
            set_rng_state(resumed[0].resume["rng_state"])
            order = torch.stack([t.order for t in self.rows]) if batch_size < n_train else None
            lrs = self.learning_rates(step)
            for trial in self.rows:  # trained to the end, stopped before its summary: nothing more to train
                if trial.resume["step"] >= total_steps:
                    trial.stopped_at = (trial.resume["step"], trial.epoch)
            order, lrs = self.leave_if_stopped(step, position, order, lrs)
        try:
            while self.rows or self.waiting:
                if STOP.received is not None:
                    raise Interrupted(STOP.received)
                if position >= n_train or not self.rows:  # a new epoch: trials may join, each shuffles its own
                    position = 0
                    free = max(0, self.slots - len(self.rows))  # resumed trials may fill more rows than this share's
                    joining, self.waiting = self.waiting[:free], self.waiting[free:]
                    if joining:
                        self.take_losses(batch_losses)  # the rows change
                        self.regroup(joining, step)
                    for trial in self.rows:
                        trial.epoch += 1
                        if batch_size < n_train:
                            trial.order = torch.randperm(n_train, device=X.device, generator=trial.shuffle)
                    order = torch.stack([t.order for t in self.rows]) if batch_size < n_train else None
                    lrs = self.learning_rates(step)
                if order is not None:
                    batch = order[:, position : position + batch_size]  # (K, B)
                    xb, yb = take_rows(X, batch), take_rows(Y, batch)
                    xb, yb = xb.to(self.device, non_blocking=True), yb.to(self.device, non_blocking=True)
                else:
                    xb, yb = X.expand(len(self.rows), *X.shape), Y.expand(len(self.rows), *Y.shape)
                position += batch_size
                if not constant_lr:
                    lrs = self.learning_rates(step)

                stacked = self.stacked
                losses = loss_fn(stacked.train_forward(xb), yb)  # (K,): each trial's mini-batch loss
                stacked.zero_grad()
                losses.sum().backward()  # row k of each gradient is trial k's alone
                gradients = stacked.gradients()
                if self.clip_norms is not None:
                    clip_each_trial(gradients, self.clip_norms)
                self.optimizer.step(lrs, gradients)
                batch_losses.append(losses.detach())
                step += 1
                self.progress.advance(self.steps_done + step, self.rows[0].epoch)
                due = [
                    row
                    for row, trial in enumerate(self.rows)
                    if (step - trial.joined) % eval_every == 0 or step - trial.joined == total_steps
                ]
                if not due:
                    continue
                self.take_losses(batch_losses)
                self.evaluate(due, step, position, lrs)
                order, lrs = self.leave_if_stopped(step, position, order, lrs)
        except KeyboardInterrupt:
            self.take_losses(batch_losses)
            for trial in self.rows:  # each leaves with a last.pt of this step (``finish_trial``)
                own = step - trial.joined
                trial.tracker.interrupt(f"interrupted at step {own}; the sweep resumes it from its checkpoint")
                trial.stopped_at = (own, trial.epoch)
            STOP.finish(True)  # from here a signal no longer interrupts: every trial's result gets written
            self.leave(step, position)
            return
        STOP.finish(False)

    def leave_if_stopped(self, step: int, position: int, order, lrs):
        """The trials that stopped leave (``leave``); the remaining rows' epoch orders and learning
        rates, as the loop goes on with them."""
        if not any(t.stopped_at is not None for t in self.rows):
            return order, lrs
        self.leave(step, position)
        order = torch.stack([t.order for t in self.rows]) if self.rows and order is not None else None
        return order, self.learning_rates(step)

    def learning_rates(self, step: int) -> list[float]:
        """Each row's learning rate at the stack's ``step``: its schedule at its own step and epoch."""
        return [t.settings.lr_at(t.epoch, step - t.joined) for t in self.rows]

    def take_losses(self, batch_losses: list[torch.Tensor]) -> None:
        """The (K,) mini-batch losses of the steps since the last call, into each trial's own list."""
        if batch_losses:
            for trial, losses in zip(self.rows, torch.stack(batch_losses).float().t().tolist()):
                trial.losses.extend(losses)
            batch_losses.clear()

    def leave(self, step: int, position: int) -> None:
        """The trials that stopped write their files and leave the stack; the others go on."""
        for row, trial in enumerate(self.rows):
            if trial.stopped_at is not None:
                own_step, epoch = trial.stopped_at
                result = trial.tracker.result(
                    own_step,
                    epoch,
                    time.perf_counter() - trial.started,
                    self.eval_s_total - trial.eval_s_before,
                )
                self.finish(self, trial, row, result, position)
        self.regroup([], step)

    def evaluate(self, due: list[int], step: int, position: int, lrs: list[float]) -> None:
        """One evaluation of the trials in rows ``due``: its ``metrics_record`` and its tracker's
        decisions, as in the solo loop; ``lrs``: each row's learning rate at this step."""
        started = time.perf_counter()
        data, stacked = self.data, self.stacked
        per_split = {
            name: evaluate_stack(stacked, *data.splits[name], data.task, due)
            for name in EVALUATED_SPLITS
            if name in data.splits
        }
        penalties = l2_penalties(stacked, [t.l2 for t in self.rows], self.trials[0].settings.batch_size)
        judged_together = []  # the rows reach the sweep's rungs at once: pruned or kept together
        for row in due:
            trial = self.rows[row]
            own = step - trial.joined
            splits = {name: results[row] for name, results in per_split.items()}
            record = metrics_record(
                own, trial.epoch, lrs[row], trial.losses, splits, penalties[row], trial.settings, data.error_scale
            )
            trial.losses = []
            trial.files.append_metrics(record)
            trial.records.append(record)
            if trial.tracker.observe(record, judged_together):
                trial.best_row = stacked.flat[row].detach().clone()
        if judged_together:
            prune_together(judged_together)
        for row in due:
            trial = self.rows[row]
            own, tracker = step - trial.joined, trial.tracker
            if tracker.finished or own == tracker.settings.total_steps:
                trial.stopped_at = (own, trial.epoch)
            elif tracker.checkpoint_due():
                self.checkpoint(trial, row, (own, trial.epoch, position), None)  # the final one is written at the end
        # the stack's progress: the best of the trials evaluated now (named by its folder), at the stack's step
        row = min(due, key=lambda r: self.rows[r].records[-1]["dev"]["error"])
        shown = {**self.rows[row].records[-1], "step": self.steps_done + step, "trial": self.rows[row].run_dir.name}
        self.progress.evaluated(shown)
        self.eval_s_total += time.perf_counter() - started

    def checkpoint(self, trial: StackedTrial, row: int, at: tuple[int, int, int], pending) -> None:
        """The trial's last.pt now, in the solo format: a stack killed later resumes from here, each
        of its unfinished trials on its own (``dlrunner.stack.launch``)."""
        trial.files.save_checkpoint(
            "last", last_state(trial, self, row, at, time.perf_counter() - trial.started, pending)
        )


def clip_each_trial(gradients: list[torch.Tensor], max_norms: torch.Tensor) -> None:
    """torch.nn.utils.clip_grad_norm_ for each trial (row k of each (K, ...) gradient): the norm of
    the parameters' norms, each gradient scaled by max_norm / (norm + 1e-6), at most 1 -- in torch's
    order of operations, so that a clipped trial rounds as its solo run."""
    norms = torch.stack([torch.linalg.vector_norm(g.flatten(1), 2.0, dim=1) for g in gradients], 1)
    scale = (max_norms / (torch.linalg.vector_norm(norms, 2.0, dim=1, keepdim=True) + 1e-6)).clamp(max=1.0)
    for g in gradients:
        g.mul_(scale.view(-1, *[1] * (g.dim() - 1)))


def finish_trial(
    trial: StackedTrial,
    data,
    fit: StackFit,
    row: int,
    result: FitResult,
    position: int,
    console,
    signal_name: str | None = None,
) -> dict:
    """The trial's solo model with its final (or, after early stopping, best) weights, and its files;
    ``row``: its row of the stack, ``position``: the stack's place in the epoch."""
    cfg, model, out, stacked = trial.cfg, trial.model, trial.files, fit.stacked
    # early stopping keeps the best (SPEC B8)
    model.load_state_dict(stacked.state_dict(row, trial.best_row if result.stopped_early else None))
    resumed_from = None
    if trial.resume is not None:
        resumed_from = {"checkpoint": str(trial.resume_path), "step": trial.resume["step"]}
    summary = summarize(cfg, data, model, result, trial.settings, resumed_from)
    summary["timing"]["stacked_with"] = trial.stack_size  # trained in one stack of this many trials, sharing train_s
    if result.status == "interrupted" and signal_name:
        summary["signal"] = signal_name
        summary["message"] = f"{signal_name}: {summary['message']}"
    out.write_summary(summary)
    analysis = None
    if data.task in ("binary", "multiclass"):
        analysis = misclassified(
            model, *data.splits["dev"], data.task, cfg.logger.max_misclassified, data.mean, data.std
        )
        write_analysis(analysis, data.class_names, trial.run_dir)
    if trial.best_row is not None:
        best = stacked.state_dict(row, trial.best_row)
        out.save_checkpoint("best", {"model": best, "step": result.best_step, "dev_error": result.best_dev_error})
    at = (result.step, result.epoch, position)
    # stopped between evaluations: the losses since the last one, so that the resumed interval is whole
    pending = torch.tensor(trial.losses) if result.status == "interrupted" and trial.losses else None
    out.save_checkpoint("last", last_state(trial, fit, row, at, result.train_s, pending))
    logger = build_logger(cfg, trial.run_dir, console)  # replayed now: one tracker run open at a time
    try:
        for record in trial.records:
            logger.log_metrics(record)
        if cfg.logger.backend != "none":
            logger.log_summary(summary, analysis)
    finally:
        logger.close(summary["status"])
    return summary


def last_state(trial: StackedTrial, fit: StackFit, row: int, at: tuple[int, int, int], train_s: float, pending) -> dict:
    """checkpoints/last.pt as the solo loop writes it, so `trainer.resume` can continue this trial alone.

    ``at``: (its step, its epoch, position in the epoch's order); ``pending``: the trial's mini-batch
    losses since its last evaluation (a stop signal between evaluations), so the resumed interval is whole."""
    stacked = fit.stacked
    solo, groups = solo_groups(trial)
    state = solo.state_dict()
    state["state"] = fit.optimizer.solo_state(row, stacked.names, stacked.sizes, stacked.shapes, groups)
    step, epoch, position = at
    return {
        "model": stacked.state_dict(row),  # its row: unchanged since its last step, as the solo loop saves it
        "optimizer": state,
        "step": step,
        "epoch": epoch,
        "position": position,
        "order": trial.order,
        **trial.tracker.state(),
        "best_weights": None if trial.best_row is None else stacked.state_dict(row, trial.best_row),
        "shuffle_state": trial.shuffle.get_state(),
        "rng_state": get_rng_state(),
        "batch_losses": pending,
        "train_s": train_s,
    }


def solo_groups(trial: StackedTrial):
    """The trial's solo optimizer, and the parameter indices (in the architecture's order) of each of
    its param groups: how a row of the stacked optimizer's state maps to the solo state_dict."""
    solo = build_optimizer(trial.cfg, trial.model, trial.settings.batch_size)
    index = {id(p): i for i, p in enumerate(trial.model.parameters())}
    return solo, [[index[id(p)] for p in group["params"]] for group in solo.param_groups]
