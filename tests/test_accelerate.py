"""Device speed features (issue 7): the decisions are tested here on the CPU; the CUDA paths they
pick are exercised when a GPU machine runs scripts/bench_train.py (BENCHMARKS.md)."""

from __future__ import annotations

import json

import pytest
import torch

from conftest import run_dlrun
from dlrunner.train.accelerate import data_placement, optimizer_speed_flags, place_data, wants_channels_last


class ParameterOn:
    """Stands in for a parameter tensor on another device: the choice reads only these two facts."""

    def __init__(self, cuda: bool, floating: bool = True):
        self.is_cuda = cuda
        self._floating = floating

    def is_floating_point(self):
        return self._floating


def test_fused_optimizers_only_when_every_parameter_is_a_float_on_cuda():
    on_gpu = [{"params": [ParameterOn(True), ParameterOn(True)]}]
    assert optimizer_speed_flags(torch.optim.Adam, on_gpu) == {"fused": True}
    assert optimizer_speed_flags(torch.optim.SGD, on_gpu) == {"fused": True}
    assert optimizer_speed_flags(torch.optim.RMSprop, on_gpu) == {"foreach": None}  # no fused kernel: multi-tensor
    mixed = [{"params": [ParameterOn(True)]}, {"params": [ParameterOn(False)]}]
    assert optimizer_speed_flags(torch.optim.Adam, mixed) == {"foreach": None}
    assert optimizer_speed_flags(torch.optim.Adam, [{"params": [ParameterOn(True, floating=False)]}]) == {"foreach": None}
    cpu = [{"params": list(torch.nn.Linear(3, 2).parameters())}]
    assert optimizer_speed_flags(torch.optim.Adam, cpu) == {"foreach": None}
    assert optimizer_speed_flags(torch.optim.Adam, [{"params": []}]) == {"foreach": None}


CONV = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.Flatten())
MLP = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
CUDA, CPU = torch.device("cuda"), torch.device("cpu")


@pytest.mark.parametrize("setting, device, shape, model, expected", [
    ("auto", CUDA, (1, 8, 8), CONV, True),  # images into a 2-D CNN on CUDA
    ("auto", CPU, (1, 8, 8), CONV, False),  # the CPU's convolutions prefer the default layout
    ("auto", CUDA, (64,), MLP, False),  # flat data
    ("auto", CUDA, (1, 8, 8), MLP, False),  # images, but no convolution
    ("auto", CUDA, (1, 40), CONV, False),  # a 1-D signal
    (True, CPU, (1, 8, 8), CONV, True),  # forced
    ("true", CPU, (1, 8, 8), CONV, True),
    (True, CUDA, (64,), MLP, False),  # nothing to apply it to
    (False, CUDA, (1, 8, 8), CONV, False),
    ("false", CUDA, (1, 8, 8), CONV, False),
])
def test_channels_last_choice(setting, device, shape, model, expected):
    assert wants_channels_last(setting, device, shape, model) is expected


GiB = 2**30


@pytest.mark.parametrize("setting, device, data_bytes, free, expected", [
    ("auto", CUDA, 1 * GiB, 10 * GiB, "device"),
    ("auto", CUDA, 5 * GiB, 10 * GiB, "device"),  # exactly half the free memory still fits
    ("auto", CUDA, 6 * GiB, 10 * GiB, "host"),  # too big: pinned host memory, copied per batch
    (True, CUDA, 60 * GiB, 10 * GiB, "device"),  # forced (the user knows better)
    (False, CUDA, 1, 10 * GiB, "host"),
    ("auto", CPU, 60 * GiB, None, "device"),  # on the CPU host and device are one place
    (False, CPU, 1, None, "device"),
])
def test_data_placement_choice(setting, device, data_bytes, free, expected):
    assert data_placement(setting, data_bytes, device, free) == expected


def test_place_data_on_the_cpu_keeps_every_split_in_place():
    from types import SimpleNamespace

    X = torch.randn(10, 3)
    data = SimpleNamespace(splits={"train": (X, torch.zeros(10)), "dev": (torch.randn(4, 3), torch.zeros(4))}, weights=None)
    assert place_data(data, CPU, "auto") == "device"
    assert data.splits["train"][0] is X


def test_channels_last_training_matches_the_default_layout(tmp_path):
    """trainer.channels_last=true on the CPU (the path CUDA takes by default) trains the same model to
    the same numbers as the default layout, up to floating-point reordering."""
    errors = {}
    for setting in ("true", "false"):
        out = tmp_path / setting
        result = run_dlrun("train", "model=cnn", "data=digits_images", "trainer=quick", "trainer.steps=60",
                           f"trainer.channels_last={setting}", f"hydra.run.dir={out}", cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        errors[setting] = json.loads((out / "summary.json").read_text())["metrics"]
    assert errors["true"]["dev"]["loss"] == pytest.approx(errors["false"]["dev"]["loss"], rel=1e-3)
    assert errors["true"]["train"]["error"] == pytest.approx(errors["false"]["train"]["error"], abs=0.01)


def test_bad_speed_settings_are_refused(tmp_path):
    result = run_dlrun("train", "trainer.channels_last=sometimes", f"hydra.run.dir={tmp_path / 'x'}", cwd=tmp_path)
    assert result.returncode == 2
    assert "trainer.channels_last" in result.stderr + result.stdout and "sometimes" in result.stderr + result.stdout
    assert not (tmp_path / "x" / "summary.json").exists()
