"""Model builders. Config files name them: ``model: {_target_: dlrunner.models.build_mlp, ...}``.

Every builder takes its config keys plus two runtime arguments the data decides: ``n_inputs``
(features per example) and ``n_outputs`` (1 for binary and regression, C for C classes). Models
return raw scores z[L]; the loss applies the output activation (sigmoid, softmax) for stability.
"""

from dlrunner.models.mlp import build_logreg, build_mlp, count_parameters, weight_matrices

__all__ = ["build_logreg", "build_mlp", "count_parameters", "weight_matrices"]
