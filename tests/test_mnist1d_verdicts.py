"""The verdict on real cases: the MNIST-1D paper's numbers (Greydanus & Kobak), reproduced.

Logistic regression is a high-bias model (train and dev accuracy both near 32%); the 2x100 ReLU
MLP trained with Adam (lr 1e-2, batch 100, 6000 steps) is a high-variance one (train ~100%,
dev ~68%). Each run takes a few seconds on a CPU.
"""

from __future__ import annotations

import pytest

from helpers import train_in_process

pytestmark = pytest.mark.slow  # reproduces the MNIST-1D paper's numbers: 6000 steps each

PAPER_SETUP = (
    "data=mnist1d",
    "optimizer=adam",
    "optimizer.lr=1e-2",
    "optimizer.batch_size=100",
    "trainer.steps=6000",
    "trainer.device=cpu",
)


def test_logistic_regression_is_high_bias(tmp_path):
    summary = train_in_process(tmp_path, *PAPER_SETUP, "model=logreg")
    train_acc, dev_acc = summary["metrics"]["train"]["accuracy"], summary["metrics"]["dev"]["accuracy"]
    assert 0.25 <= train_acc <= 0.45 and 0.25 <= dev_acc <= 0.40, (train_acc, dev_acc)
    assert summary["diagnosis"]["problems"] == ["avoidable_bias"]
    assert summary["diagnosis"]["verdict"] == "high avoidable bias"
    assert "bigger network" in summary["diagnosis"]["advice"][0]


def test_two_layer_mlp_is_high_variance(tmp_path):
    summary = train_in_process(tmp_path, *PAPER_SETUP, "model=mlp", "model.layers=[100,100]", "model.activation=relu")
    train_acc, dev_acc = summary["metrics"]["train"]["accuracy"], summary["metrics"]["dev"]["accuracy"]
    assert train_acc >= 0.99 and 0.55 <= dev_acc <= 0.75, (train_acc, dev_acc)
    assert summary["diagnosis"]["problems"] == ["variance"]
    assert "regularise" in summary["diagnosis"]["advice"][0]
