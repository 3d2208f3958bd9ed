"""Gradient checking (SPEC B12-B14): the numeric derivative, correct backprop passes on the zoo's
model families, a wrong backward is caught in exactly the layers upstream of it, L2 is in J,
big models check a random subset, and the model passed in is left alone."""

from __future__ import annotations

import io

import pytest
import torch
from rich.console import Console
from torch import nn

from dlrunner.checks.gradcheck import (
    FAIL_FROM,
    PASS_BELOW,
    GradcheckResult,
    gradient_check,
    numeric_derivative,
    print_gradcheck,
    run_gradcheck,
    verdict,
)
from dlrunner.train.evaluate import loss_function
from helpers import compose


def quiet() -> tuple[Console, io.StringIO]:
    buffer = io.StringIO()
    return Console(file=buffer, width=160, color_system=None), buffer


def small_batch(n_inputs=4, n_classes=3, m=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(m, n_inputs, generator=g), torch.randint(0, n_classes, (m,), generator=g)


# ---- SPEC B12 fixture -------------------------------------------------------------------------


def test_numeric_derivative_spec_fixture():
    def f(theta):
        return theta**3

    assert numeric_derivative(f, 1.0, 0.01) == pytest.approx(3.0001, abs=1e-9)
    assert numeric_derivative(f, 1.0, 0.01, two_sided=False) == pytest.approx(3.0301, abs=1e-9)


def test_verdict_thresholds():
    assert verdict(1e-9) == "pass" and verdict(PASS_BELOW / 2) == "pass"
    assert verdict(PASS_BELOW) == "look closer" and verdict(1e-4) == "look closer"
    assert verdict(FAIL_FROM) == "fail" and verdict(0.5) == "fail" and verdict(float("nan")) == "fail"


# ---- correct gradients pass ------------------------------------------------------------------


def check_config(*overrides, steps=0, **kwargs) -> GradcheckResult:
    console, buffer = quiet()
    result = run_gradcheck(compose(*overrides), console, steps=steps, **kwargs)
    text = buffer.getvalue()
    assert "Overall ratio" in text and "probably a bug" in text
    assert result.verdict == "pass", (overrides, result.overall, sorted(result.tensors, key=lambda r: -r["ratio"])[:3])
    assert all(row["verdict"] == "pass" for row in result.tensors), result.tensors
    return result


def test_mlp_with_l2_and_dropout_passes():
    result = check_config("model=mlp", "model.keep_prob=0.8", "regularization=l2", "regularization.l2=0.5")
    assert any("dropout switched off" in note for note in result.notes)
    assert any("L2 term" in note for note in result.notes)
    assert result.epsilon == 1e-7
    names = [row["name"] for row in result.tensors]
    assert len(names) == 6 and all(name.endswith((".weight", ".bias")) for name in names)


def test_logreg_checks_every_coordinate():
    result = check_config("model=logreg")
    assert result.checked == result.total
    assert not any("coordinates (max_coordinates" in note for note in result.notes)


def test_cnn_passes():
    check_config("model=cnn", "data=digits_images")


def test_cnn_with_batch_norm_passes():
    # bias: true keeps the conv's bias (by default a conv right before batch_norm has none), so the
    # rounding-noise recognition below is exercised on a conv and on an fc layer.
    blocks = (
        "model.blocks=[{type: conv, filters: 4, f: 3, padding: same, bias: true}, batch_norm, relu, "
        "{type: pool, mode: max, f: 2, stride: 2}, flatten, {type: fc, units: 16}, batch_norm, relu]"
    )
    result = check_config("model=cnn", "data=digits_images", blocks)
    assert any("batch norm (2 layer(s))" in note for note in result.notes)
    # The biases just before batch norm have a true gradient of 0 (the mean is subtracted): the
    # course's ratio compares rounding noise there (~1), which is recognised, not failed.
    rows = {row["name"]: row for row in result.tensors}
    assert rows["0.bias"]["ratio"] > 0.1 and rows["5.bias"]["ratio"] > 0.1
    assert rows["0.bias"].get("note") == rows["5.bias"].get("note") == "within rounding"
    assert any("within rounding" not in note and "0.bias, 5.bias" in note for note in result.notes)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_recurrent_nets_pass(cell):
    result = check_config(f"model={cell}", "data=mnist1d_sequence", "model.hidden=8")
    assert any(row["name"].startswith("rnn.weight_hh") for row in result.tensors)


@pytest.mark.parametrize("steps", [0, 5])
@pytest.mark.slow  # a ResNet-18's gradient check: seconds
def test_resnet18_small_width_passes_at_init_and_after_training(steps):
    # no time budget: on a busy machine it would check fewer coordinates than the 2000 asked for
    result = check_config("model=resnet18", "model.width=4", "data=digits_images", steps=steps, max_seconds=None)
    assert any(row["name"] == "layer1.0.conv1.weight" for row in result.tensors)
    assert result.total == 44550 and result.checked <= 2000 < result.total  # a random subset
    assert min(row["checked"] for row in result.tensors) >= 4  # every tensor gets a few
    assert any("checked 2000 of 44550 coordinates" in note for note in result.notes)
    assert any(("after 5 training step" if steps else "at initialisation") in note for note in result.notes)


def test_batch_norm_running_statistics_mode_also_passes():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.Tanh(), nn.Linear(6, 3))
    X, y = small_batch()
    result = gradient_check(model, loss_function("multiclass"), X, y, batch_norm="running")
    assert result.verdict == "pass"
    assert any("eval mode" in note for note in result.notes)


# ---- a wrong backward is caught, in the right tensors ----------------------------------------


class WrongScale(torch.autograd.Function):
    """Identity forward; a backward 10% too large (a typical hand-written-backward bug)."""

    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        return grad * 1.1


class WrongSignReLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x.clamp(min=0)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return -grad * (x > 0)


class Bad(nn.Module):
    def __init__(self, function):
        super().__init__()
        self.function = function

    def forward(self, x):
        return self.function.apply(x)


@pytest.mark.parametrize("function", [WrongScale, WrongSignReLU])
def test_wrong_backward_fails_exactly_upstream(function):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 5), Bad(function), nn.Linear(5, 3))
    X, y = small_batch()
    result = gradient_check(model, loss_function("multiclass"), X, y, l2=1.0)
    assert result.verdict == "fail"
    failing = [row["name"] for row in result.tensors if row["verdict"] == "fail"]
    assert failing == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert {row["name"]: row["verdict"] for row in result.tensors}["4.weight"] == "pass"
    assert {row["name"]: row["verdict"] for row in result.tensors}["4.bias"] == "pass"
    console, buffer = quiet()
    print_gradcheck(result, console)
    assert "fail" in buffer.getvalue() and "0.weight" in buffer.getvalue()


# ---- L2 is part of J -------------------------------------------------------------------------


def test_l2_term_is_in_both_J_and_its_gradient():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3))
    X, y = small_batch()
    loss_fn = loss_function("multiclass")
    plain = gradient_check(model, loss_fn, X, y, l2=0.0)
    with_l2 = gradient_check(model, loss_fn, X, y, l2=5.0)
    assert plain.verdict == with_l2.verdict == "pass"
    assert plain.overall != with_l2.overall


def test_l2_only_gradient_is_checked():
    """A weight matrix the loss ignores has dJ/dW = (lambda/m) W from the L2 term alone: if only one
    side included the term the ratio would be 1; with both it is tiny but not 0."""

    class Unused(nn.Module):
        def __init__(self):
            super().__init__()
            self.used = nn.Linear(4, 3)
            self.ignored = nn.Linear(4, 3)

        def forward(self, x):
            return self.used(x) + 0.0 * self.ignored(x)

    torch.manual_seed(0)
    X, y = small_batch()
    result = gradient_check(Unused(), loss_function("multiclass"), X, y, l2=5.0)
    ignored = {row["name"]: row for row in result.tensors}["ignored.weight"]
    assert ignored["verdict"] == "pass" and 0.0 < ignored["ratio"] < PASS_BELOW
    assert {row["name"]: row for row in result.tensors}["ignored.bias"]["ratio"] == 0.0  # biases carry no L2


# ---- subsets, the input model ----------------------------------------------------------------


def test_big_model_checks_a_proportional_random_subset():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(40, 300), nn.ReLU(), nn.Linear(300, 300), nn.ReLU(), nn.Linear(300, 10))
    X, y = small_batch(n_inputs=40, n_classes=10)
    result = gradient_check(model, loss_function("multiclass"), X, y, max_coordinates=300)
    assert result.total == sum(p.numel() for p in model.parameters()) > result.checked == 300
    assert result.verdict == "pass"
    checked = {row["name"]: row["checked"] for row in result.tensors}
    assert checked["2.weight"] > checked["0.weight"] > checked["4.weight"] >= 4 and checked["4.bias"] >= 4
    assert any("checked 300 of" in note and "ratios are over those coordinates only" in note for note in result.notes)


def test_input_model_is_unchanged():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Dropout(0.5), nn.Linear(6, 3))
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    X, y = small_batch()
    result = gradient_check(model, loss_function("multiclass"), X, y, l2=1.0)
    assert result.verdict == "pass"
    assert model.training and all(p.dtype == torch.float32 and p.grad is None for p in model.parameters())
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) and before[k].dtype == after[k].dtype for k in before)
    assert X.dtype == torch.float32


def test_time_budget_lowers_the_coordinates_checked():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(40, 100), nn.ReLU(), nn.Linear(100, 10))
    X, y = small_batch(n_inputs=40, n_classes=10)
    result = gradient_check(model, loss_function("multiclass"), X, y, max_seconds=1e-6)
    assert result.checked == 4 and [row["checked"] for row in result.tensors] == [1, 1, 1, 1]
    assert any("max_seconds" in note for note in result.notes)
