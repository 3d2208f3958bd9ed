"""A coarse-to-fine sweep whose budget was raised after it started, as Optuna lets a study go on.

A coarse-to-fine search spreads its budget over its rounds, so a larger budget would change the
trials already run. Instead the sweep keeps the search it started with (its budget is in
sweep.json) and adds the new trials after it: one more round of random search, in the region a
next round would zoom to (around the best trials so far), numbered on from the first search's
trials. The added trials depend only on the
seed and their index, so raising the budget again adds to them, and resuming runs none twice.
Only the search's public API is used (ask, tell, trials, regions, best).
"""

from __future__ import annotations

from dataclasses import replace

from dlrunner.search import Choice, CoarseToFine, Trial


class Continued:
    def __init__(self, first: CoarseToFine, extra_budget: int):
        self.first = first
        self.extra_budget = extra_budget
        self.extra: CoarseToFine | None = None
        self.space = first.space

    @property
    def done(self) -> bool:
        return self.first.done and self.extra is not None and self.extra.done

    @property
    def _offset(self) -> int:
        return len(self.first.trials)

    def ask(self) -> list[Trial]:
        if not self.first.done:
            return self.first.ask()
        if self.extra is None:
            self.extra = CoarseToFine(
                self._next_region(),
                budget=self.extra_budget,
                rounds=1,
                method="random",
                seed=self.first.seed + 1,  # not the first round's points again
                direction=self.first.direction,
            )
        return [self._shifted(trial) for trial in self.extra.ask()]

    def tell(
        self, number: int, value, status: str = "completed", eligible: bool | None = None, step: int | None = None
    ) -> None:
        if number < self._offset:
            self.first.tell(number, value, status, eligible, step)
        else:
            self.extra.tell(number - self._offset, value, status, eligible, step)

    @property
    def trials(self) -> list[Trial]:
        return self.first.trials + [self._shifted(t) for t in (self.extra.trials if self.extra else [])]

    @property
    def regions(self) -> list[dict]:
        return self.first.regions + (self.extra.regions if self.extra else [])

    def best(self, k: int = 1) -> list[Trial]:
        eligible = [t for t in self.trials if t.eligible]
        return sorted(eligible, key=lambda t: t.value if self.first.direction == "minimize" else -t.value)[:k]

    def _shifted(self, trial: Trial) -> Trial:
        return replace(trial, number=trial.number + self._offset, round=trial.round + len(self.first.regions))

    def _next_region(self) -> dict:
        """The space narrowed to the region a next round would search, around the best trials of the
        whole first search (a range that closed on one value is that value)."""
        region = self.first.next_region()
        space = {}
        for name, param in self.first.space.items():
            if isinstance(param, Choice):
                space[name] = Choice(region[name])
            elif region[name][0] < region[name][1]:
                space[name] = replace(param, lo=region[name][0], hi=region[name][1])
            else:
                space[name] = Choice([region[name][0]])
        return space
