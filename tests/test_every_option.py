"""Every option of every config group composes and trains for a couple of steps.

The list comes from the config folders themselves (what `dlrun ls` shows), so a new YAML file is
tested the day it is added.
"""

from __future__ import annotations

import numpy as np
import pytest

from dlrunner.config.catalog import options
from helpers import read_metrics, train_in_process

ALL_OPTIONS = [(group, option.name) for group, group_options in options().items() for option in group_options]
SHORT = ("trainer.steps=2", "trainer.epochs=null", "trainer.eval_every=1", "trainer.device=cpu")


TORCHVISION_SETS = ("mnist", "fashion_mnist", "cifar10")
# torchvision's sets need torchvision and its files on disk: their loading is tested in
# test_images_augment.py (with torchvision) and their message without it below.
TRAINABLE = [(g, o) for g, o in ALL_OPTIONS if not (g == "data" and o in TORCHVISION_SETS)]


def _user_data(tmp_path, option: str) -> str:
    """The options that read the user's files need a small one: make it, return its path."""
    rng = np.random.default_rng(0)
    if option == "csv":
        path = tmp_path / "data.csv"
        rows = ["x1,x2,label"] + [f"{i % 7},{i % 5},{i % 3}" for i in range(60)]
        path.write_text("\n".join(rows) + "\n")
    elif option == "npz":
        path = tmp_path / "data.npz"
        np.savez(path, X=rng.normal(size=(60, 3, 2)), y=np.arange(60) % 2)
    elif option == "npz_images":
        path = tmp_path / "images.npz"
        np.savez(path, X=rng.integers(0, 256, size=(60, 12, 12, 3), dtype=np.uint8), y=np.arange(60) % 3)
    else:  # image_folder
        from PIL import Image

        path = tmp_path / "images"
        for i in range(30):
            (path / f"class{i % 3}").mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 256, size=(10, 10, 3), dtype=np.uint8)).save(
                path / f"class{i % 3}" / f"{i}.png"
            )
    return str(path)


def _data_for_model(option: str) -> str:
    """Data of the shape a model option reads: images for CNNs, sequences for RNNs, else a small 2-D set."""
    from helpers import compose

    target = compose(f"model={option}").model._target_.rpartition(".")[2]
    if target == "build_rnn":
        return "data=mnist1d_sequence"
    if target in ("build_logreg", "build_mlp"):
        return "data=moons"
    return "data=digits_images"


def test_the_catalog_has_every_group_the_issue_names():
    groups = {group for group, _ in ALL_OPTIONS}
    assert {"data", "model", "optimizer", "schedule", "regularization", "trainer"} <= groups
    assert {
        "digits",
        "breast_cancer",
        "mnist1d",
        "flower",
        "moons",
        "circles",
        "xor",
        "gaussians",
        "spiral",
        "csv",
        "npz",
    } <= {name for group, name in ALL_OPTIONS if group == "data"}


# The zoo's big networks train two steps for seconds each: the slow tier (tests/conftest.py).
HEAVY_MODELS = {"alexnet", "vgg16", "vgg19", "resnet34", "resnet50", "googlenet", "mobilenet"}
TRAINABLE_PARAMS = [
    pytest.param(g, o, id=f"{g}={o}", marks=[pytest.mark.slow] if g == "model" and o in HEAVY_MODELS else [])
    for g, o in TRAINABLE
]


@pytest.mark.parametrize("group, option", TRAINABLE_PARAMS)
def test_option_composes_and_trains(tmp_path, group, option):
    overrides = [f"{group}={option}"]
    if group == "data" and option in ("csv", "npz", "npz_images", "image_folder"):
        overrides.append(f"data.source.path={_user_data(tmp_path, option)}")
    if group == "model":
        overrides.append(_data_for_model(option))
    elif group not in ("data", "experiment"):
        overrides.append("data=moons")  # small and fast; the data options are tested against the default model
    summary = train_in_process(tmp_path, *overrides, *SHORT)
    assert summary["status"] == "completed"
    assert summary["timing"]["steps"] == 2
    records = read_metrics(tmp_path / "run")
    assert [r["step"] for r in records] == [1, 2]
    assert np.isfinite(records[-1]["train_loss"])
    assert (tmp_path / "run" / "checkpoints" / "last.pt").is_file()


@pytest.mark.parametrize("option", TORCHVISION_SETS)
def test_torchvision_sets_without_torchvision_say_what_to_install(tmp_path, option, monkeypatch):
    import sys

    from dlrunner.errors import ConfigError

    monkeypatch.setitem(sys.modules, "torchvision", None)  # as on a machine without it
    monkeypatch.setitem(sys.modules, "torchvision.datasets", None)
    with pytest.raises(ConfigError) as raised:
        train_in_process(tmp_path, f"data={option}", *SHORT)
    assert (
        raised.value.problems[0].key == "data.source.name"
        and "pip install torchvision" in raised.value.problems[0].valid
    )
    assert not (tmp_path / "run").exists()
