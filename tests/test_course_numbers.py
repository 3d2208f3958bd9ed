"""The worked numbers of the course material (SPEC J), checked against dlrunner's own code."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dlrunner.diagnostics import diagnose
from dlrunner.diagnostics.metrics import f1_from_precision_recall, f1_score, probabilities
from dlrunner.optim import build_adam, build_gd, build_momentum, parameter_groups, schedules


def test_softmax_of_the_course_example():
    # z = [5, 2, -1, 3] -> [0.842, 0.042, 0.002, 0.114]  (L4943)
    probs = probabilities(torch.tensor([[5.0, 2.0, -1.0, 3.0]]), "multiclass")[0]
    assert probs.tolist() == pytest.approx([0.842, 0.042, 0.002, 0.114], abs=5e-4)


def test_binary_head_is_the_sigmoid():
    assert probabilities(torch.tensor([[0.0], [2.0]]), "binary").tolist() == pytest.approx(
        [0.5, 1 / (1 + math.exp(-2))]
    )


@pytest.mark.parametrize("precision, recall, f1", [(0.95, 0.90, 0.924), (0.98, 0.85, 0.910)])
def test_f1_of_the_course_classifiers(precision, recall, f1):
    # Classifier A (95%, 90%) -> 92.4%, B (98%, 85%) -> 91.0%  (L5567, corrected formula SPEC I.5)
    assert f1_from_precision_recall(precision, recall) == pytest.approx(f1, abs=5e-4)


def test_f1_from_predictions():
    # 20 positives of which 18 are found, 1 false positive: P = 18/19, R = 18/20.
    actual = torch.tensor([1.0] * 20 + [0.0] * 80)
    predicted = torch.tensor([1.0] * 18 + [0.0] * 2 + [1.0] + [0.0] * 79)
    p, r, f1 = f1_score(predicted, actual)
    assert (p, r) == pytest.approx((18 / 19, 18 / 20))
    assert f1 == pytest.approx(2 * p * r / (p + r))


def test_adam_bias_correction_denominator():
    # With beta1 = 0.98 and a constant gradient g, after t = 2 steps the first moment is
    # (1 - 0.98^2) g = 0.0396 g, which bias correction divides back out (L4145).
    w = torch.nn.Parameter(torch.zeros(1))
    opt = build_adam([w], lr=0.1, beta1=0.98, beta2=0.999, eps=1e-8)
    for _ in range(2):
        w.grad = torch.tensor([3.0])
        opt.step()
    assert opt.state[w]["exp_avg"].item() == pytest.approx(0.0396 * 3.0)
    # Corrected: V_hat = g and S_hat = g^2, so each step moves by lr * g / (|g| + eps) = lr.
    assert w.item() == pytest.approx(-0.2, rel=1e-6)


def test_momentum_is_the_courses_form():
    # v = beta v + (1 - beta) dW from v = 0: the first step moves by lr (1 - beta) dW, not lr dW.
    w = torch.nn.Parameter(torch.zeros(1))
    opt = build_momentum([w], lr=1.0, beta=0.9)
    w.grad = torch.tensor([1.0])
    opt.step()
    assert w.item() == pytest.approx(-0.1)
    w.grad = torch.tensor([1.0])
    opt.step()  # v = 0.9 * 0.1 + 0.1 * 1 = 0.19
    assert w.item() == pytest.approx(-0.29)


def test_inverse_time_decay_table():
    # lr0 = 0.2, decay_rate = 1: epochs 1..4 -> 0.1, 0.0667, 0.05, 0.04  (L4388, SPEC I.4)
    factor = schedules.inverse_time(decay_rate=1.0)
    assert [0.2 * factor(epoch, 0, 100) for epoch in (1, 2, 3, 4)] == pytest.approx([0.1, 0.0667, 0.05, 0.04], abs=5e-5)


def test_other_schedules():
    assert schedules.exponential(0.95)(2, 0, 10) == pytest.approx(0.95**2)
    assert schedules.inverse_sqrt(1.0)(4, 0, 10) == pytest.approx(0.5)
    stair = schedules.staircase(factor=0.5, every_epochs=10)
    assert [stair(e, 0, 0) for e in (1, 10, 11, 21)] == [1.0, 1.0, 0.5, 0.25]
    cos = schedules.cosine(warmup_steps=10, min_factor=0.1)
    assert cos(1, 0, 110) == pytest.approx(0.1) and cos(1, 10, 110) == pytest.approx(1.0)
    assert cos(9, 110, 110) == pytest.approx(0.1)


def test_gradient_descent_on_the_frameworks_example():
    # minimise w^2 - 10w + 25 from w = 0 with lr 0.01: w = 0.1 after one step, ~5 after 1000 (L5137)
    w = torch.nn.Parameter(torch.zeros(()))
    opt = build_gd([w], lr=0.01)
    for step in range(1000):
        opt.zero_grad()
        (w**2 - 10 * w + 25).backward()
        opt.step()
        if step == 0:
            assert w.item() == pytest.approx(0.1)
    assert w.item() == pytest.approx(5.0, abs=1e-4)


def test_l2_is_weight_decay_lambda_over_m_on_weights_only():
    # W := (1 - lr*lambda/m) W - lr dW for the weights; biases are not regularised (SPEC B4).
    torch.manual_seed(0)
    layer = torch.nn.Linear(3, 2)
    w0, b0 = layer.weight.detach().clone(), layer.bias.detach().clone()
    lr, l2, m = 0.1, 0.5, 4
    opt = build_gd(parameter_groups(layer, l2=l2, batch_size=m), lr=lr)
    x = torch.randn(m, 3)
    layer(x).pow(2).mean().backward()
    dW, db = layer.weight.grad.clone(), layer.bias.grad.clone()
    opt.step()
    assert torch.allclose(layer.weight, (1 - lr * l2 / m) * w0 - lr * dW)
    assert torch.allclose(layer.bias, b0 - lr * db)


# ---------------------------------------------------------------- the diagnosis examples


@pytest.mark.parametrize(
    "human, train, dev, problems",
    [
        # B2, Bayes error ~0: (train, dev) 1/11 variance; 15/16 bias; 15/30 both; 0.5/1 neither.
        (0.0, 0.01, 0.11, ["variance"]),
        (0.0, 0.15, 0.16, ["avoidable_bias"]),
        (0.0, 0.15, 0.30, ["avoidable_bias", "variance"]),
        (0.0, 0.005, 0.01, []),
        # B2: with Bayes error 15%, train 15 / dev 16 is fine.
        (0.15, 0.15, 0.16, []),
        # E9-E10: human 1 / train 8 / dev 10 -> bias; human 7.5 / 8 / 10 -> variance.
        (0.01, 0.08, 0.10, ["avoidable_bias"]),
        (0.075, 0.08, 0.10, ["variance"]),
    ],
)
def test_course_bias_variance_examples(human, train, dev, problems):
    result = diagnose(train=train, dev=dev, human=human)
    assert result["problems"] == problems
    assert result["avoidable_bias"] == pytest.approx(train - human)
    assert result["variance"] == pytest.approx(dev - train)


def test_both_bias_and_variance_advise_the_recipes_order_without_contradiction():
    # B3: fix high bias first, then variance. The variance advice beside bias says "next", and does
    # not claim the model fits its training set (15% training error, B2's "both" example).
    advice = diagnose(train=0.15, dev=0.30, human=0.0)["advice"]
    assert advice[0].startswith("High avoidable bias") and "More data will not help yet" in advice[0]
    assert advice[1].startswith("High variance, to fix next") and "Once the avoidable bias is down" in advice[1]
    assert "fits the training set" not in advice[1]
    alone = diagnose(train=0.01, dev=0.11, human=0.0)["advice"]
    assert alone == [alone[0]] and alone[0].startswith("High variance: the model fits the training set")


def test_e11_human_level_choice_changes_avoidable_bias():
    # E11: a team of experts at 0.5% is the best human level; train 0.7% dev 0.8% ->
    # avoidable bias 0.2%, variance 0.1%.
    result = diagnose(train=0.007, dev=0.008, human=0.005)
    assert result["avoidable_bias"] == pytest.approx(0.002)
    assert result["variance"] == pytest.approx(0.001)


def test_e17_train_dev_split_of_the_gaps():
    # Human 4, train 7, train-dev 10, dev 12, test 12 -> avoidable bias 3, variance 3,
    # data mismatch 2, overfitting to dev 0  (L6448-6530)
    result = diagnose(train=0.07, train_dev=0.10, dev=0.12, test=0.12, human=0.04)
    assert result["avoidable_bias"] == pytest.approx(0.03)
    assert result["variance"] == pytest.approx(0.03)
    assert result["data_mismatch"] == pytest.approx(0.02)
    assert result["dev_overfitting"] == pytest.approx(0.0)
    assert result["problems"] == ["avoidable_bias", "variance", "data_mismatch"]
    assert result["advice"][0].startswith("High avoidable bias")  # bias first: the basic recipe


def test_small_sets_need_gaps_beyond_sampling_noise():
    # 2 mistakes in 114 dev examples and none in 455 training ones: not "high variance".
    small = diagnose(train=0.0, dev=2 / 114, human=0.0, sizes={"train": 455, "dev": 114})
    assert small["problems"] == [] and any("sampling noise" in n for n in small["notes"])
    assert small["uncertainty"]["variance"] == pytest.approx(2 * math.sqrt((2 / 114) * (112 / 114) / 114))
    # The same rates on 100x more examples are a real gap.
    large = diagnose(train=0.0, dev=2 / 114, human=0.0, sizes={"train": 45500, "dev": 11400})
    assert large["problems"] == ["variance"]
    # Without sizes the course's examples are judged as the course judges them.
    assert diagnose(train=0.01, dev=0.11, human=0.0)["uncertainty"]["variance"] == 0.0


def test_regression_gaps_are_measured_in_units_of_the_target_variance():
    # MSEs of 0.0084 vs 0.0276 on targets with variance 10: a tiny relative gap.
    assert diagnose(train=0.0084, dev=0.0276, human=0.0, scale=10.0)["problems"] == []
    assert diagnose(train=0.0084, dev=0.0276, human=0.0, scale=0.01)["problems"] != []


def test_unknown_human_level_uses_zero_and_says_so():
    result = diagnose(train=0.1, dev=0.12, human=None)
    assert result["human_error"] == 0 and result["avoidable_bias"] == pytest.approx(0.1)
    assert any("unknown" in note for note in result["notes"])


def test_option_two_split_of_the_web_and_app_images():
    # E16 option 2: 200k web + 10k app; train = 200k web + 5k app, dev = test = 2.5k app (L6350).
    from dlrunner.data.splits import split_indices

    parts = split_indices(
        200_000, {"train_dev": 0}, seed=0, target_n=10_000, target_shares={"train": 5000, "dev": 2500, "test": 2500}
    )
    sizes = {name: sum(len(i) for i in part.values()) for name, part in parts.items()}
    assert sizes == {"train": 205_000, "dev": 2_500, "test": 2_500}
    assert len(parts["dev"]["source"]) == 0 and len(parts["test"]["source"]) == 0
    all_target = np.concatenate([parts[p]["target"] for p in ("train", "dev", "test")])
    assert len(np.unique(all_target)) == 10_000


def test_convolution_output_size_of_the_course_example():
    # A 7x7 input, f = 3, stride 2, no padding -> floor((7 - 3)/2) + 1 = 3  (L7383)
    from dlrunner.models.cnn import build_cnn, conv_output_size

    assert conv_output_size(7, f=3, stride=2, padding=0) == 3
    # 'same' padding p = (f-1)/2 keeps the size at stride 1 (SPEC F2)
    assert conv_output_size(7, f=5, stride=1, padding=2) == 7
    model = build_cnn(
        [{"type": "conv", "filters": 4, "f": 3, "stride": 2, "padding": "valid"}, "flatten"],
        input_shape=(1, 7, 7),
        n_outputs=1,
    )
    assert model[0](torch.zeros(1, 1, 7, 7)).shape == (1, 4, 3, 3)


def test_ten_3x3x3_filters_have_280_parameters():
    # 10 filters of 3x3x3 plus one bias each -> 280 parameters, whatever the image size  (L7586)
    from dlrunner.models.cnn import build_cnn, conv_parameters

    assert conv_parameters(f=3, channels_in=3, filters=10) == 280
    for size in (32, 64):
        model = build_cnn([{"type": "conv", "filters": 10, "f": 3}], input_shape=(3, size, size), n_outputs=1)
        assert sum(p.numel() for p in model[0].parameters()) == 280
