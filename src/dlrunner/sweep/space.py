"""From Hydra's override grammar to the search component's distributions.

interval(lo, hi)                      Uniform
tag(log, interval(lo, hi))            LogUniform            (alpha, lambda)
tag(one_minus_log, interval(lo, hi))  OneMinusLogUniform    (beta: 1 - beta on a log scale)
int(interval(lo, hi))                 IntUniform            (tag(log, ...) for a log scale)
tag(pow2, int(interval(lo, hi)))      Pow2                  (batch sizes, widths)
a,b,c  choice(a,b,c)  range(a,b)      Choice                (grid points under method=grid)
"""

from __future__ import annotations

from dlrunner.errors import ConfigError, Problem
from dlrunner.search import Choice, IntUniform, LogUniform, OneMinusLogUniform, Pow2, Uniform

TAGS = {"log", "one_minus_log", "pow2"}


def parse_space(params: dict[str, str], arguments: list[str], parser) -> tuple[dict, list[tuple[str, str | None]]]:
    """Split ``hydra.sweeper.params`` plus the command line into a search space and a template.

    The template keeps every override in the order given (Hydra applies overrides in order, and its
    basic sweeper keeps it): ``(key, override)`` for a fixed override, written as the user wrote it,
    and ``(key, None)`` where a trial's sampled value goes. A command-line override of a key in
    ``hydra.sweeper.params`` replaces it in place. An empty space is allowed: the sweep is then the
    one job, as with Hydra's basic sweeper."""
    from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, RangeSweep, Transformer

    texts = [f"{key}={value}" for key, value in params.items()] + list(arguments)
    space, template, problems = {}, {}, []
    for override in parser.parse_overrides(texts):
        key = override.get_key_element()
        template.pop(key, None)  # a later override of the same key replaces the earlier one
        if not override.is_sweep_override():
            space.pop(key, None)
            template[key] = override.input_line
            continue
        value = override.value()
        try:
            if isinstance(value, (ChoiceSweep, RangeSweep)):
                space[key] = Choice(list(override.sweep_iterator(transformer=Transformer.encode)))
            elif isinstance(value, IntervalSweep):
                space[key] = _interval(value)
            else:
                problems.append(Problem(key, override.input_line, "not a distribution dlrunner can sample"))
                continue
            template[key] = None
        except ValueError as err:
            problems.append(Problem(key, override.input_line.split("=", 1)[-1], str(err)))
    if problems:
        raise ConfigError(problems)
    return space, list(template.items())


def fill(template: list[tuple[str, str | None]], params: dict) -> list[str]:
    """One trial's override list: the template with the trial's values in their places."""
    return [override if override is not None else as_override(key, params[key]) for key, override in template]


def _interval(value):
    unknown = set(value.tags) - TAGS
    if unknown:
        raise ValueError(f"unknown tag {sorted(unknown)}; tags: {sorted(TAGS)}")
    whole = isinstance(value.start, int) and isinstance(value.end, int)
    if "pow2" in value.tags:
        return Pow2(int(value.start), int(value.end))
    if "one_minus_log" in value.tags:
        return OneMinusLogUniform(value.start, value.end)
    if whole:
        return IntUniform(value.start, value.end, log="log" in value.tags)
    if "log" in value.tags:
        return LogUniform(value.start, value.end)
    return Uniform(value.start, value.end)


def as_override(key: str, value) -> str:
    """A sampled value as a Hydra override (choices are already override strings)."""
    if isinstance(value, float):
        return f"{key}={value!r}"
    return f"{key}={value}"
