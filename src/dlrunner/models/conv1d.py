"""1-D convolutions as matrix products on the CPU, for one model or for K trials of a stack at once.

oneDNN runs the small 1-D convolutions of the course's CNNs slowly: the MNIST-1D CNN's second
layer (25 channels over 19 positions, f = 3, stride 2, batch 100) takes ~0.9-1.0 ms forward and
backward for ~5.6 M multiply-adds, which MKL's matrix products do in ~0.3 ms. Written as matrix
products (im2col), that layer takes ~0.65 ms and a solo MNIST-1D CNN step ~25% less time; a stack of
K trials' convolutions is the same as K batched products (``torch.bmm``), one call per layer for all
of them (measured on 2 cores; the numbers are in the history of BENCHMARKS.md).

How: with the input's positions first and channels last, (N, L, C), zero-padded along the
positions, every output position's receptive field is one contiguous run of f*C numbers, starting
s*C numbers after the previous one. So the patches matrix (N*L_out, f*C) is one strided copy, and

    forward:   Y = patches @ W^T + b                 W as (O, f*C)
    backward:  dW = dY^T @ patches,  db = sum of dY,  d(patches) = dY @ W,
               added back onto the input positions it came from (one index_add_: col2im).

The output (N, O, L_out) is laid out in memory as (N, L_out, O): channels last again, so the next
layer (after an activation, which keeps the layout) takes its rows without transposing a copy.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

# Where the products beat oneDNN's convolution in a solo run: measured forward and backward on this
# project's 2-core AMD EPYC, 1 thread, batch 100, over channels 1-64, lengths 40-1000, f 3-7
# (BENCHMARKS.md). Small problems, where oneDNN's fixed cost per call dominates, gained 1.1-1.2x at
# any shape; larger ones gained 1.1-2.5x where all of the other three limits hold, and lost
# (0.4-0.95x) in most cases outside them.
SMALL_PATCHES = 32 << 10  # numbers in the patches matrix: at most this, the products pay at any shape
MAX_TAPS = 5  # longer filters: f times the input copied into patches, f strided adds back
MIN_FIELD = 16  # f*C: with fewer numbers per receptive field the products' inner dimension is too short
MAX_PATCHES = 1 << 20  # numbers (4 MB in float32): larger patches, copied and multiplied, fall out of the caches


def supports(module: nn.Module) -> bool:
    """The Conv1d modules the products handle: plain ones (no groups, no dilation, zero padding by a
    number), not a subclass with a forward of its own."""
    return (
        type(module) in (nn.Conv1d, MatmulConv1d)
        and module.groups == 1
        and module.dilation == (1,)
        and module.padding_mode == "zeros"
        and isinstance(module.padding, tuple)
    )


def output_length(length: int, f: int, stride: int, padding: int) -> int:
    return (length + 2 * padding - f) // stride + 1


def conv1d_matmul(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, stride: int, padding: int
) -> torch.Tensor:
    """``F.conv1d`` as matrix products: x (N, C, L), weight (O, C, f), bias (O,) -> (N, O, L_out);
    or K trials at once, each with its own filters: x (K, N, C, L), weight (K, O, C, f), bias (K, O)
    -> (K, N, O, L_out)."""
    return _Conv1dMatmul.apply(x, weight, bias, stride, padding)


class MatmulConv1d(nn.Conv1d):
    """``nn.Conv1d`` (same parameters, same state_dict, same results up to float rounding) whose
    forward and backward on the CPU are matrix products where they are faster than oneDNN's
    convolution: in training, for the sizes below. Anywhere else (CUDA, autocast, no-grad
    evaluation, long filters, large inputs) it is nn.Conv1d."""

    shown_as = "Conv1d"  # what summaries and checks call it: to the user it is an nn.Conv1d

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._products_pay(x):
            return conv1d_matmul(x, self.weight, self.bias, self.stride[0], self.padding[0])
        return super().forward(x)

    def _products_pay(self, x: torch.Tensor) -> bool:
        if x.device.type != "cpu" or x.dim() != 3 or x.shape[1] != self.in_channels or not supports(self):
            return False  # a wrong channel count gets nn.Conv1d's own message
        if _cpu_autocast() or _compiling():
            return False  # autocast casts inside products; torch.compile traces the built-in convolution
        if not torch.is_grad_enabled():
            # Evaluation: the products' forward alone gains less (oneDNN is slowest in the backward
            # pass), and a large evaluation batch through a network that mixes both kinds of layers
            # pays for copies between the two memory layouts: the MNIST-1D CNN's 4000 training
            # examples took ~20 against ~12 ms with every layer on oneDNN.
            return False
        channels, f = self.in_channels, self.kernel_size[0]
        positions = output_length(x.shape[2], f, self.stride[0], self.padding[0])
        patches = x.shape[0] * positions * f * channels
        if patches <= 0:
            return False  # no output positions (nn.Conv1d says why), or an empty batch
        return patches <= SMALL_PATCHES or (f <= MAX_TAPS and f * channels >= MIN_FIELD and patches <= MAX_PATCHES)


def _cpu_autocast() -> bool:
    try:
        return torch.is_autocast_enabled("cpu")
    except TypeError:  # torch < 2.4 takes no device
        return torch.is_autocast_cpu_enabled()


def _compiling() -> bool:
    compiler = getattr(torch, "compiler", None)
    return bool(getattr(compiler, "is_compiling", lambda: False)())


@functools.cache
def _tap_positions(L_out: int, f: int, s: int, device: torch.device) -> torch.Tensor:
    """The padded input position of each row of the patches matrix, (output position, tap) in order."""
    return (torch.arange(L_out)[:, None] * s + torch.arange(f)).reshape(-1).to(device)


class _Conv1dMatmul(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, s, p):
        solo = x.dim() == 3  # one model: K = 1 of the stacked form, as views
        if solo:
            x, weight = x.unsqueeze(0), weight.unsqueeze(0)
            bias = None if bias is None else bias.unsqueeze(0)
        K, N, C, L = x.shape
        out_ch, f = weight.shape[1], weight.shape[3]
        Lp = L + 2 * p
        L_out = (Lp - f) // s + 1
        padded = x.transpose(2, 3)  # (K, N, L, C): a free view when x came out of this function
        padded = (F.pad(padded, (0, 0, p, p)) if p else padded).contiguous()  # row-major, as as_strided reads it
        patches = padded.as_strided((K, N, L_out, f, C), (N * Lp * C, Lp * C, s * C, C, 1)).reshape(K, N * L_out, f * C)
        filters = weight.transpose(2, 3).reshape(K, out_ch, f * C)  # tap-major, like the patches' rows
        # The output is a tensor of its own (not a view of the product), so that in-place
        # operations on it (ReLU(inplace=True)) work as on nn.Conv1d's; its memory is channels last.
        shape = (N, out_ch, L_out) if solo else (K, N, out_ch, L_out)
        strides = (L_out * out_ch, 1, out_ch) if solo else (N * L_out * out_ch, L_out * out_ch, 1, out_ch)
        out = torch.empty_strided(shape, strides, dtype=x.dtype, device=x.device)
        rows = out.transpose(-1, -2).view(K, N * L_out, out_ch)
        if bias is None:
            torch.bmm(patches, filters.transpose(1, 2), out=rows)
        else:
            torch.baddbmm(bias.unsqueeze(1), patches, filters.transpose(1, 2), out=rows)
        ctx.save_for_backward(patches, filters)
        ctx.sizes = (solo, K, N, C, L, out_ch, f, s, p, Lp, L_out)
        # The input's gradient goes back in the input's own layout: a layer before this one that
        # wrote channels first (oneDNN's convolution, a pooling) gets its gradient so, and the ReLU
        # between them does not mix two layouts (~90 against ~20 us for its backward pass).
        ctx.channels_last = x.transpose(2, 3).is_contiguous()
        return out

    @staticmethod
    @once_differentiable  # its backward is not itself differentiable: say so rather than be wrong
    def backward(ctx, grad):
        patches, filters = ctx.saved_tensors
        solo, K, N, C, L, out_ch, f, s, p, Lp, L_out = ctx.sizes
        # free when channels last
        grad_out = (grad.unsqueeze(0) if solo else grad).transpose(2, 3).reshape(K, N * L_out, out_ch)
        grad_x = grad_weight = grad_bias = None
        if ctx.needs_input_grad[0]:
            grad_patches = torch.bmm(grad_out, filters).view(K, N, L_out * f, C)
            grad_padded = grad.new_zeros(K, N, Lp, C)
            # col2im: tap t of output l came from padded position l*s + t; one index_add_ over the
            # patches' rows (~15 and ~27 against ~38 and ~49 us for f taps added one by one, MNIST-1D CNN)
            grad_padded.index_add_(2, _tap_positions(L_out, f, s, grad.device), grad_patches)
            grad_x = grad_padded[:, :, p : p + L].transpose(2, 3)
            if not ctx.channels_last:
                grad_x = grad_x.contiguous()
        if ctx.needs_input_grad[1]:
            # MKL makes a short, wide product much faster than a tall, thin one: 35 against 90 us for 25 x 5
            if f * C < out_ch:
                grad_filters = torch.bmm(patches.transpose(1, 2), grad_out).transpose(1, 2)
            else:
                grad_filters = torch.bmm(grad_out.transpose(1, 2), patches)
            grad_weight = grad_filters.reshape(K, out_ch, f, C).transpose(2, 3).contiguous()
        if ctx.needs_input_grad[2]:
            grad_bias = grad_out.sum(1)
        if solo:
            grad_x, grad_weight, grad_bias = (None if g is None else g[0] for g in (grad_x, grad_weight, grad_bias))
        return grad_x, grad_weight, grad_bias, None, None
