"""Learning-rate schedules (SPEC C8). Each builder returns ``factor(epoch, step, total_steps)``,
the multiplier of the base learning rate lr0, which the trainer applies before every step.
Epochs count from 1, as in the course's table:
lr0 = 0.2, decay_rate = 1 gives 0.1, 0.0667, 0.05, 0.04 in epochs 1, 2, 3, 4.
"""

from __future__ import annotations

import math
from collections.abc import Callable

Schedule = Callable[[int, int, int], float]


def constant() -> Schedule:
    """lr = lr0 throughout."""
    return lambda epoch, step, total_steps: 1.0


def inverse_time(decay_rate: float = 1.0) -> Schedule:
    """lr = lr0 / (1 + decay_rate * epoch)."""
    return lambda epoch, step, total_steps: 1.0 / (1.0 + decay_rate * epoch)


def exponential(base: float = 0.95) -> Schedule:
    """lr = base^epoch * lr0."""
    return lambda epoch, step, total_steps: base**epoch


def inverse_sqrt(k: float = 1.0) -> Schedule:
    """lr = k / sqrt(epoch) * lr0."""
    return lambda epoch, step, total_steps: k / math.sqrt(epoch)


def staircase(factor: float = 0.5, every_epochs: int = 10) -> Schedule:
    """lr = lr0 * factor^floor((epoch - 1) / every_epochs): a discrete step every few epochs."""
    return lambda epoch, step, total_steps: factor ** ((epoch - 1) // every_epochs)


def cosine(warmup_steps: int = 0, min_factor: float = 0.0) -> Schedule:
    """Linear warm-up over ``warmup_steps`` steps, then cosine decay to ``min_factor`` at the last step."""

    def factor(epoch: int, step: int, total_steps: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return min_factor + (1 - min_factor) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return factor
