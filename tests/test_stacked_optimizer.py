"""A stacked optimizer is its solo optimizer, K times: each trial's weights after many steps equal
what dlrunner's solo optimizer (torch's own step, or the course's momentum) gives for the same
gradients, per trial hyperparameters and L2 weight decay included."""

from __future__ import annotations

import pytest
import torch

from dlrunner import optim
from dlrunner.stack.optim import StackedOptimizer

K, P, STEPS = 3, 2000, 200
LRS = [1e-3, 3e-4, 1e-2]
SETTINGS = {  # the builder, and each trial's settings (beta in the course's (1 - beta) form)
    "sgd": ("build_sgd", [{}, {}, {}]),
    "momentum": ("build_momentum", [{"beta": 0.9}, {"beta": 0.5}, {"beta": 0.99}]),
    "rmsprop": (
        "build_rmsprop",
        [{"beta": 0.999, "eps": 1e-8}, {"beta": 0.9, "eps": 1e-6}, {"beta": 0.99, "eps": 1e-8}],
    ),
    "adam": (
        "build_adam",
        [
            {"beta1": 0.9, "beta2": 0.999, "eps": 1e-8},
            {"beta1": 0.8, "beta2": 0.99, "eps": 1e-7},
            {"beta1": 0.95, "beta2": 0.9999, "eps": 1e-8},
        ],
    ),
}
# Where the stack does each operation as torch does, the weights are equal bit for bit (RMSprop, which
# has no fused kernel). SGD's and Adam's solo steps are torch's fused kernels (one pass with its own
# rounding) and momentum's is a foreach loop: equal to float tolerance.
BIT_EQUAL = {"rmsprop"}


def run_both(kind: str, weight_decay: list[float]):
    builder, settings = SETTINGS[kind]
    torch.manual_seed(0)
    start = torch.randn(K, P)
    flat = torch.nn.Parameter(start.clone())
    decay = torch.tensor(weight_decay)[:, None].expand(K, P).contiguous()
    stacked = StackedOptimizer(f"dlrunner.optim.{builder}", flat, settings, decay)
    solo = [torch.nn.Parameter(start[k].clone()) for k in range(K)]
    solo_optimizers = [
        getattr(optim, builder)([{"params": [solo[k]], "weight_decay": weight_decay[k]}], lr=LRS[k], **settings[k])
        for k in range(K)
    ]
    lr = torch.tensor(LRS)[:, None]
    for _ in range(STEPS):
        gradient = torch.randn(K, P)
        flat.grad = gradient.clone()
        stacked.step(lr)
        for k in range(K):
            solo[k].grad = gradient[k].clone()
            solo_optimizers[k].step()
    return flat.detach(), torch.stack([p.detach() for p in solo])


@pytest.mark.parametrize("kind", list(SETTINGS))
@pytest.mark.parametrize("weight_decay", [[0.0, 0.0, 0.0], [0.0, 1e-3, 0.05]], ids=["no-l2", "l2"])
def test_each_stacked_trial_takes_its_solo_optimizers_steps(kind, weight_decay):
    stacked, solo = run_both(kind, weight_decay)
    if kind in BIT_EQUAL and not any(weight_decay):
        assert torch.equal(stacked, solo), (stacked - solo).abs().max()
    else:
        torch.testing.assert_close(stacked, solo, rtol=1e-5, atol=1e-6)


def test_the_comparison_can_fail():
    """Another learning rate for one trial is seen: the check is not vacuous."""
    stacked, solo = run_both("adam", [0.0, 0.0, 0.0])
    LRS[1] *= 1.01
    try:
        _, solo_other = run_both("adam", [0.0, 0.0, 0.0])
    finally:
        LRS[1] /= 1.01
    assert not torch.allclose(solo, solo_other, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(stacked, solo, rtol=1e-5, atol=1e-6)
