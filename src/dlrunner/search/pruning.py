"""Stopping bad trials early: asynchronous successive halving (ASHA), pure Python.

A trial reports its objective as it trains (e.g. the dev error at each evaluation). Rungs sit at
``min_steps``, ``min_steps * eta``, ``min_steps * eta**2``, ... below ``max_steps`` (eta is the
``reduction_factor``). The first report at or past a rung is the trial's score *at that rung*;
the trial goes on only if that score is among the best 1/eta of all scores recorded at the rung
so far (itself included), otherwise it is pruned. Until ``min_peers`` scores are at a rung, every
trial goes on (there is nothing yet to compare with). Reports that arrive together (a stack's
trials, evaluated at the same step) are all recorded at the rung before any of them is judged.

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
        a value that is None or not finite counts as the worst possible. A report at or past
        ``max_steps`` never prunes: the trial has finished, stopping it would save nothing."""
        return self.report_together([(trial, step, value)])[0]

    def report_together(self, reports: list[tuple]) -> list[str]:
        """``report`` for (trial, step, value) reports that arrive at once (a stack's trials,
        evaluated together): at each rung every new score is recorded before any is judged, so each
        trial is ranked against all of them, not only against those listed before it (one by one,
        the first ``min_peers`` of a fresh rung would go on whatever their scores)."""
        decisions = [PRUNE if trial in self.pruned else CONTINUE for trial, _, _ in reports]
        for rung in self.rungs:
            at_rung = self.scores[rung]
            new = [
                (index, trial)
                for index, (trial, step, _) in enumerate(reports)
                if decisions[index] == CONTINUE and rung <= step < self.max_steps and str(trial) not in at_rung
            ]
            for index, trial in new:
                at_rung[str(trial)] = self._loss(reports[index][2])
            for index, trial in new:
                if not self._promotable(trial, rung):
                    self.pruned[trial] = rung
                    decisions[index] = PRUNE
        return decisions

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
        # Only strictly better scores count against a trial: trials tied at the cut all go on.
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
        self.last = SuccessiveHalving(**settings)  # refuses bad settings now, not at the first report

    def report(self, trial, step: int, value: float | None) -> str:
        return self.report_together([(trial, step, value)])[0]

    def report_together(self, reports: list[tuple]) -> list[str]:
        """``SuccessiveHalving.report_together`` on the shared history; the reports that add a
        score are written as one line, so a replay judges them together again."""
        import fcntl
        import json

        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                handle.seek(0)
                halving = self.replay(handle.read().splitlines())
                before = {rung: set(at) for rung, at in halving.scores.items()}
                decisions = halving.report_together(reports)
                self.last = halving  # the rungs these decisions were made on
                # only a new score is history: a resumed trial's first report after a rung it had
                # already reached (before it was stopped) decides nothing and is not written
                scored = {trial for rung, at in halving.scores.items() for trial in set(at) - before[rung]}
                new = [{"trial": t, "step": s, "value": v} for t, s, v in reports if str(t) in scored]
                if new:
                    line = new[0] if len(new) == 1 else {"together": new}
                    handle.write(json.dumps(line) + "\n")
                    handle.flush()
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
        return decisions

    def replay(self, lines: list[str]) -> SuccessiveHalving:
        import json

        halving = SuccessiveHalving(**self.settings)
        for line in lines:
            try:
                record = json.loads(line)
            except ValueError:
                continue  # a line cut short by a killed process: that report is made again
            together = record.get("together", [record])
            halving.report_together([(r["trial"], r["step"], r["value"]) for r in together])
        return halving


# ---------------------------------------------------------------------- a sweep trial's side
#
# A sweep with ``hydra.sweeper.pruner=halving`` gives every trial, through ``hydra.job.env_set``,
# its number (TRIAL_ENV) and the sweep's rung file and settings (PRUNING_ENV, JSON). dlrun's
# training loop builds a ``TrialPruner`` from them; any other Hydra app calls ``report``.

PRUNING_ENV = "DLRUN_PRUNING"
TRIAL_ENV = "DLRUN_SWEEP_TRIAL"  # set by the sweeper for every trial (dlrunner.loggers.SWEEP_ENV)
PRUNED_FILE = "pruned.jsonl"


def default_min_steps(max_steps: int, reduction_factor: int, eval_every: int = 1) -> int:
    """The first rung when none is given: 1/eta**2 of the training (two rungs), rounded up to a
    whole number of evaluations, since a trial is only judged when it is evaluated. Rounded up
    from the start: 500 steps with eta = 3 give rungs at 56 and 168, not at 55, 165 and 495
    (a third rung at 99% of the training, which saves nothing)."""
    every = max(1, int(eval_every))
    ninth = math.ceil(max_steps / reduction_factor**2)
    return max(every, math.ceil(ninth / every) * every)


class TrialPruner:
    """One trial of a sweep reporting to the sweep's shared successive halving.

    Only the first report at or past each rung is written (the others cannot change a decision),
    and none at or past ``max_steps`` (a finished trial is never pruned), so the rung file does
    not depend on each trial's length. A pruned trial also appends where and why to
    ``pruned.jsonl`` beside it, which the sweep reads (``read_pruned``)."""

    def __init__(
        self, trial: int, path, max_steps: int, min_steps=None, reduction_factor: int = 3, direction="minimize"
    ):
        if min_steps is None:
            min_steps = default_min_steps(max_steps, reduction_factor)
        self.trial = int(trial)
        self.max_steps = max_steps
        self.shared = SharedHalving(
            path, max_steps=max_steps, min_steps=min_steps, reduction_factor=reduction_factor, direction=direction
        )
        self.rungs = SuccessiveHalving(**self.shared.settings).rungs
        self.reduction_factor = reduction_factor
        self.reported = 0  # rungs reported so far
        self.pruned_at: dict | None = None  # {"step", "value", "rung", "peers"} once pruned

    def report(self, step: int, value: float | None) -> bool:
        """The objective after ``step`` steps; True when the trial is to stop (pruned)."""
        return report_together([(self, step, value)])[0]

    def reaches_a_rung(self, step: int) -> bool:
        """Whether a report after ``step`` steps is judged: the first at or past a rung not yet reported."""
        if self.pruned_at is not None or step >= self.max_steps or self.reported >= len(self.rungs):
            return False
        return step >= self.rungs[self.reported]

    def _decided(self, step: int, value, decision: str, halving: SuccessiveHalving) -> bool:
        self.reported = sum(1 for rung in self.rungs if rung <= step)
        if decision == CONTINUE:
            return False
        rung = halving.pruned.get(self.trial, step)
        self.pruned_at = {"step": step, "value": value, "rung": rung, "peers": len(halving.scores.get(rung, {}))}
        import json

        with open(self.record_path, "a") as handle:  # one short line: appended whole
            handle.write(json.dumps({"trial": self.trial, **self.pruned_at}) + "\n")
        return True

    @property
    def record_path(self):
        """Which trials were pruned where, for the sweep (``read_pruned``): beside the rung file."""
        return self.shared.path.with_name(PRUNED_FILE)

    def explain(self, what: str = "objective") -> str:
        """The line a pruned trial prints: where it stopped and why."""
        p = self.pruned_at or {}
        value = f"{p['value']:.4g}" if isinstance(p.get("value"), (int, float)) else str(p.get("value"))
        return (
            f"pruned at step {p.get('step')}: {what} {value} not in the best 1/{self.reduction_factor} "
            f"of the {p.get('peers')} trials at this rung (step {p.get('rung')})"
        )


def report_together(reports: list[tuple[TrialPruner, int, float | None]]) -> list[bool]:
    """``TrialPruner.report`` for trials of one sweep evaluated at once (a stack's rows, which reach
    a rung at the same step, unless they joined the stack later): judged together
    (``SuccessiveHalving.report_together``), so the order of the rows decides nothing. True where a
    trial is to stop."""
    judged = [(pruner, step, value) for pruner, step, value in reports if pruner.reaches_a_rung(step)]
    if judged:
        shared = judged[0][0].shared  # the sweep's one rung file
        decisions = shared.report_together([(pruner.trial, step, value) for pruner, step, value in judged])
        for (pruner, step, value), decision in zip(judged, decisions):
            pruner._decided(step, value, decision, shared.last)
    return [pruner.pruned_at is not None for pruner, _, _ in reports]


def trial_pruner(environ, max_steps: int, eval_every: int = 1) -> TrialPruner | None:
    """The pruner of a sweep trial, from its environment (``os.environ``, or a stacked trial's
    ``hydra.job.env_set``); None outside a sweep that prunes. Raises ValueError for settings that
    leave no rung below ``max_steps``."""
    import json

    text = environ.get(PRUNING_ENV)
    trial = environ.get(TRIAL_ENV)
    if not text or trial is None:
        return None
    settings = json.loads(str(text))
    factor = int(settings.get("reduction_factor", 3))
    min_steps = settings.get("min_steps")
    if min_steps is None:
        min_steps = default_min_steps(max_steps, factor, eval_every)
    return TrialPruner(
        int(trial), settings["path"], max_steps, min_steps, factor, settings.get("direction", "minimize")
    )


def read_pruned(path) -> dict[int, dict]:
    """The trials pruned in a sweep, from the record its trials keep beside the rung file
    (``TrialPruner.record_path``): trial -> {"step", "value", "rung", "peers"}."""
    import json
    from pathlib import Path

    pruned = {}
    path = Path(path)
    for line in path.read_text().splitlines() if path.is_file() else []:
        try:
            record = json.loads(line)
        except ValueError:
            continue  # cut short by a kill: the trial writes it again when it is rerun
        pruned.setdefault(int(record["trial"]), record)
    return pruned


_pruners: dict = {}


def report(step: int, value: float | None, max_steps: int) -> bool:
    """For a Hydra app swept with ``hydra.sweeper.pruner=halving``: report the trial's objective
    after ``step`` of its ``max_steps`` training steps; True means the trial is pruned and should
    stop (and return its result as usual: the sweep records it as pruned). Outside such a sweep
    it always returns False.

    >>> report(10, 0.5, max_steps=100)  # not in a sweep
    False
    """
    import os

    key = (os.environ.get(PRUNING_ENV), os.environ.get(TRIAL_ENV), max_steps)
    if key not in _pruners:
        _pruners.clear()  # a new trial in this process
        _pruners[key] = trial_pruner(os.environ, max_steps)
    pruner = _pruners[key]
    return pruner is not None and pruner.report(step, value)
