"""Random search in the right scale, coarse to fine (SPEC D2-D4), with an ask/tell interface.

The budget is spread over ``rounds``. Round 1 samples the whole space. After each round the
numeric ranges shrink around the ``top_k`` best eligible trials so far, in each parameter's own
search coordinate (log10 alpha, log10(1 - beta), ...), widened by ``margin`` of their spread and
never beyond the original bounds; a categorical parameter keeps the values the top trials used.
``rounds=1`` is plain random search; ``method="grid"`` is a grid over the same space
(``grid_points`` per numeric parameter, evenly spaced in its search coordinate).

Deterministic: a trial's parameters depend only on the seed, its round's region and its index.
"""

from __future__ import annotations

import itertools
import math
import random
from dataclasses import dataclass, field

from dlrunner.search.space import Choice

METHODS = ("coarse_to_fine", "random", "grid")


@dataclass
class Trial:
    number: int  # 0, 1, 2, ... across the whole search
    round: int  # 1-based
    params: dict
    value: float | None = None
    status: str = "pending"  # pending | completed | failed | diverged | ...
    eligible: bool = False  # completed, finite and within the satisficing constraints


@dataclass
class CoarseToFine:
    space: dict  # name -> Param or Choice
    budget: int = 20
    rounds: int = 3
    top_k: int = 3
    margin: float = 0.25
    seed: int = 0
    method: str = "coarse_to_fine"
    grid_points: int = 3
    minimize: bool = True
    trials: list = field(default_factory=list)
    # one per round: name -> [lo, hi] in the parameter's values, or its choices
    regions: list = field(default_factory=list)

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f"method {self.method!r}: one of {list(METHODS)}")
        if not self.space:
            raise ValueError("the search space is empty: give at least one parameter")
        if self.budget < 1 or self.rounds < 1 or self.top_k < 1:
            raise ValueError("budget, rounds and top_k must be >= 1")
        if self.method == "random":
            self.rounds = 1
        if self.method == "grid":
            self.rounds = 1
            self._grid = list(itertools.product(*(self._axis(name) for name in self.space)))
            if self.budget < len(self._grid):
                # A budget smaller than the grid takes a seeded random subset of its points, not
                # the first ones in order (which would only ever vary the last parameter).
                random.Random(self.seed).shuffle(self._grid)
            self.budget = min(self.budget, len(self._grid))
        self._region = {name: self._full(name) for name in self.space}

    # ------------------------------------------------------------------ ask / tell

    @property
    def round(self) -> int:
        """The round the next ask() belongs to (1-based)."""
        return len(self.regions) + 1

    @property
    def done(self) -> bool:
        return len(self.trials) >= self.budget or self.round > self.rounds

    def round_size(self, round_number: int) -> int:
        base = self.budget // self.rounds
        return base + (1 if round_number <= self.budget % self.rounds else 0)

    def ask(self) -> list[Trial]:
        """The next round's trials. Call tell() for all of them before asking again."""
        if self.done:
            return []
        pending = [t for t in self.trials if t.status == "pending"]
        if pending:
            raise RuntimeError(f"tell the results of trials {[t.number for t in pending]} before asking again")
        round_number = self.round
        if round_number > 1:
            self._region = self._narrowed()
        self.regions.append({name: self._describe(name) for name in self.space})
        start = len(self.trials)
        size = self.budget if self.method == "grid" else min(self.round_size(round_number), self.budget - start)
        new = [Trial(start + i, round_number, self._params(start + i)) for i in range(size)]
        self.trials += new
        return new

    def tell(self, number: int, value: float | None, status: str = "completed", eligible: bool | None = None) -> None:
        trial = self.trials[number]
        trial.value, trial.status = value, status
        finite = value is not None and math.isfinite(value)
        trial.eligible = (
            (status == "completed" and finite) if eligible is None else (eligible and status == "completed" and finite)
        )

    def best(self, k: int = 1) -> list[Trial]:
        eligible = [t for t in self.trials if t.eligible]
        return sorted(eligible, key=lambda t: t.value if self.minimize else -t.value)[:k]

    # ------------------------------------------------------------------ internals

    def _params(self, number: int) -> dict:
        if self.method == "grid":
            return dict(zip(self.space, self._grid[number]))
        rng = random.Random(f"{self.seed}/{number}")  # per trial: the same trial, whatever ran before
        params = {}
        for name, param in self.space.items():
            params[name] = param.sample(rng, self._region[name])
        return params

    def _axis(self, name):
        param = self.space[name]
        return param.grid(self.grid_points) if not isinstance(param, Choice) else param.grid()

    def _full(self, name):
        param = self.space[name]
        return list(param.values) if isinstance(param, Choice) else param.u_bounds

    def _describe(self, name):
        param, region = self.space[name], self._region[name]
        if isinstance(param, Choice):
            return list(region)
        ends = sorted([param.from_u(region[0]), param.from_u(region[1])])
        return [ends[0], ends[1]]

    def _narrowed(self) -> dict:
        top = self.best(self.top_k)
        if not top:
            return self._region  # nothing to zoom in on: sample the same region again
        region = {}
        for name, param in self.space.items():
            if isinstance(param, Choice):
                used = [t.params[name] for t in top]
                region[name] = [v for v in param.values if v in used]
                continue
            coords = [param.to_u(t.params[name]) for t in top]
            full_lo, full_hi = param.u_bounds
            low, high = min(coords), max(coords)
            # Widen by margin x spread, and never below margin x the previous width, so that a
            # single best trial still leaves room around it.
            previous = self._region[name][1] - self._region[name][0]
            pad = max(self.margin * (high - low), self.margin * previous / 2)
            region[name] = (max(full_lo, low - pad), min(full_hi, high + pad))
        return region
