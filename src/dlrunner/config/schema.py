"""Structured-config schemas: the types and keys of every config group.

Values and defaults live in the YAML files of conf/; these dataclasses only say which keys exist
and what type each one has, so that ``optimizer.lrr=0.1`` (a typo) or ``optimizer.lr=fast`` (a
wrong type) fails while Hydra composes the config, before anything runs. Each YAML option names
its schema in its defaults list (``- /schema/optimizer/adam@_here_``).

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


# ---------------------------------------------------------------- model


@dataclass
class LogRegConfig:
    _target_: str = "dlrunner.models.build_logreg"
    init: str = MISSING


@dataclass
class MLPConfig:
    _target_: str = "dlrunner.models.build_mlp"
    layers: List[int] = MISSING  # hidden units n[1..L-1]; the output layer comes from the task
    activation: Any = MISSING  # one name for all hidden layers, or one per layer
    leaky_slope: float = 0.01
    init: str = MISSING  # he | xavier | glorot | small_random | zeros | pytorch
    batch_norm: bool = False
    keep_prob: Any = 1.0  # dropout keep probability, one value or one per hidden layer
    input_keep_prob: float = 1.0


@dataclass
class CNNConfig:
    _target_: str = "dlrunner.models.build_cnn"
    blocks: List[Any] = (
        MISSING  # conv / separable / pool / global_pool / batch_norm / activation / dropout / flatten / fc
    )
    init: str = "he"


@dataclass
class LeNet5Config:
    _target_: str = "dlrunner.models.build_lenet5"
    activation: str = "tanh"
    pooling: str = "avg"


@dataclass
class AlexNetConfig:
    _target_: str = "dlrunner.models.build_alexnet"
    dropout: float = 0.5
    fc_units: int = 4096


@dataclass
class VGGConfig:
    _target_: str = "dlrunner.models.build_vgg"
    depth: int = 16
    batch_norm: bool = False
    fc_units: int = 4096
    dropout: float = 0.5
    width: float = 1.0


@dataclass
class ResNetConfig:
    _target_: str = "dlrunner.models.build_resnet"
    depth: int = 18
    width: int = 64
    stem: str = "auto"


@dataclass
class GoogLeNetConfig:
    _target_: str = "dlrunner.models.build_googlenet"
    aux_heads: bool = False
    width: float = 1.0
    dropout: float = 0.4


@dataclass
class MobileNetConfig:
    _target_: str = "dlrunner.models.build_mobilenet"
    width: float = 1.0


@dataclass
class RNNConfig:
    _target_: str = "dlrunner.models.build_rnn"
    cell: str = MISSING  # rnn | gru | lstm
    hidden: int = 64
    num_layers: int = 1
    bidirectional: bool = False
    head: str = "last"  # last | mean | attention | flatten | many_to_many
    dropout: float = 0.0


# ---------------------------------------------------------------- optimizer


@dataclass
class GDConfig:
    _target_: str = "dlrunner.optim.build_gd"
    lr: float = MISSING
    batch_size: Any = "full"


@dataclass
class SGDConfig:
    _target_: str = "dlrunner.optim.build_sgd"
    lr: float = MISSING
    batch_size: Any = MISSING  # a positive integer (powers of two are customary) or "full"


@dataclass
class MomentumConfig(SGDConfig):
    _target_: str = "dlrunner.optim.build_momentum"
    beta: float = MISSING


@dataclass
class RMSpropConfig(SGDConfig):
    _target_: str = "dlrunner.optim.build_rmsprop"
    beta: float = MISSING
    eps: float = MISSING


@dataclass
class AdamConfig(SGDConfig):
    _target_: str = "dlrunner.optim.build_adam"
    beta1: float = MISSING
    beta2: float = MISSING
    eps: float = MISSING


# ---------------------------------------------------------------- schedule


@dataclass
class ConstantScheduleConfig:
    _target_: str = "dlrunner.optim.schedules.constant"


@dataclass
class InverseTimeScheduleConfig:
    _target_: str = "dlrunner.optim.schedules.inverse_time"
    decay_rate: float = MISSING


@dataclass
class ExponentialScheduleConfig:
    _target_: str = "dlrunner.optim.schedules.exponential"
    base: float = MISSING


@dataclass
class InverseSqrtScheduleConfig:
    _target_: str = "dlrunner.optim.schedules.inverse_sqrt"
    k: float = MISSING


@dataclass
class StaircaseScheduleConfig:
    _target_: str = "dlrunner.optim.schedules.staircase"
    factor: float = MISSING
    every_epochs: int = MISSING


@dataclass
class CosineScheduleConfig:
    _target_: str = "dlrunner.optim.schedules.cosine"
    warmup_steps: int = MISSING
    min_factor: float = MISSING


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


SCHEMAS = {
    "schema/config": Config,
    "schema/data/data": DataConfig,
    "schema/model/logreg": LogRegConfig,
    "schema/model/mlp": MLPConfig,
    "schema/model/cnn": CNNConfig,
    "schema/model/lenet5": LeNet5Config,
    "schema/model/alexnet": AlexNetConfig,
    "schema/model/vgg": VGGConfig,
    "schema/model/resnet": ResNetConfig,
    "schema/model/googlenet": GoogLeNetConfig,
    "schema/model/mobilenet": MobileNetConfig,
    "schema/model/rnn": RNNConfig,
    "schema/optimizer/gd": GDConfig,
    "schema/optimizer/sgd": SGDConfig,
    "schema/optimizer/momentum": MomentumConfig,
    "schema/optimizer/rmsprop": RMSpropConfig,
    "schema/optimizer/adam": AdamConfig,
    "schema/schedule/constant": ConstantScheduleConfig,
    "schema/schedule/inverse_time": InverseTimeScheduleConfig,
    "schema/schedule/exponential": ExponentialScheduleConfig,
    "schema/schedule/inverse_sqrt": InverseSqrtScheduleConfig,
    "schema/schedule/staircase": StaircaseScheduleConfig,
    "schema/schedule/cosine": CosineScheduleConfig,
    "schema/regularization/regularization": RegularizationConfig,
    "schema/trainer/trainer": TrainerConfig,
    "schema/logger/logger": LoggerConfig,
}


def register_schemas() -> None:
    """Store every schema in Hydra's ConfigStore (idempotent)."""
    from hydra.core.config_store import ConfigStore

    store = ConfigStore.instance()
    for path, node in SCHEMAS.items():
        group, name = path.rsplit("/", 1)
        store.store(group=group, name=name, node=node)
