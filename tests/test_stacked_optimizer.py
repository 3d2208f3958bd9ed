"""A stacked optimizer is its solo optimizer, K times: each trial's weights after many steps equal
what dlrunner's solo optimizer (torch's own step, or the course's momentum) gives for the same
gradients, per trial hyperparameters and L2 weight decay included."""

from __future__ import annotations

import pytest
import torch

from dlrunner import internals, optim
from dlrunner.stack import optim as stack_optim
from dlrunner.stack.optim import StackedOptimizer

FEATURE = internals.FUSED_ADAM_ON_ROWS

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
SHAPES = [(30, 41), (41,)]  # a weight matrix (L2 applies) and a bias, of sizes that are no multiple of a vector
SIZES = [30 * 41, 41]


def parameter_groups(weight, bias, weight_decay: float) -> list[dict]:
    """As ``optim.parameter_groups`` makes them: L2 on the weight matrix only, one group without L2."""
    if not weight_decay:
        return [{"params": [weight, bias], "weight_decay": 0.0}]
    return [{"params": [weight], "weight_decay": weight_decay}, {"params": [bias], "weight_decay": 0.0}]


def run_both(kind: str, weight_decay: list[float], regroup: bool = False):
    """STEPS steps of the stacked optimizer and of each trial's solo optimizer on the same gradients.
    ``regroup``: halfway, trial 1 leaves the stack and a new trial with its settings joins it (fresh
    weights and state), in a new optimizer that carries trials 0 and 2 over."""
    builder, settings = SETTINGS[kind]
    torch.manual_seed(0)
    start = torch.randn(K, sum(SIZES))
    flat = torch.nn.Parameter(start.clone())
    mask = torch.cat([torch.ones(SIZES[0]), torch.zeros(SIZES[1])])
    stacked = StackedOptimizer(f"dlrunner.optim.{builder}", flat, settings, weight_decay, mask, SIZES)

    def solo_trial(row: torch.Tensor, k: int):
        params = [torch.nn.Parameter(t.view(s).clone()) for t, s in zip(row.split(SIZES), SHAPES)]
        return params, getattr(optim, builder)(parameter_groups(*params, weight_decay[k]), lr=LRS[k], **settings[k])

    solo = [solo_trial(start[k], k) for k in range(K)]
    trial_of_row, lrs = list(range(K)), LRS
    for step in range(STEPS):
        if regroup and step == STEPS // 2:
            joining = torch.randn(sum(SIZES))
            flat = torch.nn.Parameter(torch.cat([flat.detach()[[0, 2]], joining[None]]))
            trial_of_row = [0, 2, 1]
            picked = [settings[k] for k in trial_of_row], [weight_decay[k] for k in trial_of_row]
            regrouped = StackedOptimizer(f"dlrunner.optim.{builder}", flat, *picked, mask, SIZES)
            regrouped.carry(stacked, [0, 2])
            stacked, lrs = regrouped, [LRS[k] for k in trial_of_row]
            solo[1] = solo_trial(joining, 1)
        gradient = torch.randn(K, sum(SIZES))
        stacked.step(lrs, [part.clone() for part in gradient.split(SIZES, 1)])
        for row, k in enumerate(trial_of_row):
            params, solo_optimizer = solo[k]
            for p, g in zip(params, gradient[row].split(SIZES)):
                p.grad = g.view(p.shape).clone()
            solo_optimizer.step()
    solo_rows = [torch.cat([p.detach().reshape(-1) for p in solo[k][0]]) for k in trial_of_row]
    return flat.detach(), torch.stack(solo_rows)


@pytest.mark.parametrize("kind", list(SETTINGS))
@pytest.mark.parametrize("weight_decay", [[0.0, 0.0, 0.0], [0.0, 1e-3, 0.05]], ids=["no-l2", "l2"])
def test_each_stacked_trial_takes_its_solo_optimizers_steps_bit_for_bit(kind, weight_decay):
    stacked, solo = run_both(kind, weight_decay)
    assert torch.equal(stacked, solo), (stacked - solo).abs().max()


@pytest.mark.parametrize("kind", list(SETTINGS))
def test_trials_that_stay_when_a_stack_regroups_go_on_bit_for_bit_and_a_joining_one_starts_fresh(kind):
    stacked, solo = run_both(kind, [0.0, 1e-3, 0.05], regroup=True)
    assert torch.equal(stacked, solo), (stacked - solo).abs().max()


def refusing_kernel(*args, **kwargs):
    raise TypeError("_fused_adam_() got an unexpected keyword argument 'lr'")


@pytest.mark.parametrize("kernel", [None, refusing_kernel], ids=["missing", "changed"])
def test_adam_without_the_fused_kernel_is_written_out_to_float_tolerance(monkeypatch, kernel):
    """Another torch (no kernel, or one that refuses the call): the written-out step, equal up to rounding."""
    if kernel is None:
        monkeypatch.setattr(stack_optim, "fused_adam_kernel", lambda device: internals.took(FEATURE, False) or None)
    else:
        monkeypatch.setattr(stack_optim, "fused_adam_kernel", lambda device: kernel)
    stacked, solo = run_both("adam", [0.0, 1e-3, 0.05])
    assert internals.PATHS[FEATURE].startswith("public")
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
    assert torch.equal(stacked, solo)
