"""Train / dev / test splits, the train-dev slice, and input normalisation (SPEC B1, B9, E16, E17).

Pure numpy, so the arithmetic can be tested with the course's own numbers.
"""

from __future__ import annotations

import numpy as np

from dlrunner.errors import ConfigError, Problem

PARTS = ("train", "dev", "test")


def split_counts(n: int, shares: dict[str, float], key: str = "data.split") -> dict[str, int]:
    """Turn ratios (summing to 1) or example counts into counts for train, dev and test.

    Ratios: the remainder of rounding goes to train. Counts: must fit in ``n`` examples.
    """
    values = {part: float(shares.get(part, 0) or 0) for part in PARTS}
    problems = [Problem(f"{key}.{part}", v, "must be >= 0") for part, v in values.items() if v < 0]
    if problems:
        raise ConfigError(problems)
    total = sum(values.values())
    if all(v <= 1 for v in values.values()):  # ratios
        if abs(total - 1) > 1e-6:
            raise ConfigError(
                Problem(key, values, f"ratios must add up to 1 (they add up to {total:g}); or give example counts")
            )
        dev, test = round(values["dev"] * n), round(values["test"] * n)
        return {"train": n - dev - test, "dev": dev, "test": test}
    counts = ", ".join(f"{p} {int(v)}" for p, v in values.items() if v > 1 and v == int(v))
    mixed = f" ({counts} are counts): give every part as a ratio, or every part as a count" if counts else ""
    not_whole = [
        Problem(f"{key}.{p}", v, f"an example count must be a whole number{mixed if v < 1 else ''}")
        for p, v in values.items()
        if v != int(v)
    ]
    if not_whole:
        raise ConfigError(not_whole)
    if total > n:
        raise ConfigError(
            Problem(
                key,
                {p: int(v) for p, v in values.items()},
                f"the counts add up to {int(total)} but the data has only {n} examples",
            )
        )
    return {part: int(v) for part, v in values.items()}


def carve_count(n_train: int, share: float, key: str = "data.split.train_dev") -> int:
    """Size of the train-dev slice: a fraction (< 1) of the training examples, or a count."""
    if share < 0 or (share >= 1 and share != int(share)) or share >= n_train:
        raise ConfigError(
            Problem(key, share, f"a fraction in [0, 1) of the {n_train} training examples, or a whole count below it")
        )
    return round(share * n_train) if share < 1 else int(share)


def split_indices(
    n: int, shares: dict[str, float], seed: int, target_n: int = 0, target_shares: dict[str, float] | None = None
) -> dict[str, dict[str, np.ndarray]]:
    """Shuffle with ``seed`` (None: keep the order) and assign example indices to train, train_dev, dev and test.

    Without a target source: ``shares`` splits the one source. With one (SPEC E16: e.g. 200k web
    images + 10k app images), every source example is training data and ``target_shares`` says how
    many target examples go to train, dev and test. The train-dev slice (``shares['train_dev']``,
    SPEC E17) is then carved at random out of the whole training set and never trained on.

    Returns ``{part: {"source": idx, "target": idx}}``.
    """
    rng = np.random.default_rng(0 if seed is None else seed)  # also draws the train-dev slice
    # seed None keeps the source's order: train first, then dev, then test, as a data set that comes
    # with its own split (MNIST-1D's 4000 training and 1000 test examples) is stored.
    source_order = np.arange(n) if seed is None else rng.permutation(n)
    empty = np.empty(0, dtype=np.int64)
    if target_n:
        counts = split_counts(target_n, target_shares or {}, key="data.target_split")
        target_order = rng.permutation(target_n)
        cut_dev = counts["train"] + counts["dev"]
        parts = {
            "train": {"source": source_order, "target": target_order[: counts["train"]]},
            "dev": {"source": empty, "target": target_order[counts["train"] : cut_dev]},
            "test": {"source": empty, "target": target_order[cut_dev : cut_dev + counts["test"]]},
        }
    else:
        counts = split_counts(n, shares)
        cut_dev = counts["train"] + counts["dev"]
        parts = {
            "train": {"source": source_order[: counts["train"]], "target": empty},
            "dev": {"source": source_order[counts["train"] : cut_dev], "target": empty},
            "test": {"source": source_order[cut_dev : cut_dev + counts["test"]], "target": empty},
        }
    n_train_dev = carve_count(sum(len(i) for i in parts["train"].values()), float(shares.get("train_dev", 0) or 0))
    if n_train_dev:
        # Pick the slice uniformly from the combined training set, so that it has the training
        # distribution (mixing source and target in the same proportion).
        sizes = {origin: len(idx) for origin, idx in parts["train"].items()}
        chosen = np.zeros(sum(sizes.values()), dtype=bool)
        chosen[rng.choice(len(chosen), size=n_train_dev, replace=False)] = True
        keep, carve = {}, {}
        offset = 0
        for origin, idx in parts["train"].items():
            mask = chosen[offset : offset + len(idx)]
            keep[origin], carve[origin] = idx[~mask], idx[mask]
            offset += len(idx)
        parts["train"], parts["train_dev"] = keep, carve
    return parts


def normalizer(X_train: np.ndarray, per_channel: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and standard deviation of the training examples only (SPEC B9).

    ``per_channel``: one mean and sigma per channel of (C, ...) examples, the usual choice for
    images (shifted and flipped pixels keep their meaning). Features that are constant in the
    training set get sigma = 1, so they map to 0 instead of NaN.
    """
    if per_channel and X_train.ndim > 2:
        # Statistics over examples and positions: shape (C, 1, ...), broadcasting over positions.
        axes = (0, *range(2, X_train.ndim))
        mean, std = X_train.mean(axis=axes, keepdims=True)[0], X_train.std(axis=axes, keepdims=True)[0]
    else:
        mean, std = X_train.mean(axis=0), X_train.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    return mean.astype(np.float32), std.astype(np.float32)
