"""dlrunner: configuration-driven deep learning experiments with a bias/variance verdict.

The Python API of a finished run: ``dlrunner.load_run(path)`` returns its model with the input
normalisation it was trained with, and a ``predict`` that takes raw inputs (docs/python-api.md).
Importing dlrunner loads nothing else; torch is imported when ``load_run`` is called.
"""

from __future__ import annotations

from dlrunner.version import __version__

__all__ = ["__version__", "load_run"]


def load_run(path, checkpoint: str = "best"):
    """The model of the run folder ``path`` (best weights, or ``checkpoint="last"``), ready for raw
    inputs: ``load_run(path).predict(X)`` gives ``predicted``, ``probabilities`` and ``labels``."""
    from dlrunner.predict import load_run as load

    return load(path, checkpoint)
