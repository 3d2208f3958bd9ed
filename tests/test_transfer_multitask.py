"""Transfer learning (load, new head, freeze: the frozen weights don't move, fine-tune) and
multi-task learning (the loss skips missing labels, per-task metrics), SPEC E19, E20, F14."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dlrunner.errors import ConfigError
from dlrunner.train.evaluate import evaluate, loss_function
from helpers import compose, dlrun_in_process, train_in_process

QUICK = ("trainer=quick", "trainer.steps=60", "trainer.eval_every=30", "trainer.device=cpu")
CNN_WITH_BN = (
    "model.blocks=[{type: conv, filters: 8, f: 3},batch_norm,relu,max_pool,"
    "{type: conv, filters: 16, f: 3},relu,max_pool,flatten,{type: fc, units: 32},relu]"
)


def weights(run_dir) -> dict:
    return torch.load(run_dir / "checkpoints" / "last.pt", map_location="cpu", weights_only=False)["model"]


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """A CNN trained on the ten digit classes: the 'task A' of transfer learning."""
    folder = tmp_path_factory.mktemp("task_a")
    summary = train_in_process(folder, "data=digits_images", "model=cnn", CNN_WITH_BN, *QUICK)
    assert summary["status"] == "completed"
    return folder / "run"


def test_transfer_to_a_new_task_with_frozen_layers(tmp_path, pretrained):
    # Task B: three yes/no attributes of the same images: a new output layer, the first 3 layers frozen.
    summary = train_in_process(
        tmp_path,
        "data=digits_attributes",
        "model=cnn",
        CNN_WITH_BN,
        *QUICK,
        f"transfer.checkpoint={pretrained}",
        "transfer.freeze=3",
    )
    assert summary["status"] == "completed"
    before = torch.load(pretrained / "checkpoints" / "best.pt", map_location="cpu", weights_only=False)["model"]
    after = weights(tmp_path / "run")
    assert "0.bias" not in after  # a conv right before batch_norm has no bias (beta replaces it)
    frozen = ["0.weight", "1.weight", "1.bias", "1.running_mean", "1.running_var", "4.weight", "4.bias"]
    for key in frozen:
        assert torch.equal(before[key], after[key]), f"frozen {key} moved"
    assert not torch.equal(before["8.weight"], after["8.weight"]), "the fc layer after the frozen ones must fine-tune"
    assert before["10.weight"].shape == (10, 32) and after["10.weight"].shape == (3, 32)  # the new head
    assert summary["n_params"] < summary["n_params_total"]


def test_fine_tune_all_layers_starts_from_the_checkpoint(tmp_path, pretrained):
    # Same task, nothing frozen, zero steps' worth of change would keep the weights: the first
    # evaluation already shows the pretrained accuracy, far above chance.
    summary = train_in_process(
        tmp_path,
        "data=digits_images",
        "model=cnn",
        CNN_WITH_BN,
        "trainer=quick",
        "trainer.steps=1",
        "trainer.eval_every=1",
        "optimizer.lr=1e-6",
        f"transfer.checkpoint={pretrained}",
    )
    assert summary["metrics"]["dev"]["accuracy"] > 0.6
    assert summary["n_params"] == summary["n_params_total"]


def test_freeze_by_layer_name(tmp_path, pretrained):
    train_in_process(
        tmp_path,
        "data=digits_images",
        "model=cnn",
        CNN_WITH_BN,
        *QUICK,
        f"transfer.checkpoint={pretrained}",
        "transfer.freeze=[0,4]",
    )
    before = torch.load(pretrained / "checkpoints" / "best.pt", map_location="cpu", weights_only=False)["model"]
    after = weights(tmp_path / "run")
    assert torch.equal(before["4.weight"], after["4.weight"]) and torch.equal(before["0.weight"], after["0.weight"])
    assert not torch.equal(before["1.weight"], after["1.weight"])  # batch norm was not named: it trains


@pytest.mark.parametrize(
    "overrides, key, words",
    [
        (("transfer.freeze=7",), "transfer.freeze", "freeze at most"),
        (("transfer.freeze=[conv9]",), "transfer.freeze", "no layer named"),
        (("transfer.new_head=false", "data=digits_attributes"), "transfer.new_head", "another shape"),
    ],
)
def test_transfer_errors(tmp_path, pretrained, overrides, key, words):
    with pytest.raises(ConfigError) as raised:
        train_in_process(
            tmp_path,
            "data=digits_images",
            "model=cnn",
            CNN_WITH_BN,
            *QUICK,
            f"transfer.checkpoint={pretrained}",
            *overrides,
        )
    assert raised.value.problems[0].key == key and words in raised.value.problems[0].valid
    assert not (tmp_path / "run").exists()  # nothing written for bad input


def test_transfer_from_another_architecture_is_bad_input(tmp_path, pretrained):
    result = dlrun_in_process(
        "train", "data=digits_images", "model=cnn", f"transfer.checkpoint={pretrained}", "trainer=quick", cwd=tmp_path
    )
    assert result.returncode == 2
    assert "transfer.checkpoint" in result.stderr and "differs" in result.stderr and "Traceback" not in result.stderr


# ------------------------------------------------------------------ multi-task


def test_missing_labels_add_nothing_to_the_loss():
    scores = torch.tensor([[2.0, -1.0, 0.5], [0.0, 3.0, -2.0]], requires_grad=True)
    y = torch.tensor([[1.0, math.nan, 0.0], [math.nan, 1.0, math.nan]])
    loss = loss_function("multilabel")(scores, y)
    logistic = lambda z, t: -(t * math.log(1 / (1 + math.exp(-z))) + (1 - t) * math.log(1 - 1 / (1 + math.exp(-z))))  # noqa: E731
    expected = (logistic(2.0, 1) + logistic(0.5, 0) + logistic(3.0, 1)) / 2  # summed over labelled entries, / m
    assert loss.detach().item() == pytest.approx(expected, rel=1e-6)
    loss.backward()
    assert scores.grad[0, 1] == 0 and scores.grad[1, 0] == 0 and scores.grad[1, 2] == 0


def test_per_task_errors_count_labelled_entries_only():
    model = torch.nn.Identity()
    scores = torch.tensor([[3.0, -3.0], [3.0, 3.0], [-3.0, 3.0]])
    y = torch.tensor([[1.0, 1.0], [0.0, math.nan], [math.nan, 1.0]])
    result = evaluate(model, scores, y, "multilabel")
    assert result["task_errors"] == pytest.approx([0.5, 0.5])  # task 0: 1 wrong of 2; task 1: 1 wrong of 2
    assert result["error"] == pytest.approx(2 / 4)


def test_multi_task_training_beats_chance_on_every_task(tmp_path):
    summary = train_in_process(tmp_path, "data=digits_attributes", "model=cnn", "trainer=quick", "trainer.device=cpu")
    assert summary["task"] == "multilabel"
    dev = summary["metrics"]["dev"]
    assert len(dev["task_errors"]) == 3
    assert all(error < 0.2 for error in dev["task_errors"]), dev  # chance is about 0.5 per task
    assert not (tmp_path / "run" / "analysis.json").exists()  # no single-label confusion matrix for several labels


def test_multilabel_is_detected_from_a_2d_label_array(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 4)).astype(np.float32)
    y = np.stack([X[:, 0] > 0, X[:, 1] > 0], axis=1).astype(np.float32)
    y[::5, 1] = -1  # -1 marks a missing label
    np.savez(tmp_path / "tasks.npz", X=X, y=y)
    summary = train_in_process(
        tmp_path, "data=npz", f"data.source.path={tmp_path / 'tasks.npz'}", "model=logreg", *QUICK
    )
    assert summary["task"] == "multilabel" and summary["n_classes"] == 2


def test_reshape_errors_say_how_many_values_fit(tmp_path):
    cfg = compose("data=digits", "data.shape=[1,9,9]")
    from dlrunner.data import build_data

    with pytest.raises(ConfigError) as raised:
        build_data(cfg.data)
    assert raised.value.problems[0].key == "data.shape" and "64 values" in raised.value.problems[0].valid
