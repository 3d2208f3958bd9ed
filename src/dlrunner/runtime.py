"""Where and how fast things run: the device, the CPU threads, the optimizer kernels, the evaluation
chunk. Shared by a solo run, stacked trials and the diagnostics; it imports only torch and the
models' counting helpers."""

from __future__ import annotations

import inspect

import torch

from dlrunner.errors import ConfigError, Problem
from dlrunner.internals import fused_kernel_devices
from dlrunner.models import count_parameters
from dlrunner.models.summary import multiply_adds

EVAL_BATCH = 8192  # examples per no-grad forward pass during evaluation
TORCH_DEFAULT_THREADS = torch.get_num_threads()  # before anything here changes it


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(Problem("trainer.device", name, "this machine has no CUDA device; use auto or cpu"))
    return device


def cpu_threads(work_per_example: int, batch_size: int) -> int:
    """trainer.threads=null on the CPU: one thread for small work, torch's default for large.
    ``work_per_example``: the multiply-adds of one example's forward pass, or the parameter count,
    which is close to it for an MLP (see ``work_per_example``).

    Below ~2e7 multiply-adds per step, splitting each small matmul across threads costs more than
    it saves. Measured on 2 cores: the 2x100 MNIST-1D MLP (15k params, batch 100) ran 2270
    steps/s on 1 thread vs 1250 on 2; 79k params at batch 256, 373 vs 380; 1.1M params at batch
    256, 44 vs 78. A stack of 16 MNIST-1D CNNs (16 x 32k multiply-adds, batch 100): 12 ms per step
    on 2 threads, 20 ms on 1.
    """
    return 1 if work_per_example * batch_size < 2e7 else TORCH_DEFAULT_THREADS


def cpu_threads_for(model: torch.nn.Module, input_shape: tuple, examples_per_step: int) -> int:
    """``cpu_threads`` for ``model`` at this many examples per step (a stack: K x batch). When the
    parameters alone make the work large, the forward pass that counts multiply-adds is skipped:
    for a ResNet at 224 x 224 it would be start-up time spent to learn nothing."""
    if cpu_threads(count_parameters(model), examples_per_step) > 1:
        return TORCH_DEFAULT_THREADS
    return cpu_threads(work_per_example(model, input_shape), examples_per_step)


def work_per_example(model: torch.nn.Module, input_shape: tuple) -> int:
    """Multiply-adds per example (a convolution's are many times its parameters), or the parameter
    count where it is larger (an RNN reuses its weights at every step, which this count leaves out)."""
    return max(count_parameters(model), multiply_adds(model, input_shape))


def optimizer_speed_flags(optimizer_class, param_groups) -> dict:
    """``fused=True`` when the optimizer has a fused kernel (one pass over every parameter per
    step) for the device its parameters are on -- CUDA and, since torch 2.4, the CPU -- and every
    parameter is a floating tensor there; otherwise ``foreach=None``, letting torch pick its
    multi-tensor implementation where it can.

    On the CPU this is what makes dlrun faster than a hand-written loop with the default Adam:
    measured on 2 cores, the MNIST-1D MLP ran ~1.5x the steps per second with fused Adam (1700 vs
    1150) and the 1-D CNN ~1.2x (BENCHMARKS.md)."""
    groups = list(param_groups)  # a list of group dicts, or of parameters (one group)
    params = [p for g in groups for p in (g["params"] if isinstance(g, dict) else [g])]
    devices = {p.device.type for p in params}
    fusable = len(devices) == 1 and devices <= fused_kernel_devices() and all(p.is_floating_point() for p in params)
    if fusable and "fused" in inspect.signature(optimizer_class.__init__).parameters:
        return {"fused": True}
    return {"foreach": None}
