"""Hyperparameter search, pure Python: no torch, no Hydra, so it can be tested and benchmarked alone.

Ask a round of trials, train each, tell its result; the next round zooms in (coarse to fine):

>>> import math
>>> from dlrunner.search import CoarseToFine, LogUniform, OneMinusLogUniform, Pow2
>>> def train_and_measure(params):  # stands for a training run; its dev error is best at lr = 1e-2
...     return 0.1 + (math.log10(params["optimizer.lr"]) + 2) ** 2 / 10
>>> search = CoarseToFine(
...     {"optimizer.lr": LogUniform(1e-4, 1), "optimizer.beta1": OneMinusLogUniform(0.9, 0.999),
...      "trainer.batch_size": Pow2(32, 512)},
...     budget=30, seed=0, direction="minimize",   # say "maximize" for an accuracy
... )
>>> while not search.done:
...     for trial in search.ask():                 # one round's trials, deterministic for the seed
...         search.tell(trial.number, train_and_measure(trial.params))  # or status="failed" / "pruned"
>>> best = search.best()[0]
>>> len(search.trials), len(search.regions), 3e-3 < best.params["optimizer.lr"] < 3e-2
(30, 3, True)
>>> search.regions[0]["optimizer.lr"], search.regions[-1]["optimizer.lr"][1] < 1
([0.0001, 1.0], True)

``search.plans`` says, per round, how many trials explored the whole space and which trials the
region was drawn around; ``dlrunner.search.pruning`` stops bad trials early (successive halving).
"""

from dlrunner.search.coarse_to_fine import DIRECTIONS, CoarseToFine, Trial
from dlrunner.search.pruning import SuccessiveHalving
from dlrunner.search.space import Choice, IntUniform, LogUniform, OneMinusLogUniform, Param, Pow2, Uniform

__all__ = [
    "DIRECTIONS",
    "Choice",
    "CoarseToFine",
    "IntUniform",
    "LogUniform",
    "OneMinusLogUniform",
    "Param",
    "Pow2",
    "SuccessiveHalving",
    "Trial",
    "Uniform",
]
