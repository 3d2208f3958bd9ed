"""Semantic checks of a composed config, run before any data is loaded or any file written.

Hydra and the schemas already reject unknown keys and wrong types; this module rejects values of
the right type that cannot work (a negative learning rate, keep_prob = 0, ...). Every problem is
collected, so a user fixes them all in one go.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable

from omegaconf import MISSING, DictConfig, OmegaConf

from dlrunner.errors import ConfigError, Problem
from dlrunner.models.choices import ACTIVATIONS, INITS

# The numbers of summary.json a satisficing threshold can name (checked before training, so a
# misspelt path is bad input instead of a threshold that is never met).
SPLITS = "(train|dev|test|train_dev|train_general|train_target)"
SUMMARY_NUMBER = re.compile(
    r"^(n_params|n_params_total"
    r"|satisficing\.(n_params|size_mb|latency_ms|train_s)"
    rf"|metrics\.{SPLITS}\.(loss|error|accuracy|precision|recall|f1)"
    rf"|metric\.{SPLITS}"
    r"|timing\.(train_s|eval_s|steps|epochs|steps_per_s)"
    r"|diagnosis\.(avoidable_bias|variance|data_mismatch|dev_overfitting|human_error)"
    r"|best\.(step|dev_error))$"
)
SUMMARY_EXAMPLES = (
    "satisficing.latency_ms, satisficing.size_mb, satisficing.train_s, n_params, metrics.dev.accuracy, metric.dev, "
    "timing.steps_per_s"
)

TASKS = ("auto", "binary", "multiclass", "multilabel", "regression")
PRECISIONS = ("fp32", "bf16", "fp16")
PROGRESS = ("auto", "bar", "plain", "none")

Check = Callable[[object], str | None]  # returns what is valid when the value is not


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def positive(value):
    return None if _number(value) and value > 0 else "a number > 0"


def non_negative(value):
    return None if _number(value) and value >= 0 else "a number >= 0"


def positive_int(value):
    return None if isinstance(value, int) and not isinstance(value, bool) and value > 0 else "a whole number > 0"


def non_negative_int(value):
    return None if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else "a whole number >= 0"


def fraction(value):
    return None if _number(value) and 0 <= value <= 1 else "a fraction in [0, 1]"


def beta(value):
    return None if _number(value) and 0 <= value < 1 else "in [0, 1): the decay of an exponentially weighted average"


def keep_prob(value):
    values = list(value) if isinstance(value, (list, tuple)) else [value]
    ok = all(_number(v) and 0 < v <= 1 for v in values)
    return None if ok else "a keep probability in (0, 1] (1 = no dropout), or a list of them"


def decay_factor(value):
    return None if _number(value) and 0 < value <= 1 else "a factor in (0, 1]"


def batch_size(value):
    if value == "full" or (isinstance(value, int) and not isinstance(value, bool) and value > 0):
        return None
    return "a whole number > 0 (powers of two are customary: 32, 64, 128, ...) or 'full'"


def layers(value):
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, int) and v > 0 for v in value):
        return None
    if isinstance(value, (list, tuple)) and not value:
        return "at least one hidden layer, e.g. [64, 32] (for no hidden layer use model=logreg)"
    return "a list of positive whole numbers, e.g. [64, 32]"


def activation(value):
    values = list(value) if isinstance(value, (list, tuple)) else [value]
    return (
        None if values and all(v in ACTIVATIONS for v in values) else f"one of {list(ACTIVATIONS)}, or a list of them"
    )


def normalize(value):
    return (
        None
        if value in (True, False, "feature", "channel")
        else "true (per feature), channel (per channel, for images) or false"
    )


def shape(value):
    ok = (
        isinstance(value, (list, tuple))
        and value
        and all(isinstance(v, int) and not isinstance(v, bool) and (v > 0 or v == -1) for v in value)
    )
    return None if ok else "a list of whole numbers, channels first, e.g. [1, 8, 8] (one entry may be -1)"


def freeze(value):
    if (isinstance(value, int) and not isinstance(value, bool) and value >= 0) or (
        isinstance(value, (list, tuple)) and all(isinstance(v, (str, int)) for v in value)
    ):
        return None
    return "the number of leading layers to freeze (0 = none), or a list of layer names (see dlrun summary)"


def satisficing(value):
    from dlrunner.search.constraints import parse_constraint

    try:
        paths = [parse_constraint(text)[0] for text in value]
    except (ValueError, TypeError):
        return (
            "a list of 'PATH OP NUMBER' over summary.json, e.g. ['satisficing.latency_ms <= 100', 'n_params < 50000']"
        )
    unknown = [p for p in paths if not SUMMARY_NUMBER.match(p)]
    return f"{unknown[0]!r} is not a number in summary.json; e.g. {SUMMARY_EXAMPLES}" if unknown else None


def class_weights(value):
    ok = isinstance(value, dict) and all(str(k).isdigit() and _number(v) and v >= 0 for k, v in value.items())
    return None if ok else "a mapping from class index to weight, e.g. {3: 10} (other classes weigh 1)"


def one_of(choices) -> Check:
    return lambda value: None if value in choices else f"one of {list(choices)}"


def optional(check: Check) -> Check:
    return lambda value: None if value is None else check(value)


def device(value):
    text = str(value)
    if text in ("auto", "cpu", "cuda", "mps") or (text.startswith("cuda:") and text[5:].isdigit()):
        return None
    return "auto, cpu, cuda, cuda:N or mps"


RULES: dict[str, Check] = {
    "data.task": one_of(TASKS),
    "data.n_classes": optional(positive_int),
    "data.human_error": optional(fraction),
    "data.target_human_error": optional(fraction),
    "data.split.train": non_negative,
    "data.split.dev": non_negative,
    "data.split.test": non_negative,
    "data.split.train_dev": non_negative,
    "data.split.seed": optional(non_negative_int),
    "data.normalize": normalize,
    "data.train_fraction": lambda v: (
        None if _number(v) and 0 < v <= 1 else "a fraction in (0, 1]: the share of the training split to train on"
    ),
    "data.shape": optional(shape),
    "data.augment.crop_padding": non_negative_int,
    "data.augment.rotation": non_negative,
    "data.augment.color_shift": non_negative,
    "data.augment.noise_std": non_negative,
    "transfer.freeze": freeze,
    "metric.optimizing": one_of(("error", "accuracy", "precision", "recall", "f1", "weighted_error", "segment_error")),
    "metric.satisficing": satisficing,
    "metric.class_weights": optional(class_weights),
    "transfer.new_head": one_of(("auto", True, False)),
    "model.layers": layers,
    "model.activation": activation,
    "model.init": one_of(INITS),
    "model.leaky_slope": non_negative,
    "model.keep_prob": keep_prob,
    "model.input_keep_prob": keep_prob,
    "model.dropout": lambda v: None if _number(v) and 0 <= v < 1 else "a drop probability in [0, 1)",
    "model.width": positive,
    "model.fc_units": positive_int,
    "model.hidden": positive_int,
    "model.num_layers": lambda v: None if v in (1, 2, 3) and not isinstance(v, bool) else "1, 2 or 3 stacked layers",
    "model.cell": one_of(("rnn", "gru", "lstm")),
    "model.head": one_of(("last", "mean", "attention", "flatten", "many_to_many")),
    "optimizer.lr": positive,
    "optimizer.batch_size": lambda v: None if v is None else batch_size(v),  # the former place: trainer.batch_size
    "trainer.batch_size": batch_size,
    "optimizer.beta": beta,
    "optimizer.beta1": beta,
    "optimizer.beta2": beta,
    "optimizer.eps": positive,
    "schedule.decay_rate": non_negative,
    "schedule.base": decay_factor,
    "schedule.k": positive,
    "schedule.factor": decay_factor,
    "schedule.every_epochs": positive_int,
    "schedule.warmup_steps": non_negative_int,
    "schedule.min_factor": fraction,
    "regularization.l2": non_negative,
    "regularization.patience": positive_int,
    "regularization.grad_clip_norm": optional(positive),
    "trainer.epochs": optional(positive_int),
    "trainer.steps": optional(positive_int),
    "trainer.eval_every": optional(positive_int),
    "trainer.checkpoint_every": positive_int,
    "trainer.device": device,
    "trainer.precision": one_of(PRECISIONS),
    "trainer.progress": one_of(PROGRESS),
    "trainer.threads": optional(positive_int),
    "trainer.channels_last": one_of(("auto", True, False)),
    "trainer.data_on_device": one_of(("auto", True, False)),
    "trainer.seed": non_negative_int,
    "trainer.repeats": positive_int,
    "trainer.seeds": optional(
        lambda v: (
            None
            if isinstance(v, (list, tuple))
            and v
            and all(non_negative_int(s) is None for s in v)
            and len(set(v)) == len(v)
            else "a list of distinct whole numbers >= 0, e.g. [0, 1, 2]"
        )
    ),
    "diagnosis.significant_gap": fraction,
    "logger.backend": one_of(("none", "wandb")),
    "logger.mode": one_of(("offline", "online", "disabled")),
    "logger.max_misclassified": non_negative_int,
}


def validate(cfg: DictConfig) -> None:
    """Raise one ConfigError listing every bad value in ``cfg``."""
    unchosen = [key for key in cfg if OmegaConf.is_missing(cfg, key)]  # ~model: a section left without an option
    if unchosen:
        how = "required: choose one with {0}=NAME (dlrun ls {0} lists them)"
        raise ConfigError([Problem(key, "???", how.format(key)) for key in unchosen])
    problems = []
    # each section resolved once into plain values, not looked up in OmegaConf rule by rule: validate
    # runs for every trial of a sweep, 16 times at the start of a stack (measured 4.4 against 2.1 ms a config)
    parents, sections = {}, {}
    for key, check in RULES.items():
        node, _, leaf = key.rpartition(".")
        if node not in parents:
            parent = OmegaConf.select(cfg, node)
            parents[node] = (parent, set(parent.keys()) if isinstance(parent, DictConfig) else set())
        if leaf not in parents[node][1]:
            continue
        if node not in sections:  # resolved where a rule applies: a section's other values are checked where used
            sections[node] = OmegaConf.to_container(parents[node][0], resolve=True)
        value = sections[node][leaf]
        if value == MISSING:
            continue
        valid = check(value)
        if valid:
            problems.append(Problem(key, value, valid))
    trainer = cfg.trainer
    if (trainer.epochs is None) == (trainer.steps is None):
        problems.append(
            Problem(
                "trainer.steps",
                trainer.steps,
                "give exactly one of trainer.steps and trainer.epochs (set the other to null)",
            )
        )
    problems += _missing_problems(cfg)
    problems += _split_problems(cfg)
    problems += _unknown_key_problems(cfg)
    problems += _secret_problems(cfg)
    seen = {p.key for p in problems}
    problems += [p for p in _builder_problems(cfg) if p.key not in seen]
    if problems:
        raise ConfigError(problems)


def _unknown_key_problems(node: DictConfig, prefix: str = "") -> list[Problem]:
    """Keys added with +key=value where the schema has no such setting: they would be silently unused."""
    import dataclasses

    problems = []
    schema = OmegaConf.get_type(node)
    if dataclasses.is_dataclass(schema):
        fields = sorted(f.name for f in dataclasses.fields(schema))
        for key in node:
            if key not in fields:
                problems.append(
                    Problem(
                        f"{prefix}{key}",
                        OmegaConf.to_container(node, resolve=False)[key],
                        f"not a setting here; valid keys: {', '.join(fields)}",
                    )
                )
    for key in node:
        child = node._get_node(key)
        if isinstance(child, DictConfig) and not OmegaConf.is_missing(node, key):
            problems += _unknown_key_problems(child, f"{prefix}{key}.")
    return problems


# Environment variables that hold credentials, by their names (WANDB_API_KEY, GITHUB_TOKEN, ...).
SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL", re.IGNORECASE)


def _secret_problems(cfg: DictConfig) -> list[Problem]:
    """Config values holding a secret from the environment (e.g. notes: ${oc.env:WANDB_API_KEY}, in a
    config handed to you): the resolved config goes into summary.json and W&B, so refuse it."""
    secrets = {name: value for name, value in os.environ.items() if SECRET_NAME.search(name) and len(value) >= 8}
    if not secrets:
        return []
    try:
        resolved = OmegaConf.to_container(cfg, resolve=True)
    except Exception:  # an interpolation that cannot resolve is reported where it is used
        return []
    problems = []
    for key, value in _leaves(resolved):
        for name, secret in secrets.items():
            if isinstance(value, str) and secret in value:  # the message names the variable, never its value
                problems.append(
                    Problem(
                        key,
                        f"<the value of ${name}>",
                        f"a secret from the environment (${name}) would be "
                        "written into the run folder and the logs; a config must not hold it",
                    )
                )
    return problems


def _leaves(node, prefix: str = ""):
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, value in items:
        path = f"{prefix}.{key}" if prefix and isinstance(node, dict) else f"{prefix}[{key}]" if prefix else str(key)
        if isinstance(value, (dict, list)):
            yield from _leaves(value, path)
        else:
            yield path, value


def _missing_problems(node: DictConfig, prefix: str = "") -> list[Problem]:
    """Settings left at ??? (a config file's data.split without its dev part): each is required.
    A builder's own arguments (data.source.path of data=csv) are said when it is called, so that
    a command that builds no data (dlrun summary --input-shape) does not need them."""
    problems = []
    for key, child in node.items_ex(resolve=False):
        path = f"{prefix}{key}"
        if OmegaConf.is_missing(node, key):
            how = f"required: set it in the config file or on the command line ({path}=...)"
            problems.append(Problem(path, "???", how))
        elif isinstance(child, DictConfig) and "_target_" not in child:
            problems += _missing_problems(child, f"{path}.")
    return problems


def _split_problems(cfg: DictConfig) -> list[Problem]:
    """Ratios must add up to 1 (counts are checked against the data's size when it is loaded)."""
    problems = []
    for key in ("data.split", "data.target_split"):
        shares = OmegaConf.select(cfg, key)
        if any(OmegaConf.is_missing(shares, part) for part in ("train", "dev", "test") if part in shares):
            continue  # said once, as required
        values = [shares.get(part, 0) for part in ("train", "dev", "test")]
        if all(_number(v) and 0 <= v <= 1 for v in values) and abs(sum(values) - 1) > 1e-6:
            problems.append(
                Problem(
                    key,
                    dict(zip(("train", "dev", "test"), values)),
                    f"ratios must add up to 1 (they add up to {sum(values):g}); or give example counts",
                )
            )
    if OmegaConf.select(cfg, "data.target") is None:
        problems = [p for p in problems if p.key != "data.target_split"]
    return problems


def _builder_problems(cfg: DictConfig) -> list[Problem]:
    """Keys that the named builder functions do not take (e.g. added with +model.foo=1)."""
    from dlrunner.config.builders import builder_kwargs

    problems = []
    for key, skip in (("model", ()), ("optimizer", ("batch_size",)), ("schedule", ())):
        try:
            builder_kwargs(cfg[key], key, skip)
        except ConfigError as err:
            problems += err.problems
    return problems
