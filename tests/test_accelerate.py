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

    def __init__(self, device: str, floating: bool = True):
        self.device = torch.device(device)
        self._floating = floating

    def is_floating_point(self):
        return self._floating


def test_fused_optimizers_when_every_parameter_is_a_float_on_one_device_with_fused_kernels():
    on_gpu = [{"params": [ParameterOn("cuda"), ParameterOn("cuda")]}]
    assert optimizer_speed_flags(torch.optim.Adam, on_gpu) == {"fused": True}
    assert optimizer_speed_flags(torch.optim.SGD, on_gpu) == {"fused": True}
    assert optimizer_speed_flags(torch.optim.RMSprop, on_gpu) == {"foreach": None}  # no fused kernel: multi-tensor
    mixed = [{"params": [ParameterOn("cuda")]}, {"params": [ParameterOn("cpu")]}]
    assert optimizer_speed_flags(torch.optim.Adam, mixed) == {"foreach": None}
    assert optimizer_speed_flags(torch.optim.Adam, [{"params": [ParameterOn("cuda", floating=False)]}]) == {"foreach": None}
    assert optimizer_speed_flags(torch.optim.Adam, [{"params": []}]) == {"foreach": None}
    assert optimizer_speed_flags(torch.optim.Adam, [{"params": [ParameterOn("meta")]}]) == {"foreach": None}  # no kernels there


def test_fused_optimizers_on_the_cpu_where_torch_has_the_kernels():
    from dlrunner.train.accelerate import fused_kernel_devices

    cpu = [{"params": list(torch.nn.Linear(3, 2).parameters())}]
    expected = {"fused": True} if "cpu" in fused_kernel_devices() else {"foreach": None}
    assert optimizer_speed_flags(torch.optim.Adam, cpu) == expected
    assert optimizer_speed_flags(torch.optim.RMSprop, cpu) == {"foreach": None}


def test_dlrun_builds_fused_adam_on_the_cpu_and_it_trains(tmp_path):
    from dlrunner.optim import build_adam, build_sgd
    from dlrunner.train.accelerate import fused_kernel_devices

    if "cpu" not in fused_kernel_devices():
        pytest.skip(f"torch {torch.__version__} has no fused CPU optimizer kernels (torch >= 2.4 has)")
    model = torch.nn.Linear(4, 1)
    for build in (build_adam, build_sgd):
        optimizer = build(model.parameters(), lr=0.1)
        assert optimizer.param_groups[0]["fused"] is True
    x = torch.randn(64, 4)
    y = x @ torch.tensor([1.0, -2.0, 3.0, 0.5]) + 1
    optimizer = build_adam(model.parameters(), lr=0.1)
    for _ in range(300):
        optimizer.zero_grad(set_to_none=True)
        loss = ((model(x).squeeze(1) - y) ** 2).mean()
        loss.backward()
        optimizer.step()
    assert loss.item() < 1e-3  # the fused kernel takes real Adam steps


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
