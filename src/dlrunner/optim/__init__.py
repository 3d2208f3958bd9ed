"""Optimizer builders (SPEC C1-C7). Config files name them: ``_target_: dlrunner.optim.build_adam``.

Each builder takes the config's hyperparameters plus ``param_groups`` (built by the trainer: the
weight matrices carry the L2 term as weight decay, biases and batch-norm parameters do not).
``batch_size`` sits in the same config node but is the trainer's business.
"""

from __future__ import annotations

import torch

from dlrunner.optim.momentum import CourseMomentum
from dlrunner.runtime import optimizer_speed_flags


def parameter_groups(model: torch.nn.Module, l2: float, batch_size: int) -> list[dict]:
    """Weight matrices, which carry L2, and the rest (biases, batch-norm gamma/beta), in two groups
    (one group when there is no L2).

    L2 adds (lambda/2m)||W||^2 to J, so (lambda/m) W to dW, m being the mini-batch size
    (SPEC B4): that is weight decay lambda/m, applied by the optimizer without computing the
    penalty on every step.
    """
    from dlrunner.models import weight_matrices

    weights = weight_matrices(model)
    weight_ids = {id(w) for w in weights}
    others = [p for p in model.parameters() if id(p) not in weight_ids and p.requires_grad]  # frozen layers stay out
    if not l2:  # one group: one multi-tensor (foreach) update per step instead of two
        return [{"params": weights + others, "weight_decay": 0.0}]
    return [{"params": weights, "weight_decay": l2 / batch_size}, {"params": others, "weight_decay": 0.0}]


def _with_speed_flags(optimizer_class, param_groups, **settings) -> torch.optim.Optimizer:
    """The optimizer with the fastest implementation for where its parameters are (train/accelerate.py)."""
    param_groups = list(param_groups)  # a generator (model.parameters()) is read twice here
    return optimizer_class(param_groups, **settings, **optimizer_speed_flags(optimizer_class, param_groups))


def build_gd(param_groups, lr: float) -> torch.optim.Optimizer:
    """Batch gradient descent: W -= lr * dW, one step per pass over the whole training set."""
    return _with_speed_flags(torch.optim.SGD, param_groups, lr=lr)


def build_sgd(param_groups, lr: float) -> torch.optim.Optimizer:
    """Mini-batch gradient descent: W -= lr * dW on each mini-batch."""
    return _with_speed_flags(torch.optim.SGD, param_groups, lr=lr)


def build_momentum(param_groups, lr: float, beta: float = 0.9) -> torch.optim.Optimizer:
    """The course's momentum: v = beta*v + (1-beta)*dW, W -= lr*v, v starting at 0 (SPEC C5).

    Not torch's SGD(momentum=beta), which uses v = beta*v + dW: the two need lr differing by a
    factor of 1/(1-beta) to take the same steps.
    """
    return CourseMomentum(param_groups, lr=lr, beta=beta)


def build_rmsprop(param_groups, lr: float, beta: float = 0.999, eps: float = 1e-8) -> torch.optim.Optimizer:
    """RMSprop: S = beta*S + (1-beta)*dW^2, W -= lr*dW/(sqrt(S)+eps) (SPEC C6)."""
    return _with_speed_flags(torch.optim.RMSprop, param_groups, lr=lr, alpha=beta, eps=eps)


def build_adam(
    param_groups, lr: float, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8
) -> torch.optim.Optimizer:
    """Adam with bias correction: W -= lr * V_hat / (sqrt(S_hat) + eps) (SPEC C7, the standard form)."""
    return _with_speed_flags(torch.optim.Adam, param_groups, lr=lr, betas=(beta1, beta2), eps=eps)
