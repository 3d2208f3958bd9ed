"""`dlrun check`'s sanity checks: all four pass on healthy configs, each fails on the config that
breaks it, and the failure message names the usual cause."""

from __future__ import annotations

import io
import math
from itertools import pairwise

import numpy as np
import pytest
import torch
from rich.console import Console

from dlrunner.checks.sanity import NAMES, CheckResult, chance_loss, check_initial_loss, print_checks, run_checks
from helpers import compose


def by_name(results: list[CheckResult]) -> dict[str, CheckResult]:
    assert [r.name for r in results] == list(NAMES)
    return {r.name: r for r in results}


@pytest.fixture(scope="module")
def digits_results():
    return run_checks(compose("data=digits"))


def test_all_pass_on_the_default_config():
    results = by_name(run_checks(compose()))
    assert all(r.passed for r in results.values()), [r.message for r in results.values()]
    initial = results["initial loss"].measured
    assert initial["expected"] == pytest.approx(math.log(10))
    assert initial["initial_loss"] < initial["expected"] + 1.5  # He init: well within the 3-nat tolerance
    assert (
        results["overfit a small batch"].measured["final_loss"]
        < 0.05 * results["overfit a small batch"].measured["initial_loss"]
    )
    assert results["real vs shuffled labels"].measured["speedup"] >= 2


def test_all_pass_on_digits(digits_results):
    results = by_name(digits_results)
    assert all(r.passed for r in results.values()), [r.message for r in results.values()]
    assert results["overfit a small batch"].measured["accuracy"] == 1.0
    shuffled = results["real vs shuffled labels"].measured
    # The network memorises 1079 shuffled labels too (the end gains are close), only much later.
    assert shuffled["real_gain"] > 0.9 and shuffled["steps_to_half_shuffled"] > 5 * shuffled["steps_to_half_real"]
    J = results["batch GD decreases J"].measured["J"]
    assert len(J) == 21 and all(b <= a for a, b in pairwise(J))


def test_results_are_deterministic(digits_results):
    again = run_checks(compose("data=digits"))
    assert [(r.passed, r.measured, r.message) for r in again] == [
        (r.passed, r.measured, r.message) for r in digits_results
    ]


def test_initial_loss_fails_with_unnormalised_inputs():
    results = by_name(run_checks(compose("data=breast_cancer", "data.normalize=false"), steps=20))
    check = results["initial loss"]
    assert check.passed is False
    assert check.measured["expected"] == pytest.approx(math.log(2))
    assert check.measured["excess_nats"] > 10  # features in the hundreds: measured 123 nats above ln 2
    assert "unnormalised inputs" in check.message and "initialisation scale" in check.message


def test_initial_loss_fails_for_a_model_with_scaled_up_weights():
    torch.manual_seed(0)
    X, y = torch.randn(500, 20), torch.randint(0, 10, (500,))
    model = torch.nn.Sequential(torch.nn.Linear(20, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10))
    assert check_initial_loss(model, X, y, "multiclass", 10).passed is True
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(100)
    broken = check_initial_loss(model, X, y, "multiclass", 10)
    assert broken.passed is False and broken.measured["initial_loss"] > 10 * math.log(10)


def test_initial_loss_below_chance_fails_unless_pretrained():
    X, y = torch.randn(200, 3), torch.randint(0, 4, (200,))
    oracle = lambda X: 20 * torch.nn.functional.one_hot(y, 4).float()  # noqa: E731 - "knows" the labels
    model = torch.nn.Module()
    model.forward = oracle
    assert check_initial_loss(model, X, y, "multiclass", 4).passed is False
    assert check_initial_loss(model, X, y, "multiclass", 4, pretrained=True).passed is True


def test_overfit_fails_with_a_tiny_learning_rate():
    results = by_name(run_checks(compose("optimizer.lr=1e-7")))
    check = results["overfit a small batch"]
    assert check.passed is False
    assert check.measured["final_loss"] > 0.9 * check.measured["initial_loss"]
    assert "learning rate" in check.message and "1e-07" in check.message
    assert results["initial loss"].passed is True


def test_dropout_is_off_in_the_checks():
    # With dropout on, J of batch GD jumps about (measured: it rose at 5 of 20 steps) and the initial
    # loss is 2.35 nats high.
    results = by_name(run_checks(compose("data=digits", "model.keep_prob=0.5"), steps=200))
    assert results["overfit a small batch"].passed is True
    assert results["batch GD decreases J"].passed is True


def test_shuffled_labels_check_fails_when_inputs_are_noise(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "noise.npz"
    np.savez(path, X=rng.normal(size=(1500, 40)).astype(np.float32), y=rng.integers(0, 10, 1500))
    results = by_name(run_checks(compose("data=npz", f"data.source.path={path}")))
    check = results["real vs shuffled labels"]
    assert check.passed is False
    assert check.measured["speedup"] < 1.5  # measured 1.0: real and shuffled labels are equally (un)related to X
    assert "not learning from the inputs" in check.message
    assert results["overfit a small batch"].passed is True  # a model can memorise 16 noise examples


def test_batch_gd_fails_with_a_huge_learning_rate():
    results = by_name(run_checks(compose("optimizer=gd", "optimizer.lr=100"), steps=20))
    check = results["batch GD decreases J"]
    assert check.passed is False
    assert check.measured["rises"] > 0 and check.measured["first_rise"] == 1
    assert check.measured["lr"] == 100 and "halvings" not in check.measured  # gd's own lr: never reduced
    assert "learning rate too large" in check.message


def test_regression_skips_the_initial_loss_check(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(600, 5)).astype(np.float32)
    path = tmp_path / "linear.npz"
    np.savez(path, X=X, y=(X @ np.arange(1, 6) + 0.1 * rng.normal(size=600)).astype(np.float32))
    results = by_name(run_checks(compose("data=npz", f"data.source.path={path}"), steps=100))
    initial = results["initial loss"]
    assert initial.passed is None and "skipped" in initial.message
    assert initial.measured["mean_predictor"] == pytest.approx(
        results["real vs shuffled labels"].measured["chance_loss"], rel=1e-6
    )
    assert results["real vs shuffled labels"].passed is True
    # Adam's lr = 0.01 is too large a GD step for targets of size ~7 (J rose at 4 of 20 steps):
    # an adaptive optimizer's lr is halved until J falls (here once), a GD learning rate is not.
    gd = results["batch GD decreases J"]
    assert gd.passed is True and gd.measured["halvings"] == 1 and gd.measured["lr"] == 0.005


def test_chance_loss():
    assert chance_loss(torch.tensor([0, 1, 2, 3] * 5), "multiclass") == pytest.approx(math.log(4))
    assert chance_loss(torch.tensor([0.0, 1.0]), "binary") == pytest.approx(math.log(2))
    multilabel = torch.tensor([[1.0, float("nan")], [0.0, 1.0]])  # label 1: p=1/2 on 2 examples; label 2: one entry
    assert chance_loss(multilabel, "multilabel") == pytest.approx(math.log(2))
    assert chance_loss(torch.tensor([1.0, 3.0]), "regression") == pytest.approx(1.0)


def test_print_checks_renders_a_table_and_a_verdict(digits_results):
    out = io.StringIO()
    print_checks(digits_results, Console(file=out, width=140, color_system=None))
    text = out.getvalue()
    assert all(name in text for name in NAMES) and text.count("PASS") == 4
    assert "4 of 4 checks passed" in text

    mixed = [
        CheckResult("initial loss", None, {"initial_loss": 1.0}, "skipped for regression"),
        CheckResult("batch GD decreases J", False, {"rises": 3}, "J rose"),
    ]
    out = io.StringIO()
    print_checks(mixed, Console(file=out, width=140, color_system=None))
    text = out.getvalue()
    assert "skipped" in text and "FAIL" in text and "rises = 3" in text
    assert "1 of 2 checks failed (batch GD decreases J), 1 skipped" in text
