"""Parameter distributions, each with the scale the course samples it on (SPEC D4).

Every numeric parameter maps its values to a *search coordinate* u in which it is sampled
uniformly and in which coarse-to-fine narrows its range:

    Uniform             u = x                  n[l] in [50, 100], keep_prob, ...
    LogUniform          u = log10(x)           alpha in [1e-4, 1]: r = -4 rand, alpha = 10^r
    OneMinusLogUniform  u = log10(1 - x)       beta in [0.9, 0.999]: r in [-3, -1], beta = 1 - 10^r
    IntUniform          u = x (or log10 x)     layers in {2, 3, 4}; rounded to whole numbers
    Pow2                u = log2(x)            batch sizes 32 .. 512, widths: whole powers of two
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


class Param:
    """A numeric parameter: a value range, and the coordinate it is searched in."""

    lo: float
    hi: float
    kind = "param"

    def __post_init__(self):
        if not (isinstance(self.lo, (int, float)) and isinstance(self.hi, (int, float))):
            raise ValueError(f"{self.kind}: bounds must be numbers, got {self.lo!r}, {self.hi!r}")
        if not self.lo < self.hi:
            raise ValueError(f"{self.kind}({self.lo}, {self.hi}): the lower bound must be below the upper bound")

    def to_u(self, x: float) -> float:
        return float(x)

    def from_u(self, u: float) -> Any:
        return u

    @property
    def u_bounds(self) -> tuple[float, float]:
        a, b = self.to_u(self.lo), self.to_u(self.hi)
        return (min(a, b), max(a, b))

    def sample(self, rng: random.Random, u_range: tuple[float, float] | None = None) -> Any:
        lo, hi = u_range or self.u_bounds
        return self.from_u(rng.uniform(lo, hi))

    def grid(self, points: int, u_range: tuple[float, float] | None = None) -> list:
        lo, hi = u_range or self.u_bounds
        if points == 1:
            return [self.from_u((lo + hi) / 2)]
        values = [_tidy(self.from_u(lo + (hi - lo) * i / (points - 1))) for i in range(points)]
        return list(dict.fromkeys(values))  # whole-number parameters may repeat: keep each once


def _tidy(value):
    """0.8000000000000002 -> 0.8: grid points read as the user would write them."""
    return float(f"{value:.12g}") if isinstance(value, float) else value


@dataclass
class Uniform(Param):
    lo: float
    hi: float
    kind = "uniform"


@dataclass
class LogUniform(Param):
    lo: float
    hi: float
    kind = "loguniform"

    def __post_init__(self):
        super().__post_init__()
        if self.lo <= 0:
            raise ValueError(f"loguniform({self.lo}, {self.hi}): a log scale needs bounds > 0")

    def to_u(self, x):
        return math.log10(x)

    def from_u(self, u):
        return 10.0**u


@dataclass
class OneMinusLogUniform(Param):
    """beta = 1 - 10^r with r uniform: as many samples in [0.9, 0.99] as in [0.99, 0.999]."""

    lo: float
    hi: float
    kind = "one_minus_log"

    def __post_init__(self):
        super().__post_init__()
        if not (self.lo >= 0 and self.hi < 1):
            raise ValueError(f"one_minus_log({self.lo}, {self.hi}): bounds must lie in [0, 1)")

    def to_u(self, x):
        return math.log10(1.0 - x)

    def from_u(self, u):
        return 1.0 - 10.0**u


@dataclass
class IntUniform(Param):
    lo: int
    hi: int
    log: bool = False
    kind = "int"

    def __post_init__(self):
        super().__post_init__()
        if self.log and self.lo <= 0:
            raise ValueError(f"int log({self.lo}, {self.hi}): a log scale needs bounds > 0")

    def to_u(self, x):
        return math.log10(x) if self.log else float(x)

    def from_u(self, u):
        # On a linear scale u spans [lo - 0.5, hi + 0.5], so rounding keeps the end values as likely as the rest.
        value = 10.0**u if self.log else u
        return int(min(self.hi, max(self.lo, round(value))))

    @property
    def u_bounds(self):
        if self.log:
            return (math.log10(self.lo), math.log10(self.hi))
        return (self.lo - 0.5 + 1e-9, self.hi + 0.5 - 1e-9)


@dataclass
class Pow2(Param):
    """Whole powers of two between lo and hi (both powers of two), uniform in the exponent."""

    lo: int
    hi: int
    kind = "pow2"

    def __post_init__(self):
        super().__post_init__()
        for bound in (self.lo, self.hi):
            if bound < 1 or bound & (bound - 1):
                raise ValueError(f"pow2({self.lo}, {self.hi}): bounds must be powers of two (1, 2, 4, ...)")

    def to_u(self, x):
        return math.log2(x)

    def from_u(self, u):
        lo, hi = int(math.log2(self.lo)), int(math.log2(self.hi))
        return 2 ** int(min(hi, max(lo, round(u))))

    @property
    def u_bounds(self):
        return (math.log2(self.lo) - 0.5 + 1e-9, math.log2(self.hi) + 0.5 - 1e-9)


@dataclass
class Choice:
    """A categorical parameter: one of ``values``, each equally likely."""

    values: Sequence[Any]
    kind = "choice"

    def __post_init__(self):
        self.values = list(self.values)
        if not self.values:
            raise ValueError("choice(): needs at least one value")

    def sample(self, rng: random.Random, allowed: Sequence[Any] | None = None) -> Any:
        return rng.choice(list(allowed or self.values))

    def grid(self, points: int = 0, allowed: Sequence[Any] | None = None) -> list:
        return list(allowed or self.values)
