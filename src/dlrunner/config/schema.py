"""Structured-config schemas: the types and keys of every config group.

These dataclasses say which keys exist and what type each one has, so that ``optimizer.lrr=0.1``
(a typo) or ``optimizer.lr=fast`` (a wrong type) fails while Hydra composes the config, before
anything runs. Each YAML option names its schema in its defaults list
(``- /schema/optimizer/adam@_here_``). The schemas of builder options (models, optimizers,
schedules) are derived from the builders' signatures, defaults included (``config/derive.py``).

This module imports neither torch nor anything heavy: ``dlrun show`` and composition stay fast.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, List, Optional

from omegaconf import MISSING

# ---------------------------------------------------------------- data


@dataclass
class SplitConfig:
    """Ratios that sum to 1, or example counts. train_dev is carved out of the training part."""

    train: float = MISSING
    dev: float = MISSING
    test: float = 0.0
    train_dev: float = 0.0
    seed: Optional[int] = 0  # null: keep the source's order (data sets that come with their own split)


@dataclass
class TargetSplitConfig:
    """How a separate target-distribution source is shared out (SPEC E16): train/dev/test."""

    train: float = 0.0
    dev: float = 0.5
    test: float = 0.5


@dataclass
class AugmentConfig:
    """Random changes to each training mini-batch, on the device; dev and test are never augmented (SPEC B7, F15)."""

    hflip: bool = False  # mirror each example along its last axis with probability 1/2
    crop_padding: int = 0  # pad by p (zeros) and crop back to the original size at a random offset
    rotation: float = 0.0  # a random angle in [-rotation, rotation] degrees (2-D images)
    color_shift: float = 0.0  # a random offset per example and channel, N(0, color_shift^2)
    noise_std: float = 0.0  # Gaussian input noise


@dataclass
class DataConfig:
    # A builder call: {_target_: dlrunner.data.sources.<name>, ...its keyword arguments}.
    # Its keys are checked against the builder's signature before training.
    source: Any = MISSING
    task: str = "auto"  # auto | binary | multiclass | regression
    n_classes: Optional[int] = None  # classification: labels must lie in [0, n_classes); None = max + 1
    human_error: Optional[float] = None  # Bayes-error proxy as a fraction; None = unknown
    split: SplitConfig = field(default_factory=SplitConfig)
    # Optional second source with the distribution you care about; dev and test come from it.
    target: Optional[Any] = None
    target_split: TargetSplitConfig = field(default_factory=TargetSplitConfig)
    target_human_error: Optional[float] = None  # human-level error on the target data; None = human_error
    # true: x = (x - mu) / sigma per feature, with the training set's mu and sigma (SPEC B9);
    # channel: per channel; false
    normalize: Any = True
    train_fraction: float = (
        1.0  # train on this share of the training split only (dlrun learning-curve); dev and test unchanged
    )
    shape: Optional[List[int]] = (
        None  # each example's shape for the model, e.g. [1, 8, 8] (CNN) or [40, 1] (RNN); None = as loaded
    )
    augment: AugmentConfig = field(default_factory=AugmentConfig)


# The model, optimizer and schedule groups: each option's schema is derived from its builder
# function's signature (dlrunner.config.derive), so that it is declared once.


# ---------------------------------------------------------------- regularization, trainer


@dataclass
class RegularizationConfig:
    l2: float = 0.0  # lambda of (lambda / 2m) * sum ||W||_F^2, biases excluded (SPEC B4)
    early_stopping: bool = False  # stop when dev error has not improved for `patience` evaluations
    patience: int = 10
    grad_clip_norm: Optional[float] = None  # clip the global gradient norm; None = off


@dataclass
class TrainerConfig:
    epochs: Optional[int] = None  # give epochs or steps
    steps: Optional[int] = None
    eval_every: Optional[int] = None  # steps between evaluations; None = once per epoch
    checkpoint_every: int = 1  # evaluations between checkpoints of the last state
    # examples per step: a whole number (powers of two are customary) or "full"; optimizer=gd always takes the full set
    batch_size: Any = 100
    seed: int = 0
    repeats: int = 1  # train the same config over this many seeds (seed, seed+1, ...) and report mean and spread
    seeds: Optional[List[int]] = None  # or name the seeds; overrides repeats
    device: str = "auto"  # auto (CUDA when present) | cpu | cuda | cuda:N
    precision: str = "fp32"  # fp32 | bf16 | fp16 (autocast, CUDA only)
    compile: bool = False  # torch.compile the model
    channels_last: Any = "auto"  # auto (2-D CNNs on CUDA) | true | false: NHWC memory for convolutions
    data_on_device: Any = (
        "auto"  # auto (while it fits in half the free device memory) | true | false (pinned host memory)
    )
    eval_test: bool = False  # evaluate the test split at the end (only when asked: SPEC B1)
    # false | true (latest checkpoint of this run) | auto (this folder's, if unfinished) | a run folder or .pt file
    resume: Any = False
    progress: str = "auto"  # auto | bar | plain | none
    threads: Optional[int] = None  # torch intra-op threads on CPU; None = 1 for small work, torch's default for large


@dataclass
class LoggerConfig:
    backend: str = "none"  # none | wandb
    mode: str = "offline"  # W&B: offline | online | disabled
    project: str = "dlrunner"
    entity: Optional[str] = None
    name: Optional[str] = None
    group: Optional[str] = None
    job_type: str = "train"
    tags: List[str] = field(default_factory=list)
    notes: Optional[str] = None
    log_checkpoint: bool = False
    max_misclassified: int = 100
    # Set by `dlrun sweep` for each trial, so dashboards can show the search.
    sweep_round: Optional[int] = None
    sweep_trial: Optional[int] = None


@dataclass
class TransferConfig:
    """Start from the weights of an earlier run (SPEC E19, F14)."""

    checkpoint: Optional[str] = None  # a run folder (its best weights) or a .pt file; None = train from scratch
    freeze: Any = 0  # the first N layers with parameters, or a list of layer names (prefixes), kept fixed
    new_head: Any = "auto"  # replace the output layer: auto (when its shape differs) | true | false


@dataclass
class MetricConfig:
    """The single-number evaluation metric and the satisficing thresholds (SPEC E3, E4, E7)."""

    optimizing: str = "error"  # error | accuracy | precision | recall | f1 | weighted_error | segment_error
    class_weights: Optional[Any] = None  # weighted_error: weight by true class, e.g. {3: 10}; others 1
    satisficing: List[str] = field(default_factory=list)  # e.g. ["satisficing.latency_ms <= 100"] over summary.json


@dataclass
class DiagnosisConfig:
    # A gap (avoidable bias, variance, ...) counts as a problem when it is at least this large
    # (fraction of examples) and at least half of the largest gap.
    significant_gap: float = 0.015


@dataclass
class Config:
    data: DataConfig = MISSING
    model: Any = MISSING
    optimizer: Any = MISSING
    schedule: Any = MISSING
    regularization: RegularizationConfig = MISSING
    trainer: TrainerConfig = MISSING
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    transfer: TransferConfig = field(default_factory=TransferConfig)
    metric: MetricConfig = field(default_factory=MetricConfig)
    diagnosis: DiagnosisConfig = field(default_factory=DiagnosisConfig)


SCHEMAS = {  # the groups whose options are not builder calls; builder_schemas() adds the others
    "schema/config": Config,
    "schema/data/data": DataConfig,
    "schema/regularization/regularization": RegularizationConfig,
    "schema/trainer/trainer": TrainerConfig,
    "schema/logger/logger": LoggerConfig,
}


def all_schemas() -> dict[str, type]:
    """Every schema by its config path: the ones above and those derived from the builders."""
    from dlrunner.config.derive import builder_schemas

    return {**SCHEMAS, **builder_schemas()}


def register_schemas() -> None:
    """Store every schema in Hydra's ConfigStore (idempotent)."""
    from hydra.core.config_store import ConfigStore

    store = ConfigStore.instance()
    for path, node in all_schemas().items():
        group, name = path.rsplit("/", 1)
        store.store(group=group, name=name, node=node)
