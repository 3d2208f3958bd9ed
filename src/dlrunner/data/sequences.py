"""Sequence datasets for the recurrent models (SPEC G): each builder returns ``(X, y)`` as numpy
arrays, examples first, with X of shape (examples, T, features).

Config files name them like the other sources:
``source: {_target_: dlrunner.data.sequences.adding_problem, length: 100}``.
"""

from __future__ import annotations

import numpy as np

from dlrunner.errors import ConfigError, Problem

Arrays = tuple[np.ndarray, np.ndarray]


def adding_problem(num_samples: int = 6000, length: int = 50, seed: int = 0) -> Arrays:
    """The adding problem (Hochreiter & Schmidhuber 1997; Le, Jaitly & Hinton 2015).

    Each example is a sequence of ``length`` steps with two numbers per step:
    channel 0 holds values drawn uniformly from [0, 1); channel 1 is a marker that is 1 at exactly
    two steps (one in the first half, one in the second half) and 0 elsewhere. The target is the sum
    of the two marked values, so it lies in [0, 2).

    It is a regression task that only a model carrying information across the whole sequence can
    solve: the first marked value must be remembered for up to ``length`` steps, which is exactly
    where a vanilla RNN's vanishing gradients hurt and GRU/LSTM gates help (SPEC G). Predicting the
    constant 1 gives MSE = Var(u1 + u2) = 2/12 = 1/6 ~ 0.167, the baseline a model must beat.

    Returns:
        X: float32, shape (num_samples, length, 2); y: float32, shape (num_samples,).
        Deterministic for a given ``seed`` (numpy ``default_rng``).
    """
    problems = []
    if isinstance(num_samples, bool) or not isinstance(num_samples, (int, np.integer)) or num_samples < 1:
        problems.append(Problem("data.source.num_samples", num_samples, "a whole number >= 1"))
    if isinstance(length, bool) or not isinstance(length, (int, np.integer)) or length < 2:
        problems.append(
            Problem("data.source.length", length, "a whole number >= 2 (one marker in each half of the sequence)")
        )
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        problems.append(Problem("data.source.seed", seed, "a whole number >= 0"))
    if problems:
        raise ConfigError(problems)

    rng = np.random.default_rng(seed)
    n, half = int(num_samples), int(length) // 2
    values = rng.random((n, length))
    first = rng.integers(0, half, size=n)  # a step in the first half
    second = rng.integers(half, length, size=n)  # a step in the second half
    rows = np.arange(n)
    markers = np.zeros((n, length))
    markers[rows, first] = 1.0
    markers[rows, second] = 1.0
    X = np.stack([values, markers], axis=-1).astype(np.float32)
    y = (values[rows, first] + values[rows, second]).astype(np.float32)
    return X, y
