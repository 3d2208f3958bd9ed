"""Every private name of torch, Hydra, numpy, the interpreter and glibc that dlrunner uses, in one place.

Each use sits behind an explicit version range -- the torch releases it was written for and is tested
on -- and a check that the private name is there and has the shape expected. Outside the range, or
when a check fails, the public API is used instead: the same training, only slower or slower to
start (bit for bit the same except where a fused kernel gives way to torch's unfused one).
``PATHS`` records which path each feature took in this process; ``dlrun --debug`` prints it at the
end of a run.

What is private here, and why:
- torch.optim's ``torch._disable_dynamo`` wrappers and ``_use_grad_for_differentiable``: skipping
  them spares ``import torch._dynamo`` (~1.2 s of start-up) when nothing compiles;
- ``torch._fused_adam_`` / ``torch._fused_adamw_``: Adam's fused kernel without torch.optim's
  per-step bookkeeping in Python (32 against 102 us per step for the MNIST-1D CNN); and in a stack,
  on each trial's rows, so that a stacked trial takes its solo run's Adam step bit for bit;
- ``torch.utils._foreach_utils._get_fused_kernels_supported_devices``: which devices have fused
  optimizer kernels (the CPU since torch 2.4);
- glibc's ``mallopt``: freed tensors stay in the heap for a stack's next step; and Linux's ``prctl``
  (through glibc): a process that trains part of a stack stops when the sweep process dies;
- ``torch._foreach_*``: the course's momentum updates every tensor of a group in one call;
- torch's private layer base classes (``_BatchNorm``, ``_DropoutNd``, ``_ConvNd``): "is this a
  batch norm / dropout / convolution", with the public classes as the fallback;
- Hydra's ``hydra._internal.hydra.Hydra.get_mode``: skipping its probe saves a whole compose;
- the joblib launcher's ``_core.execute_job``: a sweep's trials handed to whichever worker is free;
- numpy's array reconstructor: old checkpoints that hold numpy arrays load with ``weights_only``;
- ``atexit._run_exitfuncs`` and ``os._exit``: dlrun ends without the interpreter's teardown (~1 s).
"""

from __future__ import annotations

import contextlib
import functools
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

# torch is imported inside the functions that need it: the Hydra and exit parts serve commands that
# never load torch (`dlrun train --cfg job`, `-h`).

# The torch releases the private uses below were written for (inclusive lower, exclusive upper
# bound). CI tests the torch the README pins; a torch outside the range takes the public path.
TORCH_RANGE = ((2, 3), (2, 15))
HYDRA_RANGE = ((1, 3), (1, 4))

# feature -> the path it took in this process: "private" or "public (why)"
PATHS: dict[str, str] = {}


def version_of(text: str) -> tuple[int, int]:
    major, minor = text.split("+")[0].split(".")[:2]
    return int(major), int(minor)


@functools.cache
def torch_version() -> tuple[int, int]:
    import torch

    return version_of(torch.__version__)


def in_tested_range() -> bool:
    low, high = TORCH_RANGE
    return low <= torch_version() < high


def took(feature: str, private: bool, why: str = "") -> bool:
    """Record which path ``feature`` took; returns ``private``."""
    PATHS[feature] = "private" if private else f"public ({why})" if why else "public"
    return private


def report() -> list[str]:
    """One line per feature: the path it took in this process (for ``dlrun --debug``)."""
    import torch

    low, high = TORCH_RANGE
    lines = [f"torch {torch.__version__}; private paths written for {low[0]}.{low[1]} <= torch < {high[0]}.{high[1]}"]
    return lines + [f"{feature}: {path}" for feature, path in sorted(PATHS.items())]


def fused_kernel_devices() -> set[str]:
    """Device types with fused optimizer kernels in the installed torch (CUDA only before 2.4)."""
    if not in_tested_range():
        took("fused kernel devices", False, "torch outside the tested range: CUDA only")
        return {"cuda"}
    try:
        from torch.utils._foreach_utils import _get_fused_kernels_supported_devices

        devices = set(_get_fused_kernels_supported_devices())
    except (ImportError, TypeError):
        took("fused kernel devices", False, "torch has no such list: CUDA only")
        return {"cuda"}
    took("fused kernel devices", True)
    return devices


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
    import torch

    disable = getattr(torch, "_disable_dynamo", None)
    if "torch._dynamo" in sys.modules:
        return took("optimizer without torch._dynamo", False, "torch._dynamo is already imported")
    if not in_tested_range() or disable is None:
        return took("optimizer without torch._dynamo", False, "torch outside the tested range or without the wrapper")
    marker = disable(lambda: None).__code__  # the code of the wrapper torch._disable_dynamo makes
    for name in DYNAMO_WRAPPED_METHODS:
        wrapper = getattr(torch.optim.Optimizer, name, None)
        function = getattr(wrapper, "__wrapped__", None)
        if function is not None and wrapper.__code__ is marker:  # a torch that wraps differently keeps its own way
            setattr(function, "__dynamo_disable", function)
    return took("optimizer without torch._dynamo", True)


def restore_dynamo_wrappers() -> None:
    """Undo ``spare_dynamo_import`` before anything compiles (trainer.compile in a process that
    already trained without it, e.g. a sweep worker): torch.optim marks its functions again."""
    import torch

    for name in DYNAMO_WRAPPED_METHODS:
        function = getattr(getattr(torch.optim.Optimizer, name, None), "__wrapped__", None)
        if function is not None and getattr(function, "__dynamo_disable", None) is function:
            delattr(function, "__dynamo_disable")


def eager_step(optimizer: torch.optim.Optimizer):
    """``optimizer.step`` as a function of no arguments; without torch.optim's graph-break wrapper
    (and its import of torch._dynamo) when nothing compiles and the optimizer has no step hooks,
    which that path would skip. Optimizers whose step is not wrapped so (``CourseMomentum``) keep theirs."""
    import torch
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
    # under the profiler hook torch.optim puts on every step
    use_grad = getattr(type(optimizer).step, "__wrapped__", None)
    update = getattr(use_grad, "__wrapped__", None)
    wrap = getattr(torch_optimizer, "_use_grad_for_differentiable", None)
    if (
        not in_tested_range()
        or "torch._dynamo" in sys.modules
        or update is None
        or wrap is None
        or use_grad.__code__ is not wrap(lambda: None).__code__
        or any(h is None or h for h in hooks)
        or optimizer.defaults.get("differentiable")
    ):
        took("eager optimizer step", False, "another torch, a compile, hooks or a differentiable optimizer")
        return optimizer.step  # another torch, or something the wrappers do: the step as written
    took("eager optimizer step", True)

    def step():
        with torch.no_grad():  # what the wrapper does for a non-differentiable optimizer
            return update(optimizer)

    return fused_adam_step(optimizer, step) or step


def eager_zero_grad(optimizer: torch.optim.Optimizer):
    """``optimizer.zero_grad(set_to_none=True)`` as a function of no arguments: the same
    ``p.grad = None`` for every parameter, without the profiler range torch.optim opens around it
    on every call (~50 us, 2% of a MNIST-1D CNN step). An optimizer with a zero_grad of its own keeps it."""
    import torch

    if type(optimizer).zero_grad is not torch.optim.Optimizer.zero_grad:
        return lambda: optimizer.zero_grad(set_to_none=True)
    params = [p for group in optimizer.param_groups for p in group["params"]]

    def zero_grad():
        for p in params:
            p.grad = None

    return zero_grad


def fused_adam_step(optimizer: torch.optim.Optimizer, torch_step):
    """For Adam and AdamW with ``fused=True``: the step as torch's fused kernel alone, the same
    calls torch.optim makes (add 1 to each step count, then one fused update per parameter list)
    without its per-step bookkeeping in Python (building the state lists, grouping the tensors by
    device and dtype again): 32 against 102 us for the MNIST-1D CNN's 8 tensors, ~4% of its step.
    ``torch_step`` takes any step this cannot: the first (torch creates the state), a parameter
    without a gradient, a torch without the kernel. None when the optimizer is not such an Adam."""
    import torch

    kernels = {False: "_fused_adam_", True: "_fused_adamw_"}  # decoupled weight decay (AdamW) or not
    one_kind = len({(p.device, p.dtype) for group in optimizer.param_groups for p in group["params"]}) == 1
    if type(optimizer) not in (torch.optim.Adam, torch.optim.AdamW) or not one_kind:
        return None
    if not in_tested_range() or not all(hasattr(torch, kernel) for kernel in kernels.values()):
        took("fused Adam kernel alone", False, "torch outside the tested range or without the kernel")
        return None
    decoupled = type(optimizer) is torch.optim.AdamW
    broken = []  # set when the kernel refused its arguments: torch's own step from then on
    counts = {}  # group number -> (one tensor, its elements: the group's step counts)

    def step_counts(n: int, states: list) -> tuple:
        """Group n's step counts as the elements of one tensor, which one add advances: torch's
        ``_foreach_add_`` over the MNIST-1D CNN's 8 one-number tensors took ~25-40 us of its step.
        Each state keeps its own 0-dim tensor (a view), as torch's step and state_dict expect."""
        whole, views = counts.get(n, (None, []))
        if len(views) != len(states) or any(state["step"] is not view for state, view in zip(states, views)):
            whole = torch.stack([state["step"] for state in states])  # first call, or loaded state
            views = list(whole.unbind(0))
            for state, view in zip(states, views):
                state["step"] = view
            counts[n] = whole, views
        return whole, views

    def kernel_alone(group: dict) -> bool:  # settings torch's step handles in more ways than the plain kernel call
        return (
            group.get("fused")
            and not group.get("amsgrad")
            and not group.get("capturable")
            and not group.get("differentiable")
        )

    def step():
        if broken:
            return torch_step()
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
            for n, (group, params, grads, states) in enumerate(updates):
                whole, steps = step_counts(n, states)
                whole.add_(1)
                beta1, beta2 = group["betas"]
                try:
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
                except (TypeError, RuntimeError) as error:  # a kernel with another signature refuses its arguments
                    whole.sub_(1)
                    if n:  # earlier groups are updated already: no clean way back to torch's step
                        raise
                    broken.append(error)
                    took("fused Adam kernel alone", False, f"the kernel refused its arguments: {error}")
                    return torch_step()

    took("fused Adam kernel alone", True)
    return step


FUSED_ADAM_ON_ROWS = "stacked Adam through the fused kernel"


def fused_adam_kernel(device):
    """torch's fused Adam kernel (``torch._fused_adam_``) when it runs on ``device``, else None.

    A stack calls it on each trial's rows so that the trial takes its solo run's Adam step bit
    for bit (dlrunner.stack.optim); its caller takes the written-out step when this is None or
    when the kernel refuses its first call."""
    import torch

    if not in_tested_range() or not hasattr(torch, "_fused_adam_"):
        took(FUSED_ADAM_ON_ROWS, False, "torch outside the tested range or without the kernel")
        return None
    if device.type not in fused_kernel_devices():
        took(FUSED_ADAM_ON_ROWS, False, f"no fused kernel on {device.type}")
        return None
    took(FUSED_ADAM_ON_ROWS, True)
    return torch._fused_adam_


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
        return took("freed memory kept (glibc mallopt)", False, "not glibc")
    try:
        libc = ctypes.CDLL("libc.so.6")
        applied = bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)) and bool(
            libc.mallopt(M_TRIM_THRESHOLD, KEEP_FREED_BYTES)
        )
    except (OSError, AttributeError):
        return took("freed memory kept (glibc mallopt)", False, "no mallopt")
    return took("freed memory kept (glibc mallopt)", applied, "" if applied else "mallopt refused")


PR_SET_PDEATHSIG = 1  # linux/prctl.h


def stop_with_parent(signum: int) -> bool:
    """Ask Linux to send this process ``signum`` when the process that forked it ends (killed with
    SIGKILL, say), so that a fork training part of a stack stops at a safe point instead of going on
    alone; returns whether it applied (Linux with glibc only)."""
    import ctypes

    if sys.platform != "linux":
        return took("forks stop with their parent (prctl)", False, "not Linux")
    try:
        applied = ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signum, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return took("forks stop with their parent (prctl)", False, "no prctl")
    return took("forks stop with their parent (prctl)", applied, "" if applied else "prctl refused")


# ---- The course's momentum: torch._foreach_* --------------------------------------------------------


def foreach_ops():
    """(add, mul_, add_) over lists of tensors: torch's multi-tensor kernels (one call per group), or
    a loop over the tensors with the same arithmetic. Chosen once, when an optimizer is built."""
    import torch

    names = ("_foreach_add", "_foreach_mul_", "_foreach_add_")
    if in_tested_range() and all(hasattr(torch, name) for name in names):
        took("multi-tensor momentum (torch._foreach_*)", True)
        return tuple(getattr(torch, name) for name in names)
    took("multi-tensor momentum (torch._foreach_*)", False, "torch outside the tested range or without them")

    def add(tensors, others, alpha=1):
        return [t.add(o, alpha=alpha) for t, o in zip(tensors, others)]

    def mul_(tensors, scalar):
        for t in tensors:
            t.mul_(scalar)

    def add_(tensors, others, alpha=1):
        for t, o in zip(tensors, others):
            t.add_(o, alpha=alpha)

    return add, mul_, add_


# ---- Which layers a module holds: torch's private base classes, or the public ones ------------------


def _layer_types(module, private: str, public: tuple[str, ...]) -> tuple[type, ...]:
    from torch import nn

    base = getattr(module, private, None)
    if in_tested_range() and isinstance(base, type):
        return (base,)
    return tuple(getattr(nn, name) for name in public if hasattr(nn, name))


_LAYERS = {  # name -> (torch.nn.modules submodule, private base class, public classes)
    "BATCH_NORM": ("batchnorm", "_BatchNorm", ("BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "SyncBatchNorm")),
    "DROPOUT": (
        "dropout",
        "_DropoutNd",
        ("Dropout", "Dropout1d", "Dropout2d", "Dropout3d", "AlphaDropout", "FeatureAlphaDropout"),
    ),
    "CONVOLUTION": (
        "conv",
        "_ConvNd",
        ("Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d"),
    ),
}


def __getattr__(name: str):
    """BATCH_NORM, DROPOUT, CONVOLUTION: tuples of layer classes for isinstance, built on first use."""
    if name not in _LAYERS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import torch

    submodule, private, public = _LAYERS[name]
    types = _layer_types(getattr(torch.nn.modules, submodule, None), private, public)
    globals()[name] = types
    return types


# ---- Hydra's mode probe ------------------------------------------------------------------------------


@contextlib.contextmanager
def hydra_mode_probe_skipped():
    """While inside, Hydra's mode probe (``Hydra.get_mode``, which composes the whole config once
    only to read ``hydra.mode``) answers None at once -- for Hydra 1.3, whose internals this is.
    Another Hydra probes as usual. The caller decides that None is the right answer."""
    import hydra

    try:
        from hydra._internal.hydra import Hydra

        original = Hydra.get_mode
    except (ImportError, AttributeError):
        took("Hydra's mode probe skipped", False, "Hydra without Hydra.get_mode")
        yield
        return
    low, high = HYDRA_RANGE
    if not low <= version_of(hydra.__version__) < high:
        took("Hydra's mode probe skipped", False, f"Hydra {hydra.__version__} outside the tested range")
        yield
        return
    took("Hydra's mode probe skipped", True)
    Hydra.get_mode = lambda self, config_name, overrides: None
    try:
        yield
    finally:
        Hydra.get_mode = original


# ---- Old checkpoints: numpy arrays under weights_only ---------------------------------------------------


def numpy_arrays_allowed():
    """Let torch.load(weights_only=True) also read float32 numpy arrays: checkpoints written before
    dlrunner stored the input normalisation as tensors hold it as numpy arrays. Arrays of numbers run
    no code. A torch without ``safe_globals`` (before 2.5) or a numpy without its reconstructor
    refuses such old checkpoints; new ones load."""
    import numpy as np
    import torch

    core = getattr(np, "_core", None) or getattr(np, "core", None)
    reconstruct = getattr(getattr(core, "multiarray", None), "_reconstruct", None)
    if not hasattr(torch.serialization, "safe_globals") or reconstruct is None:
        took(
            "old checkpoints with numpy arrays", False, "torch without safe_globals or numpy without its reconstructor"
        )
        return contextlib.nullcontext()
    took("old checkpoints with numpy arrays", True)
    return torch.serialization.safe_globals([reconstruct, np.ndarray, np.dtype, type(np.dtype(np.float32))])


# ---- The end of the process: no interpreter teardown ----------------------------------------------------


def exit_without_teardown(code: int) -> None:
    """End the process without the interpreter's teardown, once torch is loaded.

    That teardown frees every module and object one by one and writes nothing: measured ~0.75 s
    after `import torch` alone and ~1 s after a `dlrun train`. What exit still has to do is done
    first: exit handlers run (logging, W&B, temporary folders) and the standard streams are flushed.
    Returns, for the normal exit, while a non-daemon thread is alive (the interpreter would wait for
    it) or when the interpreter has no ``atexit._run_exitfuncs``."""
    import atexit
    import os
    import threading

    if any(t.is_alive() and not t.daemon for t in threading.enumerate() if t is not threading.main_thread()):
        return
    run_exit_handlers = getattr(atexit, "_run_exitfuncs", None)
    if run_exit_handlers is None:
        return
    run_exit_handlers()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError, AttributeError):  # a closed pipe or stream (None)
            stream.flush()
    try:  # and what C libraries wrote through stdio's own buffers
        import ctypes

        ctypes.CDLL(None).fflush(None)
    except (OSError, AttributeError):
        pass
    os._exit(code)


# ---- Hydra's joblib launcher, one job at a time ---------------------------------------------------------
# The plugin's launch() runs a list of jobs and returns when the slowest is done. A sweep that hands
# its whole round to joblib and takes each trial as it finishes (dlrunner.sweep.parallel) runs each
# job as the plugin does, through its per-job function ``_core.execute_job`` (the sweep config
# composed per job, the job's id and number, Hydra's globals and singletons in the worker), and
# cleans the launcher's joblib settings with its ``_core.process_joblib_cfg``.
JOBLIB_LAUNCHER_RANGE = ((1, 2), (1, 3))  # hydra-joblib-launcher releases these were written for
JOBLIB_JOB_PARAMETERS = ("idx", "overrides", "hydra_context", "config", "task_function", "singleton_state")
JOBLIB_FREE_WORKERS = "joblib trials handed to free workers"


def joblib_job_runner():
    """(execute_job, process_joblib_cfg, log) of Hydra's joblib launcher, for a plugin in the tested
    range whose per-job function takes the arguments expected, with a joblib that yields results
    as they complete (1.4 and later); else None: the sweep then launches a worker count at a time
    through the launcher's public ``launch``."""
    try:
        from importlib.metadata import PackageNotFoundError, version

        import joblib
        from hydra_plugins.hydra_joblib_launcher import _core

        execute, clean, log = _core.execute_job, _core.process_joblib_cfg, _core.log
        plugin = version("hydra-joblib-launcher")
    except (ImportError, AttributeError, PackageNotFoundError):
        took(JOBLIB_FREE_WORKERS, False, "the joblib launcher has no per-job function")
        return None
    import inspect

    low, high = JOBLIB_LAUNCHER_RANGE
    if not low <= version_of(plugin) < high:
        took(JOBLIB_FREE_WORKERS, False, f"hydra-joblib-launcher {plugin} outside the tested range")
        return None
    if version_of(joblib.__version__) < (1, 4):
        took(JOBLIB_FREE_WORKERS, False, f"joblib {joblib.__version__} yields no results as they complete")
        return None
    try:
        parameters = tuple(inspect.signature(execute).parameters)
    except (TypeError, ValueError):
        parameters = ()
    if parameters != JOBLIB_JOB_PARAMETERS:
        took(JOBLIB_FREE_WORKERS, False, f"the launcher's per-job function takes {parameters}")
        return None
    took(JOBLIB_FREE_WORKERS, True)
    return execute, clean, log
