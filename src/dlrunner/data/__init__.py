"""Data: builders of the raw arrays (sources), splits, and the tensors training runs on."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from dlrunner.config.validate import TASKS
from dlrunner.data.splits import normalizer, split_indices
from dlrunner.errors import ConfigError, Problem


@dataclass
class Dataset:
    """Everything the trainer needs: one (X, y) pair of tensors per split, on the training device."""

    splits: dict  # name -> (X, y); train and dev always, train_dev and test when configured
    task: str  # binary | multiclass | multilabel | regression
    n_classes: int | None  # classes; for multilabel the number of labels (tasks)
    input_shape: tuple
    mean: np.ndarray | None = None  # input normalisation, stored with the model
    std: np.ndarray | None = None
    notes: list = field(default_factory=list)
    error_scale: float = 1.0  # the unit of a significant error gap: 1 for error rates, Var(y_train) for MSE
    weights: dict | None = None  # split -> a weight per example (CPU tensor), when the source gives them (SPEC E7)
    class_names: list | None = None  # the name of class i, when the source's labels were names (a CSV's species)

    @property
    def n_outputs(self) -> int:
        return self.n_classes if self.task in ("multiclass", "multilabel") else 1


SOURCE_RETURNS = "(X, y), (X, y, w) or (X, y, w, class_names), w the example weights or None"


def load_source(node, key: str) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, list | None]:
    """Call a source builder named by a config node and check what it returns: (X, y), or
    (X, y, w) with a weight per example for the weighted error (SPEC E7), or (X, y, w, names)
    with the name of each class index (w may be None); returned as (X, y, w, names)."""
    from dlrunner.config.builders import call_builder

    try:
        returned = call_builder(node, key)
    except ConfigError:
        raise
    except (ValueError, TypeError) as err:  # e.g. scikit-learn's InvalidParameterError, a negative seed
        raise ConfigError(Problem(key, dict(node), f"{node.get('_target_')} rejected these arguments: {err}")) from None
    # Problems with the arrays are the file's, when the source reads one: name it.
    where = (f"{key}.path", node.get("path")) if node.get("path") is not None else (key, node.get("_target_"))
    if not isinstance(returned, (tuple, list)) or not 2 <= len(returned) <= 4:
        got = f"{len(returned)} values" if isinstance(returned, (tuple, list)) else type(returned).__name__
        raise ConfigError(Problem(*where, f"a data source returns {SOURCE_RETURNS}; this one returned {got}"))
    X, y, *rest = returned
    X, y = np.asarray(X), np.asarray(y)
    if len(X) != len(y):
        raise ConfigError(Problem(*where, f"X has {len(X)} examples but y has {len(y)}"))
    if X.ndim == 1:
        X = X[:, None]
    try:
        X = X.astype(np.float32)
    except (ValueError, TypeError):
        raise ConfigError(Problem(*where, f"features must be numbers, not {X.dtype}")) from None
    if not np.isfinite(X).all():
        bad = int((~np.isfinite(X)).reshape(len(X), -1).any(axis=1).argmax())
        raise ConfigError(
            Problem(
                *where, f"features contain NaN or infinity (first at example {bad}); features must be finite numbers"
            )
        )
    weights_wrong = Problem(
        *where,
        f"the third value returned, the example weights, must be {len(X)} finite numbers >= 0, one per "
        f"example, or None (a data source returns {SOURCE_RETURNS})",
    )
    try:
        weights = np.asarray(rest[0], dtype=np.float64) if rest and rest[0] is not None else None
    except (ValueError, TypeError):
        raise ConfigError(weights_wrong) from None
    if weights is not None and (weights.shape != (len(X),) or not np.isfinite(weights).all() or (weights < 0).any()):
        raise ConfigError(weights_wrong)
    names = [str(n) for n in rest[1]] if len(rest) > 1 and rest[1] is not None else None
    return X, y, weights, names


def infer_task(y: np.ndarray, task: str, n_classes: int | None) -> tuple[str, int | None, np.ndarray]:
    """Decide the task from the labels when ``task=auto``, and check the labels fit the task."""
    if task == "multilabel" or (task == "auto" and _looks_multilabel(y)):
        return "multilabel", *_multilabel(y, n_classes)
    whole = np.all(np.isfinite(y)) and np.all(np.equal(np.mod(y, 1), 0))
    if task == "auto":
        task = "regression" if not whole else ("binary" if set(np.unique(y)) <= {0, 1} else "multiclass")
    if task == "regression":
        return task, None, y.astype(np.float32)
    if not whole or (len(y) and y.min() < 0):
        found = np.unique(y)
        shown = ", ".join(f"{v:g}" for v in found[:8]) + (", ..." if len(found) > 8 else "")
        raise ConfigError(
            Problem(
                "data.task",
                task,
                f"classification labels must be whole numbers 0, 1, ..., C-1, but the labels are {shown}; "
                "use data.task=regression for real-valued targets",
            )
        )
    y = y.astype(np.int64)
    top = int(y.max()) + 1 if len(y) else 0
    if n_classes is None:
        n_classes = max(top, 2)
    elif top > n_classes:
        raise ConfigError(
            Problem("data.n_classes", n_classes, f"labels go up to {top - 1}; labels must lie in [0, {n_classes})")
        )
    if task == "binary" and n_classes != 2:
        raise ConfigError(
            Problem("data.task", task, f"binary needs labels 0 and 1; these labels go up to {top - 1} (use multiclass)")
        )
    return task, n_classes, y


def _looks_multilabel(y: np.ndarray) -> bool:
    """Several 0/1 labels per example, missing ones as -1 or NaN (SPEC E20)."""
    if y.ndim != 2 or not np.issubdtype(y.dtype, np.number):
        return False
    known = y[np.isfinite(y)]
    return bool(np.isin(known, (0, 1, -1)).all())


def _multilabel(y: np.ndarray, n_labels: int | None) -> tuple[int, np.ndarray]:
    """Labels as float 0/1 with NaN where an entry is not labelled ('?' in the course, -1 or NaN in files)."""
    if y.ndim != 2:
        raise ConfigError(
            Problem(
                "data.task",
                "multilabel",
                f"multilabel needs y of shape (examples, labels); these labels have shape {y.shape}",
            )
        )
    y = y.astype(np.float32)
    y[y == -1] = np.nan
    known = y[np.isfinite(y)]
    if not np.isin(known, (0, 1)).all():
        raise ConfigError(
            Problem("data.task", "multilabel", "multilabel entries must be 0, 1, or -1/NaN for a missing label")
        )
    if n_labels is not None and n_labels != y.shape[1]:
        raise ConfigError(Problem("data.n_classes", n_labels, f"the labels have {y.shape[1]} columns (one per task)"))
    return y.shape[1], y


def reshape_examples(X: np.ndarray, shape, key: str = "data.shape") -> np.ndarray:
    """Give each example the shape a model expects, e.g. 64 features -> (1, 8, 8) for a CNN,
    or MNIST-1D's 40 -> (1, 40) for a 1-D CNN and (40, 1) for an RNN (40 steps of 1 number)."""
    if shape is None:
        return X
    shape = tuple(int(v) for v in shape)
    size = int(np.prod(X.shape[1:]))
    known = int(np.prod([v for v in shape if v != -1]))
    fits = (shape.count(-1) == 0 and known == size) or (shape.count(-1) == 1 and known > 0 and size % known == 0)
    if not fits or any(v == 0 or v < -1 for v in shape):
        raise ConfigError(
            Problem(
                key,
                list(shape),
                f"each example has shape {tuple(X.shape[1:])} ({size} values); "
                f"the new shape must hold exactly {size} values (one entry may be -1)",
            )
        )
    return X.reshape(len(X), *shape)


def build_data(cfg, device="cpu") -> Dataset:
    """Load the source (and target) arrays, split them, normalise with train statistics, move to ``device``."""
    import torch

    if cfg.task not in TASKS:
        raise ConfigError(Problem("data.task", cfg.task, f"one of {list(TASKS)}"))
    X, y, w, class_names = load_source(cfg.source, "data.source")
    X = reshape_examples(X, cfg.get("shape"))
    target = load_source(cfg.target, "data.target") if cfg.get("target") is not None else None
    if target is not None:
        if target[3] != class_names:  # class i must be the same class in both
            raise ConfigError(
                Problem(
                    "data.target",
                    cfg.target.get("_target_"),
                    f"its classes {target[3]} are not the source's {class_names}",
                )
            )
        target = (reshape_examples(target[0], cfg.get("shape")), target[1], target[2])
    if target is not None and target[0].shape[1:] != X.shape[1:]:
        raise ConfigError(
            Problem(
                "data.target",
                cfg.target.get("_target_"),
                f"examples of shape {target[0].shape[1:]} but the source's are {X.shape[1:]}",
            )
        )
    all_y = y if target is None else np.concatenate([y, target[1]])
    task, n_classes, all_y = infer_task(all_y, cfg.task, cfg.get("n_classes"))
    y, target_y = all_y[: len(y)], all_y[len(y) :]

    parts = split_indices(
        len(X),
        dict(cfg.split),
        seed=cfg.split.seed,
        target_n=0 if target is None else len(target[0]),
        target_shares=dict(cfg.target_split),
    )

    def gather(part):
        xs = [X[part["source"]]] + ([target[0][part["target"]]] if target is not None else [])
        ys = [y[part["source"]]] + ([target_y[part["target"]]] if target is not None else [])
        return np.concatenate(xs), np.concatenate(ys)

    def gather_weights(part):
        source_w = w if w is not None else np.ones(len(X))
        target_w = (target[2] if target[2] is not None else np.ones(len(target[0]))) if target is not None else None
        return np.concatenate([source_w[part["source"]]] + ([target_w[part["target"]]] if target is not None else []))

    has_weights = w is not None or (target is not None and target[2] is not None)
    arrays = {name: gather(part) for name, part in parts.items()}
    if target is not None and len(parts["train"]["target"]):
        # Evaluation only: the training set's general and target parts, for the two-column
        # mismatch table (error on examples trained on, per distribution; SPEC E17).
        none = np.empty(0, dtype=np.int64)
        arrays["train_general"] = gather({"source": parts["train"]["source"], "target": none})
        arrays["train_target"] = gather({"source": none, "target": parts["train"]["target"]})
    arrays = {name: xy for name, xy in arrays.items() if len(xy[0]) or name in ("train", "dev")}
    fraction = cfg.get("train_fraction", 1.0)
    if fraction < 1:  # a learning curve's smaller m: the first examples of the (already shuffled) training split
        x, y_ = arrays["train"]
        keep = max(1, math.ceil(fraction * len(x)))
        arrays["train"] = (x[:keep], y_[:keep])
    for name in ("train", "dev"):
        if len(arrays[name][0]) == 0:
            raise ConfigError(
                Problem(
                    f"data.split.{name}", cfg.split[name], f"the {name} split is empty; it needs at least one example"
                )
            )
    n_dev = len(arrays["dev"][0])
    if task in ("binary", "multiclass") and n_dev < n_classes:  # some class can never be measured on dev
        split = "data.split" if target is None else "data.target_split"
        raise ConfigError(
            Problem(
                f"{split}.dev",
                cfg[split.rpartition(".")[2]].dev,
                f"the dev set gets {n_dev} of the {len(all_y)} examples "
                f"but there are {n_classes} classes; it needs at least one example per class (a larger share or count)",
            )
        )

    mean = std = None
    if cfg.normalize:
        mean, std = normalizer(arrays["train"][0], per_channel=cfg.normalize == "channel")
        arrays = {name: ((x - mean) / std, y_) for name, (x, y_) in arrays.items()}

    notes = []
    if task in ("binary", "multiclass") and len(np.unique(arrays["dev"][1])) < n_classes:
        notes.append(f"the dev set holds {len(np.unique(arrays['dev'][1]))} of the {n_classes} classes")
    label_dtype = torch.int64 if task == "multiclass" else torch.float32
    splits = {
        name: (torch.as_tensor(x, device=device), torch.as_tensor(y_, device=device).to(label_dtype))
        for name, (x, y_) in arrays.items()
    }
    error_scale = float(np.var(arrays["train"][1])) or 1.0 if task == "regression" else 1.0
    weights = None
    if has_weights:  # per-example weights of each split (the training split possibly cut by train_fraction)
        weights = {
            name: torch.as_tensor(gather_weights(parts[name])[: len(arrays[name][0])])
            for name in arrays
            if name in parts
        }
    if class_names is not None and task not in ("binary", "multiclass"):
        class_names = None
    return Dataset(splits, task, n_classes, tuple(X.shape[1:]), mean, std, notes, error_scale, weights, class_names)
