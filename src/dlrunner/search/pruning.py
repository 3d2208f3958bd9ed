"""Stopping bad trials early: asynchronous successive halving (ASHA), pure Python.

A trial reports its objective as it trains (e.g. the dev error at each evaluation). Rungs sit at
``min_steps``, ``min_steps * eta``, ``min_steps * eta**2``, ... below ``max_steps`` (eta is the
``reduction_factor``). The first report at or past a rung is the trial's score *at that rung*;
the trial goes on only if that score is among the best 1/eta of all scores recorded at the rung
so far (itself included), otherwise it is pruned. Until ``min_peers`` scores are at a rung, every
trial goes on (there is nothing yet to compare with).

A pruned trial's score is comparable only with other scores at its rung: it was stopped because
it ranked in the bottom (1 - 1/eta) there, so a search never picks it as best and ranks it below
every trial that went past that rung.

Decisions depend only on the sequence of reports, and the state (``to_dict``/``from_dict``) is
plain JSON, so a resumed sweep that reloads it (or replays the reports) decides the same.

>>> halving = SuccessiveHalving(max_steps=9, min_steps=1, reduction_factor=3, direction="minimize")
>>> halving.rungs
[1, 3]
>>> [halving.report(n, 1, error) for n, error in enumerate([0.5, 0.4, 0.9, 0.3])]
['continue', 'continue', 'prune', 'continue']
>>> halving.pruned
{2: 1}
"""

from __future__ import annotations

import math

CONTINUE, PRUNE = "continue", "prune"


class SuccessiveHalving:
    def __init__(
        self,
        max_steps: int,
        min_steps: int = 1,
        reduction_factor: int = 3,
        direction: str = "minimize",
        min_peers: int | None = None,
    ):
        for name, value, minimum in (
            ("max_steps", max_steps, 1),
            ("min_steps", min_steps, 1),
            ("reduction_factor", reduction_factor, 2),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise ValueError(f"{name}={value!r}: a whole number >= {minimum}")
        if min_steps >= max_steps:
            raise ValueError(f"min_steps={min_steps} must be below max_steps={max_steps}: no rung to prune at")
        if direction not in ("minimize", "maximize"):
            raise ValueError(f"direction={direction!r}: 'minimize' or 'maximize'")
        self.max_steps, self.min_steps, self.reduction_factor = max_steps, min_steps, reduction_factor
        self.direction = direction
        self.min_peers = reduction_factor if min_peers is None else int(min_peers)
        self.rungs = []
        step = min_steps
        while step < max_steps:
            self.rungs.append(step)
            step *= reduction_factor
        self.scores: dict[int, dict[str, float]] = {rung: {} for rung in self.rungs}  # rung -> trial -> score
        self.pruned: dict = {}  # trial -> the rung it was pruned at

    # ------------------------------------------------------------------ the hook

    def report(self, trial, step: int, value: float | None) -> str:
        """A trial's objective after ``step`` training steps: "continue" or "prune".

        Reports between rungs only matter at the next rung (the first report at or past it);
        a value that is None or not finite counts as the worst possible."""
        if trial in self.pruned:
            return PRUNE
        if step >= self.max_steps:
            return CONTINUE  # the trial has finished: stopping it now would save nothing
        for rung in self.rungs:
            if rung > step:
                break
            at_rung = self.scores[rung]
            if str(trial) in at_rung:
                continue
            at_rung[str(trial)] = self._loss(value)
            if not self._promotable(trial, rung):
                self.pruned[trial] = rung
                return PRUNE
        return CONTINUE

    def score_at(self, trial, rung: int) -> float | None:
        """The trial's objective at ``rung`` (in the objective's own sign), None if it never got there."""
        loss = self.scores.get(rung, {}).get(str(trial))
        if loss is None:
            return None
        return loss if self.direction == "minimize" else -loss

    def steps_saved(self, trial) -> int:
        """Training steps a pruned trial did not run (0 for a trial that was not pruned)."""
        return self.max_steps - self.pruned[trial] if trial in self.pruned else 0

    # ------------------------------------------------------------------ state

    def to_dict(self) -> dict:
        return {
            "max_steps": self.max_steps,
            "min_steps": self.min_steps,
            "reduction_factor": self.reduction_factor,
            "direction": self.direction,
            "min_peers": self.min_peers,
            "scores": {str(rung): dict(at) for rung, at in self.scores.items()},
            "pruned": [[trial, rung] for trial, rung in self.pruned.items()],
        }

    @classmethod
    def from_dict(cls, state: dict) -> SuccessiveHalving:
        halving = cls(
            state["max_steps"], state["min_steps"], state["reduction_factor"], state["direction"], state["min_peers"]
        )
        for rung, at in state["scores"].items():
            halving.scores[int(rung)] = {trial: float(loss) for trial, loss in at.items()}
        halving.pruned = dict(state["pruned"])  # [trial, rung] pairs: a trial keeps its type
        return halving

    # ------------------------------------------------------------------ internals

    def _loss(self, value) -> float:
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            return math.inf
        return float(value) if self.direction == "minimize" else -float(value)

    def _promotable(self, trial, rung: int) -> bool:
        at_rung = self.scores[rung]
        if len(at_rung) < self.min_peers:
            return math.isfinite(at_rung[str(trial)])
        keep = max(1, len(at_rung) // self.reduction_factor)
        mine = at_rung[str(trial)]
        # Ties go to the trial that got there first (a stable order, the same on every replay).
        better = sum(1 for other, loss in at_rung.items() if loss < mine and other != str(trial))
        return math.isfinite(mine) and better < keep


class SharedHalving:
    """Successive halving for trials in several processes (joblib workers, SLURM jobs, a stack).

    Every rung report is appended to a JSON-lines file under an exclusive lock; a decision
    replays the file into a fresh ``SuccessiveHalving`` first, so all processes decide on the same
    history, in the order the reports reached the file, and a resumed sweep (same file) decides
    the same again: a report already in the file returns the decision it got then.
    """

    def __init__(self, path, **settings):
        from pathlib import Path

        self.path = Path(path)
        self.settings = settings
        SuccessiveHalving(**settings)  # refuse bad settings now, not at the first report

    def report(self, trial, step: int, value: float | None) -> str:
        import fcntl
        import json

        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                handle.seek(0)
                halving = self.replay(handle.read().splitlines())
                decision = halving.report(trial, step, value)
                handle.write(json.dumps({"trial": trial, "step": step, "value": value}) + "\n")
                handle.flush()
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
        return decision

    def replay(self, lines: list[str]) -> SuccessiveHalving:
        import json

        halving = SuccessiveHalving(**self.settings)
        for line in lines:
            try:
                record = json.loads(line)
            except ValueError:
                continue  # a line cut short by a killed process: that report is made again
            halving.report(record["trial"], record["step"], record["value"])
        return halving
