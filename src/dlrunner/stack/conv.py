"""A 1-D convolution of K trials at once as batched matrix products, for stacks on the CPU.

oneDNN runs the small convolutions of the course's 1-D CNNs slowly: the MNIST-1D CNN's three
layers take ~2 ms of a 2.7 ms solo step, and a stack that loops over its trials saves nothing
(vmap's grouped convolution is slower still). Written as one ``bmm`` per layer for the whole stack,
K = 16 such trials take ~12 ms per step on 2 cores against ~37 ms for their 16 convolutions one by
one (microbenchmark of forward and backward, 2026-12-04).

How: a stride-s convolution is a stride-1 convolution over groups of s neighbouring positions. The
padded input (K, N, L, C) -- positions first, channels last -- is viewed, without a copy, as
(K, N*Lq, s*C): row j holds positions js .. js+s-1. A filter of f taps spans T = ceil(f/s) such rows,
so one product with a (s*C, T*O) matrix of the taps (zeros past f) gives every row's contribution to
T outputs, and output l is the sum of row l's first block, row l+1's second, ... : T shifted adds.
The backward pass is two more products. Outputs keep the positions-first memory layout (a
(K, N, O, L) tensor with channels as its fastest axis), which the next layer reads without a copy.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.autograd.function import once_differentiable


def supports(module: nn.Module) -> bool:
    """The Conv1d modules this handles: plain (no groups, no dilation), zero padding given as a number."""
    return (type(module) is nn.Conv1d and module.groups == 1 and module.dilation == (1,)
            and module.padding_mode == "zeros" and isinstance(module.padding, tuple))


def stacked_conv1d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, stride: int, padding: int) -> torch.Tensor:
    """``F.conv1d`` for each trial: x (K, N, C, L), weight (K, O, C, f), bias (K, O) -> (K, N, O, L_out)."""
    return _StackedConv1d.apply(x, weight, bias, stride, padding)


class _StackedConv1d(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, s, p):
        K, N, C, L = x.shape
        O, f = weight.shape[1], weight.shape[3]
        L_out = (L + 2 * p - f) // s + 1
        T = -(-f // s)  # rows of s positions that one filter spans
        Lq = L_out + T - 1  # rows needed: the last output reads rows L_out-1 .. L_out+T-2
        n = max(0, min(L, Lq * s - p))  # input positions any output reads (a stride can leave the last ones unread)
        padded = x.new_empty(K, N, Lq * s, C)
        padded[:, :, :p].zero_()
        padded[:, :, p + n:].zero_()
        padded[:, :, p:p + n] = x[..., :n].transpose(2, 3)
        rows = padded.view(K, N * Lq, s * C)
        taps = _tap_matrix(weight, s, T)
        Y = torch.bmm(rows, taps).view(K, N, Lq, T, O)
        out = Y[:, :, :L_out, 0] + bias[:, None, None, :] if bias is not None else Y[:, :, :L_out, 0].contiguous()
        for t in range(1, T):
            out += Y[:, :, t:t + L_out, t]
        ctx.save_for_backward(rows, taps)
        ctx.sizes = (K, N, C, L, O, f, s, p, T, Lq, L_out, n)
        return out.transpose(2, 3)

    @staticmethod
    @once_differentiable  # its backward is not itself differentiable: say so rather than be wrong
    def backward(ctx, grad):
        rows, taps = ctx.saved_tensors
        K, N, C, L, O, f, s, p, T, Lq, L_out, n = ctx.sizes
        grad_out = grad.transpose(2, 3)  # (K, N, L_out, O)
        grad_Y = grad.new_empty(K, N, Lq, T, O)  # output l's gradient goes to row l+t's block t
        for t in range(T):
            grad_Y[:, :, :t, t].zero_()
            grad_Y[:, :, t:t + L_out, t] = grad_out
            grad_Y[:, :, t + L_out:, t].zero_()
        grad_Y = grad_Y.view(K, N * Lq, T * O)
        grad_x = grad_weight = grad_bias = None
        if ctx.needs_input_grad[0]:
            grad_rows = torch.bmm(grad_Y, taps.transpose(1, 2)).view(K, N, Lq * s, C)
            if n == L:
                grad_x = grad_rows[:, :, p:p + L].transpose(2, 3)
            else:
                grad_x = grad.new_zeros(K, N, L, C)
                grad_x[:, :, :n] = grad_rows[:, :, p:p + n]
                grad_x = grad_x.transpose(2, 3)
        if ctx.needs_input_grad[1]:
            grad_taps = torch.bmm(rows.transpose(1, 2), grad_Y)  # (K, s*C, T*O)
            grad_weight = grad_taps.view(K, s, C, T, O).permute(0, 4, 2, 3, 1).reshape(K, O, C, T * s)[..., :f]
        if ctx.needs_input_grad[2]:
            grad_bias = grad_out.sum((1, 2))
        return grad_x, grad_weight, grad_bias, None, None


def _tap_matrix(weight: torch.Tensor, s: int, T: int) -> torch.Tensor:
    """(K, O, C, f) filters as (K, s*C, T*O): entry [r*C + c, t*O + o] is tap t*s + r of filter o on channel c."""
    K, O, C, f = weight.shape
    taps = weight.permute(0, 3, 2, 1)  # (K, f, C, O)
    if T * s > f:
        taps = torch.cat([taps, taps.new_zeros(K, T * s - f, C, O)], 1)
    return taps.reshape(K, T, s, C, O).permute(0, 2, 3, 1, 4).reshape(K, s * C, T * O)
