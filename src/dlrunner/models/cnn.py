"""A convolutional network described in YAML as a list of blocks (SPEC F2-F7, F21).

    blocks:
      - {type: conv, filters: 6, f: 5, stride: 1, padding: valid}
      - relu
      - {type: pool, mode: max, f: 2, stride: 2}
      - flatten
      - {type: fc, units: 84}
      - relu

A block is a mapping with a ``type`` or, for a block that needs no settings, just its name
(``relu``, ``batch_norm``, ``flatten``, ``max_pool`` ...). The output layer (n_outputs units) is
always added at the end, after a flatten if the blocks did not flatten. Convolutions are 1-D, 2-D
or 3-D according to the examples' shape: (C, L) signals, (C, H, W) images, (C, D, H, W) volumes.

Shapes are tracked with the course's formula, out = floor((n + 2p - f) / s) + 1, so a block that
does not fit (a 5x5 filter on a 4x4 map) is reported by its position in the list before any
training starts.
"""

from __future__ import annotations

import math
from typing import Any

from torch import nn

from dlrunner.errors import ConfigError, Problem
from dlrunner.models.choices import ACTIVATIONS, INITS
from dlrunner.models.conv1d import MatmulConv1d
from dlrunner.models.mlp import activation_layer, initialise

BLOCK_TYPES = ("conv", "separable", "pool", "global_pool", "batch_norm", "activation", "dropout", "flatten", "fc")
SHORT_NAMES = {  # a bare name in the list stands for this block
    **{name: {"type": "activation", "name": name} for name in ACTIVATIONS},
    "batch_norm": {"type": "batch_norm"},
    "flatten": {"type": "flatten"},
    "max_pool": {"type": "pool", "mode": "max"},
    "avg_pool": {"type": "pool", "mode": "avg"},
    "global_pool": {"type": "global_pool"},
}
SETTINGS = {  # every block type's settings and their defaults
    "conv": {"filters": None, "f": 3, "stride": 1, "padding": "same", "bias": "auto"},
    "separable": {"filters": None, "f": 3, "stride": 1, "padding": "same"},
    "pool": {"mode": "max", "f": 2, "stride": None},
    "global_pool": {"mode": "avg"},
    "batch_norm": {},
    "activation": {"name": "relu", "leaky_slope": 0.01},
    "dropout": {"keep_prob": 0.5},
    "flatten": {},
    "fc": {"units": None},
}


def conv_output_size(n: int, f: int, stride: int = 1, padding: int = 0) -> int:
    """The course's output size of a convolution or pooling: floor((n + 2p - f) / s) + 1 (SPEC F3)."""
    return (n + 2 * padding - f) // stride + 1


def conv_parameters(f: int, channels_in: int, filters: int, dims: int = 2) -> int:
    """f^dims * n_c[l-1] weights per filter plus one bias: 10 filters of 3x3x3 -> 280 (SPEC F4)."""
    return (f**dims * channels_in + 1) * filters


def build_cnn(
    blocks: list,
    init: str = "he",
    *,
    input_shape: tuple,
    n_outputs: int,
) -> nn.Sequential:
    """A CNN from a list of blocks, for (C, L), (C, H, W) or (C, D, H, W) examples.

    Block types and their settings (defaults in brackets):
      conv: filters, f [3], stride [1], padding [same] (same | valid | a number), bias [auto: none
        right before batch_norm, whose beta replaces it (SPEC D6), as in the MLP; else true]
      separable: a depthwise f x f convolution per channel, then a 1x1 to ``filters`` (MobileNet)
      pool: mode [max] (max | avg), f [2], stride [f]
      global_pool: mode [avg]: one number per channel
      batch_norm, activation (name [relu]; or just write relu, tanh, ...), dropout (keep_prob [0.5]),
      flatten, fc (units).

    Example (the MNIST-1D paper's CNN on (1, 40) signals):
        >>> build_cnn([{"type": "conv", "filters": 25, "f": 5, "stride": 2, "padding": 1}, "relu"],
        ...           input_shape=(1, 40), n_outputs=10)
    """
    shape = tuple(int(v) for v in input_shape)
    if len(shape) not in (2, 3, 4):
        raise ConfigError(
            Problem(
                "data.shape",
                list(shape),
                "a CNN needs examples of shape (C, L), (C, H, W) or (C, D, H, W); "
                "e.g. data.shape=[1,8,8] for the 8x8 digits or data.shape=[1,40] for MNIST-1D signals",
            )
        )
    if init not in INITS:
        raise ConfigError(Problem("model.init", init, f"one of {list(INITS)}"))
    if not isinstance(blocks, (list, tuple)):
        raise ConfigError(
            Problem(
                "model.blocks", blocks, "a list of blocks, e.g. [{type: conv, filters: 8}, relu, max_pool, flatten]"
            )
        )
    dims = len(shape) - 1
    modules: list[nn.Module] = []
    for index, raw in enumerate(blocks):
        key = f"model.blocks[{index}]"
        block = _settings(raw, key)
        if block["type"] == "conv" and block["bias"] == "auto":
            following = blocks[index + 1] if index + 1 < len(blocks) else None
            block["bias"] = _block_type(following) != "batch_norm"
        module, shape = _make_block(block, shape, dims, key)
        modules.append(module)
    if len(shape) > 1:
        modules.append(nn.Flatten())
    modules.append(nn.Linear(math.prod(shape), n_outputs))
    model = nn.Sequential(*modules)
    initialise(model, init)
    return model


def _settings(raw: Any, key: str) -> dict:
    """A block's settings with defaults filled in, or a ConfigError naming the block and what is valid."""
    if isinstance(raw, str):
        if raw not in SHORT_NAMES:
            raise ConfigError(
                Problem(
                    key, raw, f"a block name ({', '.join(SHORT_NAMES)}) or a mapping with type: {list(BLOCK_TYPES)}"
                )
            )
        raw = SHORT_NAMES[raw]
    if not isinstance(raw, dict) or raw.get("type") not in BLOCK_TYPES:
        found = raw.get("type") if isinstance(raw, dict) else raw
        raise ConfigError(
            Problem(f"{key}.type" if isinstance(raw, dict) else key, found, f"one of {list(BLOCK_TYPES)}")
        )
    kind = raw["type"]
    unknown = sorted(set(raw) - set(SETTINGS[kind]) - {"type"})
    if unknown:
        raise ConfigError(
            Problem(
                f"{key}.{unknown[0]}",
                raw[unknown[0]],
                f"not a setting of a {kind} block; valid: {sorted(SETTINGS[kind])}",
            )
        )
    block = {**SETTINGS[kind], **raw}
    missing = [name for name, value in block.items() if value is None and name != "stride"]
    if missing:
        raise ConfigError(Problem(f"{key}.{missing[0]}", None, f"required for a {kind} block (a whole number > 0)"))
    for name in ("filters", "f", "stride", "units"):
        value = block.get(name)
        if value is not None and not (isinstance(value, int) and not isinstance(value, bool) and value > 0):
            raise ConfigError(Problem(f"{key}.{name}", value, "a whole number > 0"))
    return block


def _block_type(raw: Any) -> str | None:
    """The type of a raw block entry (a bare name or a mapping), None when it has none."""
    if isinstance(raw, str):
        return SHORT_NAMES.get(raw, {}).get("type")
    return raw.get("type") if isinstance(raw, dict) else None


def _padding(block: dict, key: str) -> int:
    padding, f = block["padding"], block["f"]
    if padding == "valid":
        return 0
    if padding == "same":
        if f % 2 == 0:
            raise ConfigError(Problem(f"{key}.f", f, "same padding, p = (f-1)/2, needs an odd f (3, 5, 7, ...)"))
        return (f - 1) // 2
    if isinstance(padding, int) and not isinstance(padding, bool) and padding >= 0:
        return padding
    raise ConfigError(Problem(f"{key}.padding", padding, "same, valid, or a whole number >= 0"))


def _spatial(shape: tuple, f: int, stride: int, padding: int, key: str) -> tuple:
    """The output size of each spatial axis, or an error when the filter does not fit."""
    sizes = tuple(conv_output_size(n, f, stride, padding) for n in shape[1:])
    if min(sizes) < 1:
        raise ConfigError(
            Problem(
                key,
                f"f={f}, stride={stride}, padding={padding}",
                f"the feature map here is {'x'.join(map(str, shape[1:]))}, too small for this filter; "
                "use a smaller f, padding: same, or remove a pooling block before it",
            )
        )
    return sizes


_CONV = {1: MatmulConv1d, 2: nn.Conv2d, 3: nn.Conv3d}  # MatmulConv1d: nn.Conv1d, faster on the CPU
_BATCH_NORM = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d, 3: nn.BatchNorm3d}
_POOL = {
    ("max", 1): nn.MaxPool1d,
    ("max", 2): nn.MaxPool2d,
    ("max", 3): nn.MaxPool3d,
    ("avg", 1): nn.AvgPool1d,
    ("avg", 2): nn.AvgPool2d,
    ("avg", 3): nn.AvgPool3d,
}
_GLOBAL_POOL = {
    ("max", 1): nn.AdaptiveMaxPool1d,
    ("max", 2): nn.AdaptiveMaxPool2d,
    ("max", 3): nn.AdaptiveMaxPool3d,
    ("avg", 1): nn.AdaptiveAvgPool1d,
    ("avg", 2): nn.AdaptiveAvgPool2d,
    ("avg", 3): nn.AdaptiveAvgPool3d,
}


def _make_block(block: dict, shape: tuple, dims: int, key: str) -> tuple[nn.Module, tuple]:
    """The module for one block and the shape of its output (channels first, or (features,) once flat)."""
    kind = block["type"]
    flat = len(shape) == 1
    if flat and kind in ("conv", "separable", "pool", "global_pool"):
        raise ConfigError(
            Problem(
                f"{key}.type",
                kind,
                "comes after the network was flattened; put conv and pooling blocks before flatten/fc",
            )
        )
    if kind in ("conv", "separable"):
        padding = _padding(block, key)
        sizes = _spatial(shape, block["f"], block["stride"], padding, key)
        conv = _CONV[dims]
        if kind == "conv":
            module = conv(shape[0], block["filters"], block["f"], block["stride"], padding, bias=block["bias"])
        else:  # depthwise: one f x f filter per input channel; pointwise: 1x1 across channels
            module = nn.Sequential(
                conv(shape[0], shape[0], block["f"], block["stride"], padding, groups=shape[0]),
                conv(shape[0], block["filters"], 1),
            )
        return module, (block["filters"], *sizes)
    if kind == "pool":
        if block["mode"] not in ("max", "avg"):
            raise ConfigError(Problem(f"{key}.mode", block["mode"], "max or avg"))
        stride = block["stride"] or block["f"]
        sizes = _spatial(shape, block["f"], stride, 0, key)
        return _POOL[block["mode"], dims](block["f"], stride), (shape[0], *sizes)
    if kind == "global_pool":
        if block["mode"] not in ("max", "avg"):
            raise ConfigError(Problem(f"{key}.mode", block["mode"], "max or avg"))
        return nn.Sequential(_GLOBAL_POOL[block["mode"], dims](1), nn.Flatten()), (shape[0],)
    if kind == "batch_norm":
        return (nn.BatchNorm1d(shape[0]) if flat else _BATCH_NORM[dims](shape[0])), shape
    if kind == "activation":
        if block["name"] not in ACTIVATIONS:
            raise ConfigError(Problem(f"{key}.name", block["name"], f"one of {list(ACTIVATIONS)}"))
        return activation_layer(block["name"], block["leaky_slope"]), shape
    if kind == "dropout":
        keep = block["keep_prob"]
        if not (isinstance(keep, (int, float)) and 0 < keep <= 1):
            raise ConfigError(Problem(f"{key}.keep_prob", keep, "a keep probability in (0, 1]"))
        return nn.Dropout(1 - keep), shape  # inverted dropout, as the course's
    if kind == "flatten":
        return nn.Flatten(), (math.prod(shape),)
    # fc: a fully connected layer; flattens first when the input is still a feature map
    linear = nn.Linear(math.prod(shape), block["units"])
    return (linear if flat else nn.Sequential(nn.Flatten(), linear)), (block["units"],)
