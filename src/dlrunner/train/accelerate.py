"""Device speed features and the decisions behind them, each with a CPU fallback (issue 7).

On CUDA: fused optimizer kernels, channels-last memory for 2-D convolutions, and training data
that does not fit on the device kept in pinned host memory and copied per mini-batch. The
decisions are plain functions of the settings, the device and the sizes, so they are tested on
any machine; on the CPU every one of them falls back to the plain path.
"""

from __future__ import annotations

import torch

AUTO = "auto"
DEVICE_MEMORY_SHARE = 0.5  # data may take at most this share of the device's free memory; the rest is for the model


def as_switch(value) -> bool | str:
    """true/false/auto as given in YAML or on the command line ("true", True, "auto")."""
    if isinstance(value, bool):
        return value
    text = str(value).lower()
    return {"true": True, "false": False}.get(text, text)


def wants_channels_last(setting, device: torch.device, input_shape: tuple, model: torch.nn.Module) -> bool:
    """Channels-last (NHWC) memory for 2-D convolutional models: ``auto`` turns it on for image
    inputs (C, H, W) on CUDA, where tensor-core convolutions want it; ``true`` forces it on any
    device; the CPU's convolutions are tuned for the default layout, so ``auto`` leaves it off there."""
    setting = as_switch(setting)
    has_conv2d = any(isinstance(m, torch.nn.Conv2d) for m in model.modules())
    if setting is False or len(input_shape) != 3 or not has_conv2d:
        return False
    return setting is True or device.type == "cuda"


def data_placement(setting, data_bytes: int, device: torch.device, free_bytes: int | None = None) -> str:
    """Where the training split lives: ``device`` (mini-batches are index slices there) or ``host``
    (pinned CPU memory, each mini-batch copied asynchronously). ``auto`` keeps it on the device
    while it takes at most half the device's free memory; on the CPU the two are the same place."""
    setting = as_switch(setting)
    if device.type != "cuda" or setting is True:
        return "device"
    if setting is False:
        return "host"
    if free_bytes is None:
        free_bytes = torch.cuda.mem_get_info(device)[0]
    return "device" if data_bytes <= DEVICE_MEMORY_SHARE * free_bytes else "host"


def place_data(data, device: torch.device, setting) -> str:
    """Move the data's splits to ``device``; the training split stays in pinned host memory when
    it does not fit (see ``data_placement``). Returns the placement chosen."""
    X, Y = data.splits["train"]
    placement = data_placement(setting, X.nbytes + Y.nbytes, device)
    for name, (x, y) in data.splits.items():
        if name == "train" and placement == "host":
            data.splits[name] = (x.cpu().pin_memory(), y.cpu().pin_memory())
        else:
            data.splits[name] = (x.to(device), y.to(device))
    return placement  # (per-example weights stay on the CPU, where the metrics that use them are computed)


def to_channels_last(model: torch.nn.Module, data) -> None:
    """Channels-last weights and 4-D data (index slices of a channels-last tensor stay channels-last)."""
    model.to(memory_format=torch.channels_last)
    for name, (x, y) in data.splits.items():
        if x.ndim == 4:
            data.splits[name] = (x.contiguous(memory_format=torch.channels_last), y)


def model_device(model: torch.nn.Module) -> torch.device:
    parameter = next(model.parameters(), None)
    return parameter.device if parameter is not None else torch.device("cpu")
