"""Hyperparameter search, pure Python: no torch, no Hydra, so it can be tested and benchmarked alone.

from dlrunner.search import CoarseToFine, LogUniform, OneMinusLogUniform, Pow2

search = CoarseToFine(
    {"optimizer.lr": LogUniform(1e-4, 1), "optimizer.beta1": OneMinusLogUniform(0.9, 0.999),
     "optimizer.batch_size": Pow2(32, 512)},
    budget=30, rounds=3, top_k=3, seed=0,
)
while not search.done:
    for trial in search.ask():                 # one round's trials, deterministic for the seed
        value = train_and_measure(trial.params)
        search.tell(trial.number, value)       # or status="failed" / eligible=False
print(search.best(), search.regions)
"""

from dlrunner.search.coarse_to_fine import CoarseToFine, Trial
from dlrunner.search.space import Choice, IntUniform, LogUniform, OneMinusLogUniform, Param, Pow2, Uniform

__all__ = [
    "Choice",
    "CoarseToFine",
    "IntUniform",
    "LogUniform",
    "OneMinusLogUniform",
    "Param",
    "Pow2",
    "Trial",
    "Uniform",
]
