"""The named classic CNNs of course 4 (SPEC F8-F13): LeNet-5, AlexNet, VGG, ResNet, GoogLeNet, MobileNet.

Every builder takes its config keys plus two runtime arguments the data decides: ``input_shape``,
one example's shape channels first (C, H, W), and ``n_outputs`` (1 for binary, C for C classes).
Models return raw scores of shape (N, n_outputs); the loss applies sigmoid/softmax.

Each network has a canonical input size (32x32 for LeNet-5, 227 for AlexNet, 224 for the rest). The
course's datasets are often far smaller (8x8 digits, 28x28 MNIST, 32x32 CIFAR), where the published
stems would shrink the image to nothing. The builders then adapt the smallest possible part and say
so in ``model.notes`` (a list of sentences, empty when nothing changed), which the trainer prints.
"""

from __future__ import annotations

import math
from collections import OrderedDict

import torch
from torch import nn

from dlrunner.errors import ConfigError, Problem
from dlrunner.models.choices import ACTIVATIONS
from dlrunner.models.mlp import activation_layer

__all__ = [
    "BasicBlock",
    "Bottleneck",
    "DepthwiseSeparable",
    "Inception",
    "build_alexnet",
    "build_googlenet",
    "build_lenet5",
    "build_mobilenet",
    "build_resnet",
    "build_vgg",
]


# ---------------------------------------------------------------------------------------------
# Shared helpers
# ---------------------------------------------------------------------------------------------


def _image_shape(input_shape, model: str) -> tuple[int, int, int]:
    """(C, H, W) as ints, or a ConfigError telling the user how to reshape flat data."""
    shape = tuple(int(d) for d in input_shape)
    if len(shape) != 3 or min(shape) < 1:
        valid = (
            f"model={model} needs images (C, H, W); this data gives examples of shape {shape}: "
            f"set data.shape, e.g. data.shape={_suggest_shape(shape)}"
        )
        raise ConfigError(Problem("data.shape", list(shape), valid))
    return shape


def _suggest_shape(shape: tuple[int, ...]) -> str:
    """A plausible (C, H, W) for flat data: 64 -> [1,8,8], 784 -> [1,28,28], 3072 -> [3,32,32]."""
    n = math.prod(shape) if shape else 0
    for channels in (1, 3):
        side = math.isqrt(n // channels) if n else 0
        if side > 1 and channels * side * side == n:
            return f"[{channels},{side},{side}]"
    return "[1,8,8]"


def _validate(checks: list[tuple[bool, str, object, str]]) -> None:
    """Raise one ConfigError carrying every failed (ok, key, value, valid) check."""
    problems = [Problem(key, value, valid) for ok, key, value, valid in checks if not ok]
    if problems:
        raise ConfigError(problems)


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _dropout_check(dropout) -> tuple[bool, str, object, str]:
    return (_is_number(dropout) and 0 <= dropout < 1, "model.dropout", dropout, "a drop probability in [0, 1)")


def _width_check(width) -> tuple[bool, str, object, str]:
    return (_is_number(width) and width > 0, "model.width", width, "a positive channel multiplier, e.g. 0.25 or 1.0")


def _fc_units_check(fc_units) -> tuple[bool, str, object, str]:
    return (_is_int(fc_units) and fc_units > 0, "model.fc_units", fc_units, "a positive integer, e.g. 4096")


def _scaled(channels: int, width: float) -> int:
    """Channel count times the width multiplier, at least 1."""
    return max(1, round(channels * width))


def _out(size: int, kernel: int, stride: int = 1, padding: int = 0) -> int:
    """Output size of a conv or pool: floor((n + 2p - f) / s) + 1 (SPEC F3)."""
    return (size + 2 * padding - kernel) // stride + 1


def _note(name: str, canonical: str, h: int, w: int, changes: list[str]) -> list[str]:
    if not changes:
        return []
    return [f"{name} expects {canonical} inputs; for {h}x{w}: " + "; ".join(changes) + "."]


def _adaptive_pool_note(size: tuple[int, int], side: int, n_features: int) -> str:
    return (
        f"the final {size[0]}x{size[1]} map is average-pooled adaptively to {side}x{side} "
        f"so the classifier keeps its {n_features} inputs"
    )


def _skipped_pools_note(skipped: int, total: int, already: str) -> str:
    verb = "is" if skipped == 1 else "are"
    return f"{skipped} of its {total} max pools {verb} skipped (the map is already {already})"


def _conv_bn(in_ch: int, out_ch: int, kernel: int, stride: int = 1, padding: int = 0) -> nn.Sequential:
    """Conv (no bias: batch norm's beta replaces it, SPEC D6) + BN + ReLU."""
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, kernel, stride, padding, bias=False), nn.BatchNorm2d(out_ch), nn.ReLU()
    )


def _kaiming_init(model: nn.Module) -> None:
    """He init for ReLU convs (SPEC B11), gamma 1 and beta 0 for batch norm; linears keep torch's default."""
    for layer in model.modules():
        if isinstance(layer, nn.Conv2d):
            nn.init.kaiming_normal_(layer.weight, mode="fan_out", nonlinearity="relu")
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
        elif isinstance(layer, nn.BatchNorm2d):
            nn.init.ones_(layer.weight)
            nn.init.zeros_(layer.bias)


def _finish(model: nn.Module, notes: list[str]) -> nn.Module:
    model.notes = notes
    return model


# ---------------------------------------------------------------------------------------------
# LeNet-5 (SPEC F8)
# ---------------------------------------------------------------------------------------------


def build_lenet5(activation: str = "tanh", pooling: str = "avg", *, input_shape, n_outputs: int) -> nn.Module:
    """LeNet-5 (LeCun et al. 1998), SPEC F8.

    32x32x1 -> conv 6@5x5 valid -> pool 2/2 -> conv 16@5x5 valid -> pool 2/2 -> flatten 400 -> fc 120
    -> fc 84 -> n_outputs. 61,706 parameters at (1, 32, 32) with 10 outputs (the course's "~60k").

    Smaller inputs: a conv whose input is below 32x32 (conv1) or below 5x5 (conv2) uses 'same'
    padding, the classic MNIST variant (28x28 -> 28 -> 14 -> 10 -> 5, exactly 400 features); a pool
    whose input is below 2x2 is skipped; a final map other than 5x5 is average-pooled adaptively to
    5x5 so the 400-120-84 classifier stays. Any channel count works.

    Args:
        activation: sigmoid, tanh (the paper's era), relu, leaky_relu or linear.
        pooling: avg (as in the course) or max.
    """
    c, h, w = _image_shape(input_shape, "lenet5")
    _validate(
        [
            (activation in ACTIVATIONS, "model.activation", activation, f"one of {list(ACTIVATIONS)}"),
            (pooling in ("avg", "max"), "model.pooling", pooling, "avg or max"),
        ]
    )
    pool = nn.AvgPool2d if pooling == "avg" else nn.MaxPool2d
    changes: list[str] = []
    layers: list[nn.Module] = []
    size = (h, w)
    for i, (in_ch, out_ch) in enumerate([(c, 6), (6, 16)], start=1):
        # conv1 pads below the canonical 32x32 so small digits keep their borders; conv2 pads only
        # when a valid 5x5 would not fit at all.
        pad = 2 if min(size) < (32 if i == 1 else 5) else 0
        if pad:
            changes.append(f"conv{i} uses 'same' padding")
        layers += [nn.Conv2d(in_ch, out_ch, 5, padding=pad), activation_layer(activation, 0.01)]
        size = tuple(_out(s, 5, 1, pad) for s in size)
        if min(size) >= 2:
            layers.append(pool(2, 2))
            size = tuple(_out(s, 2, 2) for s in size)
        else:
            changes.append(f"pool{i} is skipped (the map is already {size[0]}x{size[1]})")
    if size != (5, 5):
        layers.append(nn.AdaptiveAvgPool2d((5, 5)))
        changes.append(_adaptive_pool_note(size, 5, 400))
    classifier = nn.Sequential(
        nn.Flatten(),
        nn.Linear(16 * 5 * 5, 120), activation_layer(activation, 0.01),
        nn.Linear(120, 84), activation_layer(activation, 0.01),
        nn.Linear(84, n_outputs),
    )  # fmt: skip
    model = nn.Sequential(OrderedDict(features=nn.Sequential(*layers), classifier=classifier))
    return _finish(model, _note("LeNet-5", "32x32", h, w, changes))


# ---------------------------------------------------------------------------------------------
# AlexNet (SPEC F9)
# ---------------------------------------------------------------------------------------------


def build_alexnet(dropout: float = 0.5, fc_units: int = 4096, *, input_shape, n_outputs: int) -> nn.Module:
    """AlexNet as drawn in the course (Krizhevsky et al. 2012, single tower), SPEC F9.

    227x227x3 -> 96@11x11/4 -> maxpool 3/2 -> 256@5x5 same -> maxpool 3/2 -> 384@3x3 -> 384@3x3
    -> 256@3x3 -> maxpool 3/2 -> 6x6x256 = 9216 -> fc 4096 -> fc 4096 -> n_outputs; ReLU everywhere,
    dropout before both hidden fc layers, no channel grouping, no LRN.
    62,378,344 parameters at (3, 227, 227) with 1000 outputs (the course's "~60M").

    Other sizes: the final map is average-pooled adaptively to 6x6 (so the 9216-input classifier
    stays). Below 64x64 the 11x11 stride-4 stem would leave almost nothing, so it becomes a 3x3
    stride-1 conv; a max pool whose input is below 3x3 is skipped.
    """
    c, h, w = _image_shape(input_shape, "alexnet")
    _validate([_dropout_check(dropout), _fc_units_check(fc_units)])
    changes: list[str] = []
    if min(h, w) < 64:
        layers: list[nn.Module] = [nn.Conv2d(c, 96, 3, 1, 1), nn.ReLU()]
        size = (h, w)
        changes.append("the 11x11 stride-4 first conv becomes a 3x3 stride-1 conv")
    else:
        layers = [nn.Conv2d(c, 96, 11, 4), nn.ReLU()]
        size = (_out(h, 11, 4), _out(w, 11, 4))
    skipped = 0

    def max_pool() -> None:
        nonlocal size, skipped
        if min(size) >= 3:
            layers.append(nn.MaxPool2d(3, 2))
            size = tuple(_out(s, 3, 2) for s in size)
        else:
            skipped += 1

    max_pool()
    layers += [nn.Conv2d(96, 256, 5, padding=2), nn.ReLU()]
    max_pool()
    layers += [nn.Conv2d(256, 384, 3, padding=1), nn.ReLU()]
    layers += [nn.Conv2d(384, 384, 3, padding=1), nn.ReLU()]
    layers += [nn.Conv2d(384, 256, 3, padding=1), nn.ReLU()]
    max_pool()
    if skipped:
        changes.append(_skipped_pools_note(skipped, 3, "below 3x3"))
    if size != (6, 6):
        layers.append(nn.AdaptiveAvgPool2d((6, 6)))
        changes.append(_adaptive_pool_note(size, 6, 9216))
    classifier = nn.Sequential(
        nn.Flatten(),
        nn.Dropout(dropout), nn.Linear(256 * 6 * 6, fc_units), nn.ReLU(),
        nn.Dropout(dropout), nn.Linear(fc_units, fc_units), nn.ReLU(),
        nn.Linear(fc_units, n_outputs),
    )  # fmt: skip
    model = nn.Sequential(OrderedDict(features=nn.Sequential(*layers), classifier=classifier))
    _kaiming_init(model)
    return _finish(model, _note("AlexNet", "227x227", h, w, changes))


# ---------------------------------------------------------------------------------------------
# VGG-16 / VGG-19 (SPEC F10)
# ---------------------------------------------------------------------------------------------

_VGG_STAGES = {16: (2, 2, 3, 3, 3), 19: (2, 2, 4, 4, 4)}  # convs per stage
_VGG_CHANNELS = (64, 128, 256, 512, 512)


def build_vgg(
    depth: int = 16,
    batch_norm: bool = False,
    fc_units: int = 4096,
    dropout: float = 0.5,
    width: float = 1.0,
    *,
    input_shape,
    n_outputs: int,
) -> nn.Module:
    """VGG-16 or VGG-19 (Simonyan & Zisserman 2014, configurations D and E), SPEC F10.

    224x224x3; five stages of conv 3x3 s1 'same' + ReLU, each ended by max pool 2/2, with
    64 -> 128 -> 256 -> 512 -> 512 channels; 7x7x512 -> fc 4096 -> fc 4096 -> n_outputs.
    138,357,544 parameters (depth 16) and 143,667,240 (depth 19) at (3, 224, 224), 1000 outputs.

    Args:
        batch_norm: BN after every conv (the later "vgg_bn" variant; conv biases kept as torchvision does).
        width: multiplies every conv's channel count, for fast small experiments.

    Small inputs: a max pool whose input is already 1x1 is skipped, and the classifier takes the
    final map pooled adaptively to min(7, size) per side (e.g. 512 features at 32x32, not 25088).
    """
    c, h, w = _image_shape(input_shape, "vgg")
    _validate([
        (depth in _VGG_STAGES, "model.depth", depth, "16 or 19"),
        (isinstance(batch_norm, bool), "model.batch_norm", batch_norm, "true or false"),
        _fc_units_check(fc_units), _dropout_check(dropout), _width_check(width),
    ])  # fmt: skip
    changes: list[str] = []
    layers: list[nn.Module] = []
    in_ch, size, skipped = c, (h, w), 0
    for n_convs, channels in zip(_VGG_STAGES[depth], _VGG_CHANNELS):
        out_ch = _scaled(channels, width)
        for _ in range(n_convs):
            layers.append(nn.Conv2d(in_ch, out_ch, 3, padding=1))
            layers += [nn.BatchNorm2d(out_ch), nn.ReLU()] if batch_norm else [nn.ReLU()]
            in_ch = out_ch
        if min(size) >= 2:
            layers.append(nn.MaxPool2d(2, 2))
            size = tuple(_out(s, 2, 2) for s in size)
        else:
            skipped += 1
    if skipped:
        changes.append(_skipped_pools_note(skipped, 5, "1x1"))
    target = (min(7, size[0]), min(7, size[1]))
    if size != (7, 7):
        how = "as it is" if target == size else f"pooled adaptively to {target[0]}x{target[1]}"
        changes.append(
            f"the classifier takes the final {size[0]}x{size[1]} map {how} "
            f"({in_ch * target[0] * target[1]} features instead of 7x7x{in_ch} = {in_ch * 49})"
        )
    classifier = nn.Sequential(
        nn.Flatten(),
        nn.Linear(in_ch * target[0] * target[1], fc_units), nn.ReLU(), nn.Dropout(dropout),
        nn.Linear(fc_units, fc_units), nn.ReLU(), nn.Dropout(dropout),
        nn.Linear(fc_units, n_outputs),
    )  # fmt: skip
    model = nn.Sequential(
        OrderedDict(features=nn.Sequential(*layers), pool=nn.AdaptiveAvgPool2d(target), classifier=classifier)
    )
    _kaiming_init(model)
    return _finish(model, _note(f"VGG-{depth}", "224x224", h, w, changes))


# ---------------------------------------------------------------------------------------------
# ResNet-18 / 34 / 50 (SPEC F11)
# ---------------------------------------------------------------------------------------------


def _shortcut(in_ch: int, out_ch: int, stride: int) -> nn.Module:
    """Identity when shapes match; else the projection W_s a[l]: 1x1 conv (stride s) + BN (SPEC F11)."""
    if stride == 1 and in_ch == out_ch:
        return nn.Identity()
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride, bias=False), nn.BatchNorm2d(out_ch))


class BasicBlock(nn.Module):
    """Two 3x3 convs with a skip connection: a[l+2] = g(z[l+2] + a[l]) (ResNet-18/34, SPEC F11).

    Produces ``channels`` output channels; ``stride`` 2 on the first conv halves the map.
    """

    expansion = 1

    def __init__(self, in_channels: int, channels: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.shortcut = _shortcut(in_channels, channels, stride)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
        return self.relu(z + self.shortcut(x))  # the ReLU comes after the addition


class Bottleneck(nn.Module):
    """1x1 reduce -> 3x3 (stride here, as torchvision's "v1.5") -> 1x1 expand to 4x ``channels``,
    plus the skip connection (ResNet-50, SPEC F11-F12: the 1x1 convs keep the 3x3 cheap)."""

    expansion = 4

    def __init__(self, in_channels: int, channels: int, stride: int = 1):
        super().__init__()
        out_channels = channels * self.expansion
        self.conv1 = nn.Conv2d(in_channels, channels, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.conv3 = nn.Conv2d(channels, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.shortcut = _shortcut(in_channels, out_channels, stride)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.relu(self.bn1(self.conv1(x)))
        a = self.relu(self.bn2(self.conv2(a)))
        z = self.bn3(self.conv3(a))
        return self.relu(z + self.shortcut(x))


_RESNETS = {18: (BasicBlock, (2, 2, 2, 2)), 34: (BasicBlock, (3, 4, 6, 3)), 50: (Bottleneck, (3, 4, 6, 3))}


def build_resnet(depth: int = 18, width: int = 64, stem: str = "auto", *, input_shape, n_outputs: int) -> nn.Module:
    """ResNet-18/34 (basic blocks) or ResNet-50 (bottlenecks) in torchvision's layout (He et al. 2015), SPEC F11.

    224x224x3 -> [stem] -> 4 stages of blocks with width, 2x, 4x, 8x channels (x4 for bottlenecks),
    stride 2 at the start of stages 2-4 -> global average pool -> fc -> n_outputs.
    Parameters at (3, 224, 224), 1000 outputs: 11,689,512 (18), 21,797,672 (34), 25,557,032 (50).

    Args:
        width: channels of the first stage (64 canonical); smaller is faster for experiments.
        stem: imagenet (7x7/2 conv + BN + ReLU + max pool 3/2), small (3x3 stride-1 conv + BN + ReLU,
            no max pool: the CIFAR-style stem), or auto (small when min(H, W) < 64, with a note).
    """
    c, h, w = _image_shape(input_shape, "resnet")
    _validate([
        (depth in _RESNETS, "model.depth", depth, "18, 34 or 50"),
        (_is_int(width) and width > 0, "model.width", width, "a positive integer (first-stage channels), e.g. 64"),
        (stem in ("auto", "imagenet", "small"), "model.stem", stem, "auto, imagenet or small"),
    ])  # fmt: skip
    changes: list[str] = []
    if stem == "auto":
        stem = "small" if min(h, w) < 64 else "imagenet"
        if stem == "small":
            changes.append(
                "the stem is a 3x3 stride-1 conv without max pool (CIFAR-style) instead of "
                "the 7x7 stride-2 conv and max pool, which shrink the image 4x"
            )
    if stem == "imagenet":
        stem_layers = [nn.Conv2d(c, width, 7, 2, 3, bias=False), nn.BatchNorm2d(width), nn.ReLU()]
        stem_layers.append(nn.MaxPool2d(3, 2, 1))
    else:
        stem_layers = [nn.Conv2d(c, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU()]
    block, counts = _RESNETS[depth]
    stages: OrderedDict[str, nn.Module] = OrderedDict(stem=nn.Sequential(*stem_layers))
    in_ch = width
    for i, n_blocks in enumerate(counts):
        channels = width * 2**i
        blocks = []
        for j in range(n_blocks):
            blocks.append(block(in_ch, channels, stride=2 if i > 0 and j == 0 else 1))
            in_ch = channels * block.expansion
        stages[f"layer{i + 1}"] = nn.Sequential(*blocks)
    stages["pool"] = nn.AdaptiveAvgPool2d(1)  # global average pool: works at any input size
    stages["flatten"] = nn.Flatten()
    stages["fc"] = nn.Linear(in_ch, n_outputs)
    model = nn.Sequential(stages)
    _kaiming_init(model)
    return _finish(model, _note(f"ResNet-{depth}", "224x224", h, w, changes))


# ---------------------------------------------------------------------------------------------
# GoogLeNet / Inception v1 (SPEC F12-F13)
# ---------------------------------------------------------------------------------------------


class Inception(nn.Module):
    """An Inception module (SPEC F13): four branches concatenated along channels, all keeping H x W.

    1x1 conv (c1) | 1x1 reduce (c3_reduce) -> 3x3 (c3) | 1x1 reduce (c5_reduce) -> 5x5 (c5)
    | 3x3 max pool stride 1 -> 1x1 projection (pool_proj). The 1x1 bottlenecks cut the multiplies of
    the big convs roughly tenfold (SPEC F12). Every conv is followed by batch norm and ReLU.
    Output channels: c1 + c3 + c5 + pool_proj.
    """

    def __init__(self, in_channels: int, c1: int, c3_reduce: int, c3: int, c5_reduce: int, c5: int, pool_proj: int):
        super().__init__()
        self.branch1 = _conv_bn(in_channels, c1, 1)
        self.branch3 = nn.Sequential(_conv_bn(in_channels, c3_reduce, 1), _conv_bn(c3_reduce, c3, 3, padding=1))
        self.branch5 = nn.Sequential(_conv_bn(in_channels, c5_reduce, 1), _conv_bn(c5_reduce, c5, 5, padding=2))
        self.branch_pool = nn.Sequential(nn.MaxPool2d(3, 1, 1), _conv_bn(in_channels, pool_proj, 1))
        self.out_channels = c1 + c3 + c5 + pool_proj

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch1(x), self.branch3(x), self.branch5(x), self.branch_pool(x)], dim=1)


# Szegedy et al. 2014, Table 1: c1, c3_reduce, c3, c5_reduce, c5, pool_proj per module.
_INCEPTIONS = {
    "3a": (64, 96, 128, 16, 32, 32),
    "3b": (128, 128, 192, 32, 96, 64),
    "4a": (192, 96, 208, 16, 48, 64),
    "4b": (160, 112, 224, 24, 64, 64),
    "4c": (128, 128, 256, 24, 64, 64),
    "4d": (112, 144, 288, 32, 64, 64),
    "4e": (256, 160, 320, 32, 128, 128),
    "5a": (256, 160, 320, 32, 128, 128),
    "5b": (384, 192, 384, 48, 128, 128),
}


class _AuxHead(nn.Sequential):
    """A side classifier (the paper's: avg pool 5x5/3 -> 1x1 conv 128 -> fc 1024 -> dropout 0.7 -> fc).
    The pool is adaptive to 4x4 (what 5x5/3 gives at the canonical 14x14) so any input size works."""

    def __init__(self, in_channels: int, n_outputs: int, width: float):
        conv_ch, fc_ch = _scaled(128, width), _scaled(1024, width)
        super().__init__(
            nn.AdaptiveAvgPool2d(4), _conv_bn(in_channels, conv_ch, 1), nn.Flatten(),
            nn.Linear(conv_ch * 16, fc_ch), nn.ReLU(), nn.Dropout(0.7), nn.Linear(fc_ch, n_outputs),
        )  # fmt: skip


class GoogLeNet(nn.Module):
    """See ``build_googlenet``. In training mode with aux heads, forward returns (main, aux1, aux2)."""

    def __init__(self, stem: nn.Module, width: float, dropout: float, n_outputs: int, aux_heads: bool):
        super().__init__()
        ch = {name: tuple(_scaled(v, width) for v in row) for name, row in _INCEPTIONS.items()}

        def inception(name: str, in_ch: int) -> Inception:
            return Inception(in_ch, *ch[name])

        def pool() -> nn.Module:
            return nn.MaxPool2d(3, 2, 1)  # 3x3/2 with padding 1: ceil(n/2), never below 1x1

        self.stem = stem
        i3a = inception("3a", _scaled(192, width))
        i3b = inception("3b", i3a.out_channels)
        self.stage3 = nn.Sequential(i3a, i3b, pool())
        self.inception4a = inception("4a", i3b.out_channels)
        i4b = inception("4b", self.inception4a.out_channels)
        i4c = inception("4c", i4b.out_channels)
        i4d = inception("4d", i4c.out_channels)
        self.stage4bcd = nn.Sequential(i4b, i4c, i4d)
        i4e = inception("4e", i4d.out_channels)
        i5a = inception("5a", i4e.out_channels)
        i5b = inception("5b", i5a.out_channels)
        self.stage4e5 = nn.Sequential(i4e, pool(), i5a, i5b)
        # The side heads are registered before the main head so that the output layer stays the
        # last layer with parameters (transfer learning and summaries look for it there).
        self.aux1 = _AuxHead(self.inception4a.out_channels, n_outputs, width) if aux_heads else None
        self.aux2 = _AuxHead(i4d.out_channels, n_outputs, width) if aux_heads else None
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(i5b.out_channels, n_outputs)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.inception4a(self.stage3(self.stem(x)))
        use_aux = self.aux1 is not None and self.training  # side heads only help training
        aux1 = self.aux1(x) if use_aux else None
        x = self.stage4bcd(x)
        aux2 = self.aux2(x) if use_aux else None
        logits = self.head(self.stage4e5(x))
        return (logits, aux1, aux2) if use_aux else logits


def build_googlenet(
    aux_heads: bool = False, width: float = 1.0, dropout: float = 0.4, *, input_shape, n_outputs: int
) -> nn.Module:
    """GoogLeNet / Inception v1 (Szegedy et al. 2014, Table 1), SPEC F12-F13.

    224x224x3 -> conv 7x7/2 64 -> max pool 3/2 -> conv 1x1 64 -> conv 3x3 192 -> max pool 3/2
    -> inception 3a, 3b -> max pool -> 4a..4e -> max pool -> 5a, 5b -> global avg pool (7x7)
    -> dropout 0.4 -> fc n_outputs. The 5x5 branches are real 5x5 convs (torchvision uses 3x3).
    Departures from the paper: batch norm after every conv (conv biases dropped), no LRN.
    Measured: 7,005,832 parameters at (3, 224, 224), 1000 outputs, no aux heads; 13,385,816 with
    them. The paper's Table 1 sums to ~6.8M: 14,560 of the difference is batch norm's gamma/beta,
    the rest is the table itself, whose rows are smaller than its own channel columns give (e.g.
    conv1 is listed as 2.7K where a 7x7x3x64 conv has 9.4K weights).

    Args:
        aux_heads: add the two side classifiers after 4a and 4d; in training mode forward then
            returns (main_logits, aux1_logits, aux2_logits) and the trainer adds 0.3 x their losses;
            in eval mode only main_logits.
        width: multiplies every channel count, for fast small experiments.

    Small inputs (min(H, W) < 64): the stem keeps its convs but uses a 3x3 stride-1 first conv and
    drops its two max pools; the inner pools halve with padding (ceil(n/2)), so no map vanishes.
    """
    c, h, w = _image_shape(input_shape, "googlenet")
    _validate([
        (isinstance(aux_heads, bool), "model.aux_heads", aux_heads, "true or false"),
        _width_check(width), _dropout_check(dropout),
    ])  # fmt: skip
    changes: list[str] = []
    c64, c192 = _scaled(64, width), _scaled(192, width)
    if min(h, w) < 64:
        stem = nn.Sequential(_conv_bn(c, c64, 3, 1, 1), _conv_bn(c64, c64, 1), _conv_bn(c64, c192, 3, padding=1))
        changes.append(
            "the stem's 7x7 stride-2 conv and two max pools, which shrink the image 8x, "
            "become a 3x3 stride-1 conv without pooling"
        )
    else:
        stem = nn.Sequential(
            _conv_bn(c, c64, 7, 2, 3), nn.MaxPool2d(3, 2, 1),
            _conv_bn(c64, c64, 1), _conv_bn(c64, c192, 3, padding=1), nn.MaxPool2d(3, 2, 1),
        )  # fmt: skip
    model = GoogLeNet(stem, width, dropout, n_outputs, aux_heads)
    _kaiming_init(model)
    return _finish(model, _note("GoogLeNet", "224x224", h, w, changes))


# ---------------------------------------------------------------------------------------------
# MobileNet v1 (depthwise-separable convolutions)
# ---------------------------------------------------------------------------------------------


class DepthwiseSeparable(nn.Sequential):
    """Depthwise 3x3 conv (one filter per channel, groups=in_ch) + BN + ReLU, then pointwise 1x1 conv
    mixing channels + BN + ReLU: about 1/out_ch + 1/9 of a full 3x3 conv's multiplies."""

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1):
        super().__init__(
            nn.Conv2d(in_ch, in_ch, 3, stride, 1, groups=in_ch, bias=False), nn.BatchNorm2d(in_ch), nn.ReLU(),
            nn.Conv2d(in_ch, out_ch, 1, bias=False), nn.BatchNorm2d(out_ch), nn.ReLU(),
        )  # fmt: skip


# Howard et al. 2017, Table 1: (output channels, stride) of the 13 depthwise-separable blocks.
_MOBILENET = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2)] + [(512, 1)] * 5 + [(1024, 2), (1024, 1)]


def build_mobilenet(width: float = 1.0, *, input_shape, n_outputs: int) -> nn.Module:
    """MobileNet v1 (Howard et al. 2017), the depthwise-separable network of course 4.

    224x224x3 -> conv 3x3/2 32 + BN + ReLU -> 13 depthwise-separable blocks (64 ... 1024 channels,
    five stride-2 layers in all: 224 -> 7) -> global avg pool -> fc n_outputs.
    4,231,976 parameters at (3, 224, 224), 1000 outputs, width 1.0.

    Args:
        width: the paper's width multiplier alpha, applied to every channel count.

    Small inputs: only as many stride-2 layers as keep the final map at least 2x2 stay strided
    (the earliest become stride 1, as CIFAR variants do), e.g. 4 at 32x32, 2 at 8x8.
    """
    c, h, w = _image_shape(input_shape, "mobilenet")
    _validate([_width_check(width)])
    strides = [2] + [s for _, s in _MOBILENET]  # the stem's stride first
    n_halvings = min(5, max(0, int(math.log2(min(h, w))) - 1))
    to_drop = 5 - n_halvings
    changes: list[str] = []
    for i, s in enumerate(strides):
        if s == 2 and to_drop:
            strides[i], to_drop = 1, to_drop - 1
    size = (h, w)
    for s in strides:
        size = tuple(_out(n, 3, s, 1) for n in size)
    if n_halvings < 5:
        changes.append(
            f"only the last {n_halvings} of its 5 stride-2 layers downsample (the earlier ones use stride 1), "
            f"so the final map is {size[0]}x{size[1]} instead of vanishing"
        )
    in_ch = _scaled(32, width)
    layers: list[nn.Module] = [_conv_bn(c, in_ch, 3, strides[0], 1)]
    for (out_ch, _), stride in zip(_MOBILENET, strides[1:]):
        out_ch = _scaled(out_ch, width)
        layers.append(DepthwiseSeparable(in_ch, out_ch, stride))
        in_ch = out_ch
    model = nn.Sequential(
        OrderedDict(
            features=nn.Sequential(*layers),
            pool=nn.AdaptiveAvgPool2d(1),
            flatten=nn.Flatten(),
            fc=nn.Linear(in_ch, n_outputs),
        )
    )
    _kaiming_init(model)
    return _finish(model, _note("MobileNet", "224x224", h, w, changes))
