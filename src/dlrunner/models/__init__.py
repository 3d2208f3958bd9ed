"""Model builders. Config files name them: ``model: {_target_: dlrunner.models.build_mlp, ...}``.

Every builder takes its config keys plus the runtime arguments it names, which the data decides:
``n_inputs`` (features per example, flattened), ``input_shape`` (one example's shape, channels
first: (C, L), (C, H, W), or (T, features) for sequences) and ``n_outputs`` (1 for binary and
regression, C for C classes, K for K labels). Models return raw scores z[L]; the loss applies
the output activation (sigmoid, softmax) for stability. A builder may set ``model.notes``, a list
of sentences the trainer prints (e.g. how a classic adapted to a small input).
"""

import importlib
from pathlib import Path

from dlrunner.declarations import public_functions

# A public function of any module of this package is dlrunner.models.<name>: its module is imported
# on first use, so that using one family does not import the others.


def __getattr__(name: str):
    homes = public_functions(Path(__file__).parent)
    if name == "__all__":
        return sorted(homes)
    if name not in homes:
        raise AttributeError(f"module 'dlrunner.models' has no attribute {name!r}")
    return getattr(importlib.import_module(f"dlrunner.models.{homes[name]}"), name)
