"""The pieces of coarse to fine's zoom: the round schedule, noise-robust ranking, the new region,
and proposals that never repeat a configuration already tried.

Everything here works in each parameter's search coordinate u (log10 alpha, log10(1 - beta), ...),
the coordinate the course samples in, so "near" means near on the scale that matters.
"""

from __future__ import annotations

import itertools
import math
import random

from dlrunner.search.space import Choice, IntUniform, Pow2

ENUMERATE_AT_MOST = 10_000  # a discrete region with more points than this is sampled, not listed


def default_rounds(budget: int) -> int:
    """Rounds for a budget: 2 for 12 trials, 3 for 25, 4 for 50, 5 for 100, 6 for 200, 7 for 500.

    More trials afford more zooms; each round still has enough trials (5 or more in the first) to
    say where the good region is."""
    return max(1, min(8, round(math.log2(max(budget, 2) / 4))))


def round_sizes(budget: int, rounds: int, growth: float) -> list[int]:
    """Split the budget into rounds, each ``growth`` times the one before (1.0: equal rounds).

    A small first round leaves most of the budget for zooming; every round has at least 1 trial."""
    rounds = max(1, min(rounds, budget))
    # The first round must say where the good region is: at least 5 trials (or an equal share, if
    # the budget is too small for that), growing less steeply when the rounds are many.
    first = min(5, budget // rounds)
    while growth > 1.0 and budget / sum(growth**r for r in range(rounds)) < first:
        growth = max(1.0, growth - 0.05)
    weights = [growth**r for r in range(rounds)]
    total = sum(weights)
    ends, running = [], 0.0
    for weight in weights:
        running += weight
        ends.append(round(budget * running / total))
    sizes = [b - a for a, b in zip([0, *ends], ends)]
    # Rounding may leave a round empty when the budget is small: take a trial from the largest.
    for i, size in enumerate(sizes):
        if size < 1:
            largest = max(range(rounds), key=lambda j: sizes[j])
            sizes[largest] -= 1 - size
            sizes[i] = 1
    return sizes


def normalised(space: dict, params: dict) -> list:
    """A configuration as coordinates in [0, 1] per numeric parameter (the value itself for a choice)."""
    point = []
    for name, param in space.items():
        if isinstance(param, Choice):
            point.append(params[name])
        else:
            lo, hi = param.u_bounds
            point.append((param.to_u(params[name]) - lo) / (hi - lo))
    return point


def _distance(a: list, b: list) -> float:
    total = 0.0
    for x, y in zip(a, b):
        if isinstance(x, float) and isinstance(y, float):
            total += (x - y) ** 2
        else:
            total += 0.0 if x == y else 1.0  # another choice counts as far as the whole range
    return math.sqrt(total)


def smoothed_losses(space: dict, trials: list, losses: list[float], neighbours: int) -> list[float]:
    """Each trial's loss averaged with its ``neighbours`` nearest trials (half weight in all).

    One training run's dev error carries noise (its seed, its data order); a point whose neighbours
    are good too is more likely good than a lone lucky one. ``neighbours=0`` ranks by the raw loss."""
    if neighbours <= 0 or len(trials) <= 1:
        return list(losses)
    points = [normalised(space, t.params) for t in trials]
    smoothed = []
    for i, point in enumerate(points):
        nearest = sorted((_distance(point, other), j) for j, other in enumerate(points) if j != i)[:neighbours]
        around = sum(losses[j] for _, j in nearest) / len(nearest)
        smoothed.append(0.5 * losses[i] + 0.5 * around)
    return smoothed


def region_around(space: dict, top: list, previous: dict, margin: float) -> dict:
    """The box around the ``top`` trials in search coordinates, widened by ``margin`` of its spread
    (and never narrower than ``margin`` x half the previous width, so one trial still has room
    around it), clipped to the original bounds; a choice keeps the values the top trials used."""
    region = {}
    for name, param in space.items():
        if isinstance(param, Choice):
            used = [t.params[name] for t in top]
            region[name] = [v for v in param.values if v in used]
            continue
        coords = [param.to_u(t.params[name]) for t in top]
        full_lo, full_hi = param.u_bounds
        low, high = min(coords), max(coords)
        width = previous[name][1] - previous[name][0]
        pad = max(margin * (high - low), margin * width / 2)
        region[name] = (max(full_lo, low - pad), min(full_hi, high + pad))
    return region


def stratified(space: dict, region: dict, count: int, rng: random.Random) -> list[dict]:
    """``count`` configurations of ``region`` as a Latin hypercube: each numeric range cut into
    ``count`` equal slices of its search coordinate, one point in each slice, the slices paired at
    random across parameters; each value of a choice used equally often (to within one).

    Independent draws clump and leave gaps: 8 of them miss one of 4 batch sizes 38% of the time,
    and a round of a few trials easily leaves a decade of the learning rate untried. Stratified,
    every round covers its whole region evenly, so the zoom that follows rests on a fair look at it."""
    columns = {}
    for name, param in space.items():
        slots = list(range(count))
        rng.shuffle(slots)
        if isinstance(param, Choice):
            values = list(region[name])
            columns[name] = [values[slot % len(values)] for slot in slots]
        else:
            lo, hi = region[name]
            columns[name] = [param.from_u(lo + (hi - lo) * (slot + rng.random()) / count) for slot in slots]
    return [{name: columns[name][i] for name in space} for i in range(count)]


def key(params: dict) -> tuple:
    """What makes two configurations the same: equal values (floats to 12 significant digits)."""
    return tuple((name, f"{v:.12g}" if isinstance(v, float) else repr(v)) for name, v in params.items())


def _values_in(param, region) -> list | None:
    """Every value a discrete parameter can take in its region, or None for a continuous one."""
    if isinstance(param, Choice):
        return list(region)
    if isinstance(param, (IntUniform, Pow2)):
        return list(dict.fromkeys(param.from_u(u) for u in _steps(param, region)))
    return None


def _steps(param, region):
    lo, hi = region
    # Whole numbers (or whole exponents) are at most 1 apart in u on a linear or pow2 scale; a log
    # integer scale is denser near its low end, so walk it finely.
    step = 0.5 if isinstance(param, Pow2) or not param.log else (hi - lo) / 2000 or 1.0
    u = lo
    while u < hi:
        yield u
        u += step
    yield hi


def untried_points(space: dict, region: dict, seen: set) -> list[dict] | None:
    """Every configuration of an all-discrete region not yet tried (None: not all discrete, or too many)."""
    axes = []
    for name, param in space.items():
        values = _values_in(param, region[name])
        if values is None:
            return None
        axes.append(values)
    if math.prod(len(a) for a in axes) > ENUMERATE_AT_MOST:
        return None
    points = (dict(zip(space, combo)) for combo in itertools.product(*axes))
    return [p for p in points if key(p) not in seen]


def propose(space: dict, region: dict, full: dict, rng: random.Random, seen: set) -> tuple[dict | None, bool]:
    """A configuration from ``region`` not in ``seen``; else one from the whole space (the bool says so).

    (None, True) when every configuration of an all-discrete space has been tried."""
    for source, where in ((False, region), (True, full)):
        for _ in range(30):
            params = {name: param.sample(rng, where[name]) for name, param in space.items()}
            if key(params) not in seen:
                return params, source
        # Sampling keeps hitting tried points: a small discrete region. List what is left of it.
        left = untried_points(space, where, seen)
        if left:
            return rng.choice(left), source
        if left is None and source:
            return params, source  # a huge or continuous space that kept colliding: practically never
    return None, True
