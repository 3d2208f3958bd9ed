"""Data augmentation: random changes to each training mini-batch (SPEC B7, F15).

Applied on the training device to torch tensors, one batch at a time, and never to dev or test
data: augmentation is a regulariser of training, while dev/test must measure the real inputs.
Every change is vectorised over the batch (no Python loop over examples) and draws its randomness
from the generator it is given, so a run (and a resumed run) repeats the same draws.

Example shapes (without the batch axis) follow the CNN layout: (F,) flat features, (C, L) signals,
(C, H, W) images, (C, D, H, W) volumes. The geometric changes (flip, crop, rotation) and the colour
shift need a channel axis, so flat features must be given a shape with ``data.shape``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from dlrunner.errors import ConfigError, Problem


def build_augmenter(
    hflip: bool = False,
    crop_padding: int = 0,
    rotation: float = 0.0,
    color_shift: float = 0.0,
    noise_std: float = 0.0,
    *,
    input_shape: tuple,
) -> Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None:
    """The augmentation function for examples of ``input_shape``, or None when every setting is off.

    Settings (the keys of ``data.augment``):
        hflip: mirror each example along its last axis with probability 1/2.
        crop_padding: pad the spatial axes by this many zeros on each side and cut back to the
            original size at a random offset per example (a random shift of up to p).
        rotation: rotate each 2-D image by an angle uniform in [-rotation, +rotation] degrees
            (bilinear; corners filled with zeros).
        color_shift: add N(0, color_shift^2) to each channel of each example (one offset per channel).
        noise_std: add N(0, noise_std^2) to every input value; works on any shape.

    Zeros are what the inputs' mean becomes after the runner's normalisation, so the padding of a
    crop or a rotation fills with an average pixel rather than an extreme one.
    """
    shape = tuple(int(v) for v in input_shape)
    settings = {
        "hflip": hflip,
        "crop_padding": crop_padding,
        "rotation": rotation,
        "color_shift": color_shift,
        "noise_std": noise_std,
    }
    problems = _check_settings(settings, shape)
    if problems:
        raise ConfigError(problems)
    if not any(settings.values()):
        return None  # nothing to do: the training loop skips augmentation entirely
    return Augmenter(shape, bool(hflip), int(crop_padding), float(rotation), float(color_shift), float(noise_std))


def _check_settings(settings: dict, shape: tuple) -> list[Problem]:
    """Every problem with the settings at once, so the user can fix them together."""
    problems = []
    for name, value in settings.items():
        key = f"data.augment.{name}"
        if name == "hflip":
            if not isinstance(value, bool):
                problems.append(Problem(key, value, "true or false"))
        elif isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            problems.append(Problem(key, value, "a number >= 0 (0 turns it off)"))
        elif name == "crop_padding" and int(value) != value:
            problems.append(Problem(key, value, "a whole number of pixels >= 0 (0 turns it off)"))
        elif name == "rotation" and value > 180:
            problems.append(
                Problem(key, value, "an angle in degrees from 0 to 180 (each example turns by up to ± this much)")
            )
    if problems:
        return problems

    # Which settings fit this example shape.
    needs_axes = [name for name in ("hflip", "crop_padding", "rotation", "color_shift") if settings[name]]
    if len(shape) == 1:
        for name in needs_axes:
            hint = _shape_hint(shape[0], image=name == "rotation")
            problems.append(
                Problem(
                    f"data.augment.{name}",
                    settings[name],
                    f"needs examples with a channel axis and spatial axes, but each "
                    f"example is {shape[0]} flat features; set data.shape (e.g. {hint}), or turn it off",
                )
            )
    elif settings["rotation"] and len(shape) != 3:
        shown = "[" + ",".join(map(str, shape)) + "]"
        problems.append(
            Problem(
                "data.augment.rotation",
                settings["rotation"],
                f"rotation needs 2-D images (C,H,W); the examples have "
                f"shape {shown}" + (", signals (C,L)" if len(shape) == 2 else ""),
            )
        )
    return problems


def _shape_hint(n_features: int, image: bool) -> str:
    """A data.shape that would hold n flat features: a square gray or RGB image if one fits, else a
    1-channel signal (or, when only an image will do, the rule an image shape must follow)."""
    for channels in (1, 3):
        side = math.isqrt(n_features // channels)
        if n_features % channels == 0 and side > 1 and side * side * channels == n_features:
            return f"data.shape=[{channels},{side},{side}]"
    return (
        f"data.shape=[C,H,W] with C*H*W = {n_features}"
        if image
        else f"data.shape=[1,{n_features}] for a 1-channel signal"
    )


@dataclass(frozen=True)
class Augmenter:
    """Applies the configured changes in a fixed order: flip, crop, rotate (geometry), then colour
    shift and noise (values). Call it as ``augment(x, generator)``; it returns a new tensor."""

    input_shape: tuple
    hflip: bool = False
    crop_padding: int = 0
    rotation: float = 0.0
    color_shift: float = 0.0
    noise_std: float = 0.0

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        if tuple(x.shape[1:]) != self.input_shape:
            raise ValueError(f"augment: batch of examples {tuple(x.shape[1:])}, built for {self.input_shape}")
        if self.hflip:
            x = random_flip(x, generator)
        if self.crop_padding:
            x = random_crop(x, self.crop_padding, generator)
        if self.rotation:
            angles = (torch.rand(len(x), generator=generator, device=x.device) * 2 - 1) * self.rotation
            x = rotate(x, angles)
        if self.color_shift:
            offsets = torch.randn(
                (*x.shape[:2], *[1] * (x.dim() - 2)), generator=generator, device=x.device, dtype=x.dtype
            )
            x = x + offsets * self.color_shift  # one offset per example and channel
        if self.noise_std:
            x = x + torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype) * self.noise_std
        return x


def random_flip(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Each example mirrored along its last axis with probability 1/2 (a new tensor)."""
    flip = torch.rand(len(x), generator=generator, device=x.device) < 0.5
    return torch.where(flip.view(-1, *[1] * (x.dim() - 1)), x.flip(-1), x)


def random_crop(x: torch.Tensor, padding: int, generator: torch.Generator) -> torch.Tensor:
    """Pad every spatial axis (all axes after N and C) by ``padding`` zeros on each side, then cut
    out a window of the original size at a random offset per example: a random shift by up to
    ``padding`` along each axis, with zeros coming in from the edge."""
    n, channels, *spatial = x.shape
    padded = F.pad(x, [padding, padding] * len(spatial))  # F.pad pads the last len(spatial) axes
    offsets = torch.randint(0, 2 * padding + 1, (n, len(spatial)), generator=generator, device=x.device)
    # Advanced indexing with one index tensor per axis, each shaped to broadcast to (N, C, *spatial):
    # output[i, c, h, w] = padded[i, c, offset_h[i] + h, offset_w[i] + w].
    ndim = x.dim()
    index = [
        torch.arange(n, device=x.device).view(n, *[1] * (ndim - 1)),
        torch.arange(channels, device=x.device).view(1, channels, *[1] * (ndim - 2)),
    ]
    for axis, size in enumerate(spatial):
        view = [n] + [1] * (ndim - 1)
        view[2 + axis] = size
        index.append((offsets[:, axis, None] + torch.arange(size, device=x.device)).view(view))
    return padded[tuple(index)]


def rotate(x: torch.Tensor, degrees: torch.Tensor) -> torch.Tensor:
    """Rotate each image of a batch (N, C, H, W) about its centre by ``degrees[i]`` (bilinear, zero fill).

    affine_grid works in coordinates normalised to [-1, 1] on both axes; rotating there would
    shear a non-square image, so the rotation is conjugated with the pixel scale:
    theta = S^-1 R S with S = diag(W/2, H/2).
    """
    _n, _, height, width = x.shape
    radians = degrees.to(torch.float32) * (math.pi / 180)
    cos, sin = torch.cos(radians), torch.sin(radians)
    zero = torch.zeros_like(cos)
    theta = torch.stack(
        [torch.stack([cos, -sin * height / width, zero], dim=1), torch.stack([sin * width / height, cos, zero], dim=1)],
        dim=1,
    )  # (N, 2, 3)
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
