"""Device speed features and the decisions behind them, each with a CPU fallback (issue 7).

On CUDA: fused optimizer kernels, channels-last memory for 2-D convolutions, and training data
that does not fit on the device kept in pinned host memory and copied per mini-batch. The
decisions are plain functions of the settings, the device and the sizes, so they are tested on
any machine; on the CPU every one of them falls back to the plain path.
"""

from __future__ import annotations

import sys

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


# ---- Start-up: torch.optim without importing torch._dynamo ----------------------------------------
# torch.optim imports torch._dynamo (sympy, torch.fx: ~1.2 s, half of what `dlrun train` took to start
# beyond `import torch`) for work that is a no-op outside torch.compile:
# - Optimizer.add_param_group, zero_grad, state_dict and load_state_dict are wrapped by
#   ``torch._disable_dynamo``, whose wrapper imports torch._dynamo on its first call to build the
#   not-compiled version of the function, and caches it on the function as ``__dynamo_disable``.
#   Run eagerly, that version is the function itself: caching the function skips the import.
# - ``step`` is wrapped by ``_use_grad_for_differentiable``, which imports torch._dynamo on every
#   call to place two graph breaks around the update and turns gradients off; ``eager_step`` calls
#   the update under no_grad itself.
# Both apply only while torch._dynamo is not imported: trainer.compile (or anything else that
# compiles) imports it first, and torch.optim then runs exactly as written.
DYNAMO_WRAPPED_METHODS = ("add_param_group", "zero_grad", "state_dict", "load_state_dict")


def spare_dynamo_import() -> bool:
    """Let torch.optim's optimizers be built, zeroed and saved without importing torch._dynamo.
    Call before building the optimizer; returns whether it applied (False once torch._dynamo is in)."""
    disable = getattr(torch, "_disable_dynamo", None)  # torch >= 2.1
    if "torch._dynamo" in sys.modules or disable is None:
        return False
    marker = disable(lambda: None).__code__  # the code of the wrapper torch._disable_dynamo makes
    for name in DYNAMO_WRAPPED_METHODS:
        wrapper = getattr(torch.optim.Optimizer, name, None)
        function = getattr(wrapper, "__wrapped__", None)
        if function is not None and wrapper.__code__ is marker:  # a torch that wraps differently keeps its own way
            setattr(function, "__dynamo_disable", function)
    return True


def restore_dynamo_wrappers() -> None:
    """Undo ``spare_dynamo_import`` before anything compiles (trainer.compile in a process that
    already trained without it, e.g. a sweep worker): torch.optim marks its functions again."""
    for name in DYNAMO_WRAPPED_METHODS:
        function = getattr(getattr(torch.optim.Optimizer, name, None), "__wrapped__", None)
        if function is not None and getattr(function, "__dynamo_disable", None) is function:
            delattr(function, "__dynamo_disable")


def eager_step(optimizer: torch.optim.Optimizer):
    """``optimizer.step`` as a function of no arguments; without torch.optim's graph-break wrapper
    (and its import of torch._dynamo) when nothing compiles and the optimizer has no step hooks,
    which that path would skip. Optimizers whose step is not wrapped so (``CourseMomentum``) keep theirs."""
    from torch.optim import optimizer as torch_optimizer

    hooks = [
        getattr(owner, name, None)
        for owner, name in (
            (torch_optimizer, "_global_optimizer_pre_hooks"),
            (torch_optimizer, "_global_optimizer_post_hooks"),
            (optimizer, "_optimizer_step_pre_hooks"),
            (optimizer, "_optimizer_step_post_hooks"),
        )
    ]
    use_grad = getattr(
        type(optimizer).step, "__wrapped__", None
    )  # under the profiler hook torch.optim puts on every step
    update = getattr(use_grad, "__wrapped__", None)
    wrap = getattr(torch_optimizer, "_use_grad_for_differentiable", None)
    if (
        "torch._dynamo" in sys.modules
        or update is None
        or wrap is None
        or use_grad.__code__ is not wrap(lambda: None).__code__
        or any(h is None or h for h in hooks)
        or optimizer.defaults.get("differentiable")
    ):
        return optimizer.step  # another torch, or something the wrappers do: the step as written

    def step():
        with torch.no_grad():  # what the wrapper does for a non-differentiable optimizer
            return update(optimizer)

    return _fused_adam_step(optimizer, step) or step


def eager_zero_grad(optimizer: torch.optim.Optimizer):
    """``optimizer.zero_grad(set_to_none=True)`` as a function of no arguments: the same
    ``p.grad = None`` for every parameter, without the profiler range torch.optim opens around it
    on every call (~50 us, 2% of a MNIST-1D CNN step). An optimizer with a zero_grad of its own keeps it."""
    if type(optimizer).zero_grad is not torch.optim.Optimizer.zero_grad:
        return lambda: optimizer.zero_grad(set_to_none=True)
    params = [p for group in optimizer.param_groups for p in group["params"]]

    def zero_grad():
        for p in params:
            p.grad = None

    return zero_grad


def _fused_adam_step(optimizer: torch.optim.Optimizer, torch_step):
    """For Adam and AdamW with ``fused=True``: the step as torch's fused kernel alone, the same
    calls torch.optim makes (add 1 to each step count, then one fused update per parameter list)
    without its per-step bookkeeping in Python (building the state lists, grouping the tensors by
    device and dtype again): 32 against 102 us for the MNIST-1D CNN's 8 tensors, ~4% of its step.
    ``torch_step`` takes any step this cannot: the first (torch creates the state), a parameter
    without a gradient, a torch without the kernel. None when the optimizer is not such an Adam."""
    kernels = {False: "_fused_adam_", True: "_fused_adamw_"}  # decoupled weight decay (AdamW) or not
    one_kind = len({(p.device, p.dtype) for group in optimizer.param_groups for p in group["params"]}) == 1
    if type(optimizer) not in (torch.optim.Adam, torch.optim.AdamW) or not one_kind:
        return None
    if not all(hasattr(torch, kernel) for kernel in kernels.values()):
        return None
    decoupled = type(optimizer) is torch.optim.AdamW

    def kernel_alone(group: dict) -> bool:  # settings torch's step handles in more ways than the plain kernel call
        return (
            group.get("fused")
            and not group.get("amsgrad")
            and not group.get("capturable")
            and not group.get("differentiable")
        )

    def step():
        updates = []
        for group in optimizer.param_groups:
            params = group["params"]
            if not params:
                continue  # an empty group (e.g. no parameter without L2): nothing to update, and the kernel refuses []
            grads = [p.grad for p in params]
            states = [optimizer.state.get(p) for p in params]
            if (
                not kernel_alone(group)
                or any(g is None or g.is_sparse for g in grads)
                or not all(states)
                or hasattr(optimizer, "grad_scale")
            ):
                return torch_step()
            updates.append((group, params, grads, states))
        with torch.no_grad():
            for group, params, grads, states in updates:
                steps = [state["step"] for state in states]
                torch._foreach_add_(steps, 1)
                beta1, beta2 = group["betas"]
                getattr(torch, kernels[group.get("decoupled_weight_decay", decoupled)])(
                    params,
                    grads,
                    [state["exp_avg"] for state in states],
                    [state["exp_avg_sq"] for state in states],
                    [],
                    steps,
                    lr=group["lr"],
                    beta1=float(beta1),
                    beta2=float(beta2),
                    weight_decay=group["weight_decay"],
                    eps=group["eps"],
                    amsgrad=False,
                    maximize=group["maximize"],
                )

    return step


# ---- Memory: freed tensors stay in the heap (glibc) ---------------------------------------------
# A stack's per-step tensors (K trials' activations, gradients: 0.5-1 MB each for K = 16 MLPs) are
# above glibc's threshold for handing freed memory back to the kernel, so every step mapped them
# afresh: ~190 page faults per step in a K = 16 MLP stack's step microbenchmark, ~20% of the step
# there (5.7 against 4.6 ms, alternating processes); in whole stacks 32-78 faults per step fell to
# 15-20, a gain within this VM's noise (BENCHMARKS.md). A solo run's tensors are small enough not to
# notice (1 fault per step for the MLP, 22 for the 1-D CNN). This is what PyTorch's CPU tuning
# guides do with jemalloc/tcmalloc via LD_PRELOAD, asked of glibc in-process.
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's <malloc.h>
KEEP_FREED_BYTES = 1 << 30  # up to this much freed memory stays resident in the process instead of going back
MMAP_THRESHOLD_BYTES = 32 << 20  # glibc's largest: bigger blocks are still mapped for each use


def keep_freed_memory() -> bool:
    """Ask glibc to keep freed blocks of up to 32 MB for the next allocation instead of returning
    them to the kernel; returns whether it applied (glibc on Linux only). The setting holds for the
    rest of the process: a sweep's later solo trials in it run with it too, unharmed (their tensors
    are small), and memory a stack freed stays resident until the process ends."""
    import ctypes
    import platform

    if sys.platform != "linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)) and bool(
            libc.mallopt(M_TRIM_THRESHOLD, KEEP_FREED_BYTES)
        )
    except (OSError, AttributeError):
        return False
