"""Train K trials of one architecture at once, and give each the files a solo run gives it.

``train_stacked`` is ``dlrunner.train.run.train`` for a group of configs that share a stack
(``dlrunner.stack.group``): the same validation, data, per-trial model initialisation (each
trial's seed, as its solo run), the same shuffles (each trial's own generator), learning-rate
schedules, L2, gradient clipping, evaluation schedule, early stopping and divergence rules --
kept per trial -- and at the end each trial's folder gets metrics.jsonl, summary.json (via the
solo ``summarize``), analysis.json, checkpoints (best.pt and last.pt in the solo formats, written
at the end) and its logger run. A trial that diverges, stops early or is pruned by the sweep is
frozen; the others go on.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf
from rich.console import Console

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
from dlrunner.train.accelerate import place_data
from dlrunner.train.loop import get_rng_state
from dlrunner.train.outputs import RunFiles, checkpoint_attachments, failure, write_analysis
from dlrunner.train.progress import NoProgress, make_progress
from dlrunner.train.run import summarize
from dlrunner.train.setup import (
    batch_size_for,
    build_model,
    build_optimizer,
    fit_settings,
    prepare_process,
    sweep_pruner,
)
from dlrunner.train.signals import STOP, Interrupted
from dlrunner.train.trial import EVALUATED_SPLITS, FitResult, FitSettings, TrialTracker, metrics_record


class NotStackable(Exception):
    """This group must train one trial at a time; the message says why."""


def train_stacked(
    cfgs: list[DictConfig],
    run_dirs: list[Path],
    console: Console | None = None,
    progress: str = "none",
    environments: list[dict] | None = None,
) -> list[dict]:
    """Train the trials ``cfgs`` (one stack) into ``run_dirs``; return their summaries. ``progress``:
    one bar (or plain lines) for the whole stack, showing its best trial (``trainer.progress`` modes).
    ``environments``: each trial's ``hydra.job.env_set`` (its place in a sweep, the sweep's pruner:
    the trials share this process, so not its environment).
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
    if device.type == "cpu":
        keep_freed_memory()  # a stack's per-step tensors are big enough for glibc to unmap each one when freed
        torch.set_num_threads(
            first.trainer.threads or cpu_threads_for(models[0], data.input_shape, len(cfgs) * batch_size)
        )
    stacked = StackedModel(models)
    l2 = [float(cfg.regularization.l2) for cfg in cfgs]
    optimizer = StackedOptimizer(
        first.optimizer._target_,
        stacked.flat,
        [OmegaConf.to_container(c.optimizer) for c in cfgs],
        [cfg.regularization.l2 / batch_size for cfg in cfgs],  # lambda/m, as optim.parameter_groups
        stacked.weight_mask,
        stacked.sizes,
    )
    settings = [fit_settings(cfg, n_train, batch_size) for cfg in cfgs]
    for s, environment in zip(settings, environments or [{}] * len(cfgs)):
        s.pruner = sweep_pruner(environment, s)  # a pruned trial is frozen, as an early-stopped one

    files = []
    for cfg, run_dir in zip(cfgs, run_dirs):  # from here on the run folders fill up
        out = RunFiles(run_dir)
        out.attachments = checkpoint_attachments(data, OmegaConf.to_container(cfg, resolve=True))
        out.start()
        out.write_provenance(cfg.trainer.seed, str(device))
        files.append(out)

    def checkpoint(fit: StackFit, k: int, at: tuple[int, int, int], pending: torch.Tensor | None) -> None:
        """Trial k's last.pt now, in the solo format: a stack killed later resumes from here, each
        of its unfinished trials on its own (``dlrunner.stack.launch``)."""
        files[k].save_checkpoint(
            "last",
            last_state(
                cfgs[k],
                models[k],
                stacked,
                optimizer,
                fit,
                k,
                at,
                time.perf_counter() - fit.started,
                settings[k],
                pending,
            ),
        )

    stop = STOP.install()  # SIGTERM, like Ctrl-C, stops the stack at its next step (train/signals.py)
    try:
        fit = StackFit(stacked, optimizer, data, settings, files, l2, checkpoint)
        try:
            with make_progress(progress, settings[0].total_steps, 0, Console()) as fit.progress:
                results = fit.run()
        except (
            Exception
        ) as err:  # as a solo run does: a crash leaves a summary that says so, beside the metrics it reached
            for out in files:
                out.write_summary(failure(err))
            raise
        finally:
            for out in files:
                out.close()
        interrupted = any(r.status == "interrupted" for r in results)
        stop.finish(interrupted)  # from here a signal no longer interrupts: every trial's result gets written
        signal_name = stop.name if interrupted else None
        return [
            finish_trial(
                cfg, run_dir, out, data, model, stacked, optimizer, fit, k, result, settings[k], console, signal_name
            )
            for k, (cfg, run_dir, out, model, result) in enumerate(zip(cfgs, run_dirs, files, models, results))
        ]
    finally:
        stop.restore()  # last, as in a solo run: on SLURM it may hand SIGUSR2 on to submitit


class StackFit:
    """The loop of ``dlrunner.train.loop.fit``, for K trials at once (see that function for the solo form)."""

    def __init__(
        self,
        stacked,
        optimizer,
        data,
        settings: list[FitSettings],
        files: list[RunFiles],
        l2: list[float],
        checkpoint=None,
    ):
        self.stacked, self.optimizer, self.data, self.settings, self.files, self.l2 = (
            stacked,
            optimizer,
            data,
            settings,
            files,
            l2,
        )
        self.checkpoint = checkpoint or (lambda fit, k, at, pending: None)  # saves trial k's last.pt
        k = stacked.k
        self.trackers = [TrialTracker(s) for s in settings]
        self.records = [[] for _ in range(k)]  # each trial's metrics records, replayed to its logger at the end
        self.stopped_at = [None] * k  # (step, epoch) where a trial was frozen
        self.best_rows = [None] * k  # each trial's best weights (a row of flat), saved as best.pt at the end
        self.orders = [None] * k
        self.eval_s_total = 0.0
        self.progress = NoProgress()

    def active(self) -> list[int]:
        return [k for k in range(self.stacked.k) if self.stopped_at[k] is None]

    def run(self) -> list[FitResult]:
        s0, stacked, data = self.settings[0], self.stacked, self.data
        X, Y = data.splits["train"]
        device, k_all = stacked.device, stacked.k
        n_train, batch_size, total_steps = len(X), s0.batch_size, s0.total_steps
        loss_fn = per_trial_loss(data.task)
        self.shuffles = []
        for cfg_seed in (f.attachments["config"]["trainer"]["seed"] for f in self.files):
            generator = torch.Generator(device=X.device)
            generator.manual_seed(int(cfg_seed) % 2**63)  # the solo loop seeds its shuffle from the run's seed
            self.shuffles.append(generator)
        # Each trial's learning rate as its solo run computes it (FitSettings.lr_at, Python floats):
        # the optimizer rounds it as the solo optimizer does.
        lrs = [s.lr_at(0, 0) for s in self.settings]
        clip = [s.grad_clip_norm for s in self.settings]
        clip_norms = torch.tensor([c or math.inf for c in clip], device=device)[:, None] if any(clip) else None
        constant_lr = all(
            s.schedule(1, 0, total_steps) == s.schedule(2, total_steps - 1, total_steps) == 1.0 for s in self.settings
        )

        step, epoch, position = 0, 0, n_train
        batch_losses = []
        self.started = time.perf_counter()
        try:
            while step < total_steps and self.active():
                if STOP.received is not None:
                    raise Interrupted(STOP.received)
                if position >= n_train:  # a new epoch: each trial's own shuffle, as in its solo run
                    epoch += 1
                    position = 0
                    if batch_size < n_train:
                        self.orders = [torch.randperm(n_train, device=X.device, generator=g) for g in self.shuffles]
                        order = torch.stack(self.orders)
                if batch_size < n_train:
                    batch = order[:, position : position + batch_size]  # (K, B)
                    xb, yb = X[batch].to(device, non_blocking=True), Y[batch].to(device, non_blocking=True)
                else:
                    xb, yb = X.expand(k_all, *X.shape), Y.expand(k_all, *Y.shape)
                position += batch_size
                if not constant_lr:
                    lrs = [s.lr_at(epoch, step) for s in self.settings]

                losses = loss_fn(stacked.train_forward(xb), yb)  # (K,): each trial's mini-batch loss
                stacked.flat.grad = None
                losses.sum().backward()  # row k of flat.grad is trial k's gradient alone
                if clip_norms is not None:
                    clip_each_trial(stacked.flat.grad, stacked.sizes, clip_norms)
                training = [at is None for at in self.stopped_at]
                self.optimizer.step(lrs, None if all(training) else training)
                batch_losses.append(losses.detach())
                step += 1
                self.progress.advance(step, epoch)
                if step % s0.eval_every and step != total_steps:
                    continue
                self.evaluate(step, epoch, position, lrs, torch.stack(batch_losses).float(), batch_size)
                batch_losses.clear()
        except KeyboardInterrupt:
            pending = torch.stack(batch_losses).cpu() if batch_losses else None  # (steps, K) since the last evaluation
            for k in self.active():
                self.trackers[k].interrupt(f"interrupted at step {step}; the sweep resumes it from its checkpoint")
                self.checkpoint(self, k, (step, epoch, position), None if pending is None else pending[:, k])
        self.train_s = time.perf_counter() - self.started
        self.final = (step, epoch, position)
        return [
            tracker.result(*(at or (step, epoch)), self.train_s, self.eval_s_total)
            for tracker, at in zip(self.trackers, self.stopped_at)
        ]

    def evaluate(self, step, epoch, position, lrs: list[float], losses: torch.Tensor, batch_size: int) -> None:
        """One evaluation of every active trial: its ``metrics_record`` and its tracker's decisions, as
        in the solo loop; ``lrs``: each trial's learning rate at this step, in full precision."""
        started = time.perf_counter()
        active = self.active()
        data, stacked = self.data, self.stacked
        per_split = {
            name: evaluate_stack(stacked, *data.splits[name], data.task, active)
            for name in EVALUATED_SPLITS
            if name in data.splits
        }
        penalties = l2_penalties(stacked, self.l2, batch_size)
        losses_by_trial = losses.t().tolist()  # (K, steps since the last evaluation)
        for k in active:
            splits = {name: results[k] for name, results in per_split.items()}
            record = metrics_record(
                step, epoch, lrs[k], losses_by_trial[k], splits, penalties[k], self.settings[k], data.error_scale
            )
            self.files[k].append_metrics(record)
            self.records[k].append(record)
            tracker = self.trackers[k]
            if tracker.observe(record):
                self.best_rows[k] = stacked.flat[k].detach().clone()
            if tracker.finished:
                self.stopped_at[k] = (step, epoch)
            elif tracker.checkpoint_due() and step < tracker.settings.total_steps:
                self.checkpoint(self, k, (step, epoch, position), None)  # the final one is written at the end
        # the stack's progress shows its best trial at this evaluation
        self.progress.evaluated(min((self.records[k][-1] for k in active), key=lambda r: r["dev"]["error"]))
        self.eval_s_total += time.perf_counter() - started


def clip_each_trial(grad: torch.Tensor, sizes: list[int], max_norms: torch.Tensor) -> None:
    """torch.nn.utils.clip_grad_norm_ for each trial (row of ``grad``): the norm of the parameters'
    norms, each gradient scaled by max_norm / (norm + 1e-6), at most 1 -- in torch's order of
    operations, so that a clipped trial rounds as its solo run."""
    norms = torch.stack([torch.linalg.vector_norm(part, 2.0, dim=1) for part in grad.split(sizes, dim=1)], 1)
    total = torch.linalg.vector_norm(norms, 2.0, dim=1, keepdim=True)
    grad.mul_((max_norms / (total + 1e-6)).clamp(max=1.0))


def finish_trial(
    cfg,
    run_dir,
    out: RunFiles,
    data,
    model,
    stacked,
    optimizer,
    fit: StackFit,
    k: int,
    result: FitResult,
    settings: FitSettings,
    console,
    signal_name: str | None = None,
) -> dict:
    """Trial k's solo model with its final (or, after early stopping, best) weights, and its files."""
    # early stopping keeps the best (SPEC B8)
    model.load_state_dict(stacked.state_dict(k, fit.best_rows[k] if result.stopped_early else None))
    summary = summarize(cfg, data, model, result, settings)
    summary["timing"]["stacked_with"] = stacked.k  # trained in one stack of this many trials, sharing train_s
    if result.status == "interrupted" and signal_name:
        summary["signal"] = signal_name
        summary["message"] = f"{signal_name}: {summary['message']}"
    out.write_summary(summary)
    analysis = None
    if data.task in ("binary", "multiclass"):
        analysis = misclassified(
            model, *data.splits["dev"], data.task, cfg.logger.max_misclassified, data.mean, data.std
        )
        write_analysis(analysis, data.class_names, run_dir)
    if fit.best_rows[k] is not None:
        best = stacked.state_dict(k, fit.best_rows[k])
        out.save_checkpoint("best", {"model": best, "step": result.best_step, "dev_error": result.best_dev_error})
    _, _, position = fit.final
    out.save_checkpoint(
        "last",
        last_state(
            cfg,
            model,
            stacked,
            optimizer,
            fit,
            k,
            (result.step, result.epoch, position),
            result.train_s,
            settings,
            None,
        ),
    )
    logger = build_logger(cfg, run_dir, console)  # replayed now: one tracker run open at a time
    try:
        for record in fit.records[k]:
            logger.log_metrics(record)
        if cfg.logger.backend != "none":
            logger.log_summary(summary, analysis)
    finally:
        logger.close(summary["status"])
    return summary


def last_state(
    cfg,
    model,
    stacked,
    optimizer: StackedOptimizer,
    fit: StackFit,
    k: int,
    at: tuple[int, int, int],
    train_s: float,
    settings,
    pending: torch.Tensor | None,
) -> dict:
    """checkpoints/last.pt as the solo loop writes it, so `trainer.resume` can continue this trial alone.

    ``at``: (step, epoch, position in the epoch's order); ``pending``: the trial's mini-batch losses
    since its last evaluation (a stop signal between evaluations), so the resumed interval is whole."""
    solo = build_optimizer(cfg, model, settings.batch_size)
    index = {id(p): i for i, p in enumerate(model.parameters())}
    groups = [[index[id(p)] for p in group["params"]] for group in solo.param_groups]
    state = solo.state_dict()
    state["state"] = optimizer.solo_state(k, stacked.names, stacked.sizes, stacked.shapes, groups)
    step, epoch, position = at
    best = fit.best_rows[k]
    return {
        "model": stacked.state_dict(k),  # its row: frozen since it stopped, as the solo loop saves it then
        "optimizer": state,
        "step": step,
        "epoch": epoch,
        "position": position,
        "order": fit.orders[k],
        **fit.trackers[k].state(),
        "best_weights": None if best is None else stacked.state_dict(k, best),
        "shuffle_state": fit.shuffles[k].get_state(),
        "rng_state": get_rng_state(),
        "batch_losses": pending,
        "train_s": train_s,
    }
