"""Dataset builders: each returns ``(X, y)`` as numpy arrays, examples first.

Config files name these functions (``source: {_target_: dlrunner.data.sources.moons, ...}``) and
their keyword arguments are the config's keys. Nothing here touches the network: the built-in sets
come from scikit-learn's bundled files, from the ``mnist1d`` generator, or are generated.
"""

from __future__ import annotations

import csv as csv_module
import hashlib
import json
import os
from pathlib import Path

import numpy as np

from dlrunner.errors import ConfigError, Problem

Arrays = tuple[np.ndarray, np.ndarray]


def digits() -> Arrays:
    """scikit-learn's bundled 8x8 digits: 1797 images flattened to 64 features, 10 classes."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return bunch.data.astype(np.float32), bunch.target.astype(np.int64)


def digit_attributes(missing: float = 0.3, seed: int = 0) -> Arrays:
    """A multi-task set (SPEC E20): the 8x8 digits as 1x8x8 images, each with three yes/no labels
    (the digit is even; above 4; has a closed loop: 0, 6, 8, 9), a fraction ``missing`` of them
    unknown (NaN), as when not every image was labelled for every task."""
    if not (isinstance(missing, (int, float)) and 0 <= missing < 1):
        raise ConfigError(Problem("data.source.missing", missing, "a fraction in [0, 1)"))
    X, digit = digits()
    y = np.stack([digit % 2 == 0, digit > 4, np.isin(digit, (0, 6, 8, 9))], axis=1).astype(np.float32)
    y[np.random.default_rng(seed).random(y.shape) < missing] = np.nan
    return X.reshape(-1, 1, 8, 8), y


def breast_cancer() -> Arrays:
    """scikit-learn's bundled Wisconsin breast cancer set: 569 examples, 30 features, 2 classes."""
    from sklearn.datasets import load_breast_cancer

    bunch = load_breast_cancer()
    return bunch.data.astype(np.float32), bunch.target.astype(np.int64)


def _cache_dir() -> Path:
    return Path(os.environ.get("DLRUNNER_CACHE_DIR", Path.home() / ".cache" / "dlrunner"))


def mnist1d(num_samples: int = 5000, seed: int = 42, **generator_args) -> Arrays:
    """MNIST-1D (Greydanus & Kobak): length-40 signals of 10 digit templates.

    Generated offline with ``mnist1d.data.make_dataset`` (never ``get_dataset``, which downloads).
    Extra keyword arguments override the generator's own (``shuffle_seq``, ``iid_noise_scale``, ...).
    The generated arrays are cached by their arguments in ~/.cache/dlrunner (or
    $DLRUNNER_CACHE_DIR), since generating takes a second or two.
    """
    from importlib.metadata import version

    # The cache is keyed by the arguments given and the package's version, so that a cached set
    # is read without importing mnist1d (whose import, with scipy and matplotlib, takes ~1 s).
    given = {**generator_args, "num_samples": num_samples, "seed": seed}
    key = hashlib.sha256(
        json.dumps({"args": given, "mnist1d": version("mnist1d")}, sort_keys=True, default=str).encode()
    ).hexdigest()[:16]
    cache = _cache_dir() / f"mnist1d-{key}.npz"
    if cache.exists():
        with np.load(cache) as stored:
            return stored["X"], stored["y"]
    from mnist1d.data import get_dataset_args

    args = get_dataset_args(as_dict=True)
    unknown = sorted(set(generator_args) - set(args))
    if unknown:
        raise ConfigError(
            [
                Problem(f"data.source.{k}", generator_args[k], f"not an mnist1d argument; valid: {sorted(args)}")
                for k in unknown
            ]
        )
    args.update(generator_args, num_samples=num_samples, seed=seed, train_split=1.0)
    args.pop("url", None)
    X, y = _generate_mnist1d(args)
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(f".{os.getpid()}.tmp.npz")
    np.savez(tmp, X=X, y=y)
    os.replace(tmp, cache)
    return X, y


def _generate_mnist1d(args: dict) -> Arrays:
    from mnist1d.data import make_dataset
    from mnist1d.utils import ObjectView

    # make_dataset reseeds numpy's global generator; keep the caller's global state intact.
    state = np.random.get_state()
    try:
        data = make_dataset(ObjectView(dict(args)))
    finally:
        np.random.set_state(state)
    return data["x"].astype(np.float32), data["y"].astype(np.int64)


# ------------------------------------------------------------------ toy 2-D sets


def flower(n_samples: int = 400, noise: float = 0.2, seed: int = 0) -> Arrays:
    """The course's planar 'flower': two classes of petals, r = 4 sin(4t) (course 1, week 3)."""
    rng = np.random.default_rng(seed)
    per_class = n_samples // 2
    X, y = [], []
    for label in range(2):
        t = np.linspace(label * 3.12, (label + 1) * 3.12, per_class) + rng.normal(0, noise, per_class)
        r = 4 * np.sin(4 * t) + rng.normal(0, noise, per_class)
        X.append(np.c_[r * np.sin(t), r * np.cos(t)])
        y.append(np.full(per_class, label))
    return np.concatenate(X).astype(np.float32), np.concatenate(y).astype(np.int64)


def moons(n_samples: int = 1000, noise: float = 0.2, seed: int = 0) -> Arrays:
    """Two interleaving half circles (scikit-learn's make_moons)."""
    from sklearn.datasets import make_moons

    X, y = make_moons(n_samples=n_samples, noise=noise, random_state=seed)
    return X.astype(np.float32), y.astype(np.int64)


def circles(n_samples: int = 1000, noise: float = 0.1, seed: int = 0, factor: float = 0.5) -> Arrays:
    """A circle inside a circle (scikit-learn's make_circles); `factor` is the inner radius."""
    from sklearn.datasets import make_circles

    X, y = make_circles(n_samples=n_samples, noise=noise, factor=factor, random_state=seed)
    return X.astype(np.float32), y.astype(np.int64)


def xor(n_samples: int = 1000, noise: float = 0.1, seed: int = 0) -> Arrays:
    """Points in [-1, 1]^2 labelled by the sign of x1*x2, then jittered by `noise`."""
    rng = np.random.default_rng(seed)
    X = rng.uniform(-1, 1, size=(n_samples, 2))
    y = (X[:, 0] * X[:, 1] > 0).astype(np.int64)
    return (X + rng.normal(0, noise, X.shape)).astype(np.float32), y


def gaussians(n_samples: int = 1000, noise: float = 0.5, seed: int = 0) -> Arrays:
    """Two Gaussian blobs centred at (2, 2) and (-2, -2) with standard deviation `noise` * 2."""
    rng = np.random.default_rng(seed)
    y = np.arange(n_samples) % 2
    centres = np.where(y[:, None] == 1, 2.0, -2.0)
    X = centres + rng.normal(0, 2 * noise, size=(n_samples, 2))
    return X.astype(np.float32), y.astype(np.int64)


def spiral(n_samples: int = 1000, noise: float = 0.1, seed: int = 0, classes: int = 2) -> Arrays:
    """`classes` interleaved spiral arms; `noise` jitters the angle."""
    rng = np.random.default_rng(seed)
    per_class = n_samples // classes
    X, y = [], []
    for label in range(classes):
        radius = np.linspace(0.05, 1.0, per_class)
        angle = np.linspace(0, 4 * np.pi, per_class) + label * 2 * np.pi / classes
        angle = angle + rng.normal(0, noise * 2 * np.pi / classes, per_class)
        X.append(np.c_[radius * np.sin(angle), radius * np.cos(angle)])
        y.append(np.full(per_class, label))
    return np.concatenate(X).astype(np.float32), np.concatenate(y).astype(np.int64)


# ------------------------------------------------------------------ user data


def csv(path: str, label_column: str = "label") -> tuple:
    """A CSV file with a header row: numeric feature columns and one label column.

    Labels may be numbers or names; names become class indices in sorted order, and the names are
    returned too (kept in the summary, analysis.json and checkpoints).
    """
    file = _existing_file(path, "data.source.path")
    try:
        with open(file, newline="", encoding="utf-8-sig") as handle:
            rows = list(csv_module.reader(handle))
    except (UnicodeDecodeError, csv_module.Error) as err:
        raise ConfigError(Problem("data.source.path", path, f"not a readable CSV text file ({err})")) from None
    if not rows:
        raise ConfigError(
            Problem("data.source.path", path, "the CSV file is empty; it needs a header row and data rows")
        )
    header, body = [name.strip() for name in rows[0]], [row for row in rows[1:] if row]
    if label_column not in header:
        raise ConfigError(
            Problem("data.source.label_column", label_column, f"no such column in {file.name}; columns are {header}")
        )
    if not body:
        raise ConfigError(Problem("data.source.path", path, "the CSV file has a header but no data rows"))
    label_at = header.index(label_column)
    features, labels = [], []
    for line, row in enumerate(body, start=2):
        if len(row) != len(header):
            raise ConfigError(
                Problem("data.source.path", path, f"line {line} has {len(row)} fields, the header has {len(header)}")
            )
        labels.append(row[label_at].strip())
        try:
            features.append([float(v) for i, v in enumerate(row) if i != label_at])
        except ValueError:
            bad, value = next((h, v) for i, (h, v) in enumerate(zip(header, row)) if i != label_at and not _is_float(v))
            raise ConfigError(
                Problem(
                    "data.source.path",
                    path,
                    f"line {line}, column {bad!r}: {value!r} is not a number (features must be numeric)",
                )
            ) from None
    X = np.asarray(features, dtype=np.float32)
    if all(_is_float(v) for v in labels):
        return X, np.asarray([float(v) for v in labels])
    names = sorted(set(labels))
    index = {name: i for i, name in enumerate(names)}
    return X, np.asarray([index[v] for v in labels], dtype=np.int64), None, names  # the names travel with the run


def npz(path: str) -> Arrays:
    """An .npz file holding X (examples first, any feature shape) and y, and optionally w: a
    weight per example for metric.optimizing=weighted_error (SPEC E7)."""
    with open_npz(path) as stored:
        missing = [k for k in ("X", "y") if k not in stored.files]
        if missing:
            raise ConfigError(
                Problem("data.source.path", path, f"the .npz needs arrays X and y; it has {stored.files}")
            )
        if "w" in stored.files:
            return stored["X"].astype(np.float32), stored["y"], stored["w"]
        return stored["X"].astype(np.float32), stored["y"]


def open_npz(path: str) -> np.lib.npyio.NpzFile:
    """The user's .npz file (data.source.path), opened without unpickling anything."""
    file = _existing_file(path, "data.source.path")
    try:
        stored = np.load(file, allow_pickle=False)
    except (OSError, ValueError) as err:
        # numpy's own text suggests allow_pickle=True for any file it cannot parse; never for data files
        reason = "not an .npz archive" if "pickled" in str(err) else str(err)
        raise ConfigError(
            Problem(
                "data.source.path",
                path,
                f"not a readable .npz file ({reason}); save one with numpy.savez(path, X=..., y=...)",
            )
        ) from None
    if not isinstance(stored, np.lib.npyio.NpzFile):  # np.load also reads a bare .npy array
        raise ConfigError(
            Problem("data.source.path", path, "a single .npy array; save X and y together with numpy.savez")
        )
    return stored


def _existing_file(path: str, key: str) -> Path:
    file = Path(path).expanduser()
    if file.is_dir():
        raise ConfigError(Problem(key, path, "that is a directory; give the path of a file"))
    if not file.is_file():
        raise ConfigError(
            Problem(key, path, "no such file (relative paths are relative to the directory you ran dlrun from)")
        )
    return file


def _is_float(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False
