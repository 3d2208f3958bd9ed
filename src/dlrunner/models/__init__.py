"""Model builders. Config files name them: ``model: {_target_: dlrunner.models.build_mlp, ...}``.

Every builder takes its config keys plus the runtime arguments it names, which the data decides:
``n_inputs`` (features per example, flattened), ``input_shape`` (one example's shape, channels
first: (C, L), (C, H, W), or (T, features) for sequences) and ``n_outputs`` (1 for binary and
regression, C for C classes, K for K labels). Models return raw scores z[L]; the loss applies
the output activation (sigmoid, softmax) for stability. A builder may set ``model.notes``, a list
of sentences the trainer prints (e.g. how a classic adapted to a small input).
"""

import importlib

# Where each public builder lives; modules are imported on first use, so that using one family
# does not import the others.
_HOMES = {
    "build_logreg": "mlp",
    "build_mlp": "mlp",
    "count_parameters": "mlp",
    "weight_matrices": "mlp",
    "build_cnn": "cnn",
    "build_lenet5": "classic",
    "build_alexnet": "classic",
    "build_vgg": "classic",
    "build_resnet": "classic",
    "build_googlenet": "classic",
    "build_mobilenet": "classic",
    "build_rnn": "rnn",
}
__all__ = sorted(_HOMES)


def __getattr__(name: str):
    if name not in _HOMES:
        raise AttributeError(f"module 'dlrunner.models' has no attribute {name!r}")
    return getattr(importlib.import_module(f"dlrunner.models.{_HOMES[name]}"), name)
