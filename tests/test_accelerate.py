"""Device speed features (issue 7): the decisions are tested here on the CPU; the CUDA paths they
pick are exercised when a GPU machine runs scripts/bench_train.py (BENCHMARKS.md)."""

from __future__ import annotations

import json
import platform
import subprocess
import sys

import pytest
import torch

from dlrunner.runtime import optimizer_speed_flags
from dlrunner.train.accelerate import data_placement, place_data, wants_channels_last
from helpers import dlrun_in_process, run_dlrun


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
    assert optimizer_speed_flags(torch.optim.Adam, [{"params": [ParameterOn("cuda", floating=False)]}]) == {
        "foreach": None
    }
    assert optimizer_speed_flags(torch.optim.Adam, [{"params": []}]) == {"foreach": None}
    assert optimizer_speed_flags(torch.optim.Adam, [{"params": [ParameterOn("meta")]}]) == {
        "foreach": None
    }  # no kernels there


def test_fused_optimizers_on_the_cpu_where_torch_has_the_kernels():
    from dlrunner.internals import fused_kernel_devices

    cpu = [{"params": list(torch.nn.Linear(3, 2).parameters())}]
    expected = {"fused": True} if "cpu" in fused_kernel_devices() else {"foreach": None}
    assert optimizer_speed_flags(torch.optim.Adam, cpu) == expected
    assert optimizer_speed_flags(torch.optim.RMSprop, cpu) == {"foreach": None}


def test_dlrun_builds_fused_adam_on_the_cpu_and_it_trains(tmp_path):
    from dlrunner.internals import fused_kernel_devices
    from dlrunner.optim import build_adam, build_sgd

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


@pytest.mark.parametrize(
    "setting, device, shape, model, expected",
    [
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
    ],
)
def test_channels_last_choice(setting, device, shape, model, expected):
    assert wants_channels_last(setting, device, shape, model) is expected


GiB = 2**30


@pytest.mark.parametrize(
    "setting, device, data_bytes, free, expected",
    [
        ("auto", CUDA, 1 * GiB, 10 * GiB, "device"),
        ("auto", CUDA, 5 * GiB, 10 * GiB, "device"),  # exactly half the free memory still fits
        ("auto", CUDA, 6 * GiB, 10 * GiB, "host"),  # too big: pinned host memory, copied per batch
        (True, CUDA, 60 * GiB, 10 * GiB, "device"),  # forced (the user knows better)
        (False, CUDA, 1, 10 * GiB, "host"),
        ("auto", CPU, 60 * GiB, None, "device"),  # on the CPU host and device are one place
        (False, CPU, 1, None, "device"),
    ],
)
def test_data_placement_choice(setting, device, data_bytes, free, expected):
    assert data_placement(setting, data_bytes, device, free) == expected


def test_place_data_on_the_cpu_keeps_every_split_in_place():
    from types import SimpleNamespace

    X = torch.randn(10, 3)
    data = SimpleNamespace(
        splits={"train": (X, torch.zeros(10)), "dev": (torch.randn(4, 3), torch.zeros(4))}, weights=None
    )
    assert place_data(data, CPU, "auto") == "device"
    assert data.splits["train"][0] is X


@pytest.mark.slow  # trains two CNNs for seconds
def test_channels_last_training_matches_the_default_layout(tmp_path):
    """trainer.channels_last=true on the CPU (the path CUDA takes by default) trains the same model to
    the same numbers as the default layout, up to floating-point reordering."""
    errors = {}
    for setting in ("true", "false"):
        out = tmp_path / setting
        result = dlrun_in_process(
            "train",
            "model=cnn",
            "data=digits_images",
            "trainer=quick",
            "trainer.steps=60",
            f"trainer.channels_last={setting}",
            f"hydra.run.dir={out}",
            cwd=tmp_path,
        )
        assert result.returncode == 0, result.stderr
        errors[setting] = json.loads((out / "summary.json").read_text())["metrics"]
    assert errors["true"]["dev"]["loss"] == pytest.approx(errors["false"]["dev"]["loss"], rel=1e-3)
    assert errors["true"]["train"]["error"] == pytest.approx(errors["false"]["train"]["error"], abs=0.01)


def test_bad_speed_settings_are_refused(tmp_path):
    result = dlrun_in_process(
        "train", "trainer.channels_last=sometimes", f"hydra.run.dir={tmp_path / 'x'}", cwd=tmp_path
    )
    assert result.returncode == 2
    assert "trainer.channels_last" in result.stderr + result.stdout and "sometimes" in result.stderr + result.stdout
    assert not (tmp_path / "x" / "summary.json").exists()


@pytest.mark.slow  # measures a fresh process's imports
def test_dlrun_train_never_imports_torch_dynamo(tmp_path):
    """torch.optim would import torch._dynamo (~1.2 s of start-up) only to not compile (train/accelerate.py)."""
    done = run_dlrun(
        "train",
        "trainer.steps=20",
        "trainer.eval_every=10",
        "trainer.checkpoint_every=1",
        "trainer.progress=none",
        f"hydra.run.dir={tmp_path / 'run'}",
        cwd=tmp_path,
        env={"PYTHONPROFILEIMPORTTIME": "1"},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    imported = [line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")]
    assert "torch.optim" in imported and "torch._dynamo" not in imported
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["status"] == "completed" and (tmp_path / "run" / "checkpoints" / "last.pt").is_file()


OPTIMIZERS = {
    "adam fused": lambda params: torch.optim.Adam(params, lr=0.01, fused=True),
    "adam foreach": lambda params: torch.optim.Adam(params, lr=0.01, foreach=True),
    "adamw": lambda params: torch.optim.AdamW(params, lr=0.01, weight_decay=0.1),
    "adamw fused": lambda params: torch.optim.AdamW(params, lr=0.01, weight_decay=0.1, fused=True),
    "adam fused, L2, two groups and an empty one": lambda params: torch.optim.Adam(
        [{"params": params[:2], "weight_decay": 0.1}, {"params": params[2:], "lr": 0.03}, {"params": []}],
        lr=0.01,
        betas=(0.8, 0.99),
        fused=True,
    ),
    "adam fused amsgrad": lambda params: torch.optim.Adam(params, lr=0.01, amsgrad=True, fused=True),
    "sgd momentum": lambda params: torch.optim.SGD(params, lr=0.05, momentum=0.9),
    "rmsprop": lambda params: torch.optim.RMSprop(params, lr=0.01),
}


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_eager_step_takes_the_steps_optimizer_step_takes(name, monkeypatch):
    import sys

    from dlrunner.internals import eager_step

    def train(eager: bool) -> list[torch.Tensor]:
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
        optimizer = OPTIMIZERS[name](list(model.parameters()))
        step = optimizer.step
        if eager:  # as in a process that has not imported torch._dynamo (this one has: other tests compile)
            with monkeypatch.context() as patch:
                patch.delitem(sys.modules, "torch._dynamo", raising=False)
                step = eager_step(optimizer)
            assert step != optimizer.step
        x, y = torch.randn(32, 6), torch.randn(32, 1)
        for _ in range(5):
            optimizer.zero_grad(set_to_none=True)
            ((model(x) - y) ** 2).mean().backward()
            for group in optimizer.param_groups:  # as a schedule does, between steps
                group["lr"] *= 0.9
            step()
        assert not any(p.grad is not None and p.grad.requires_grad for p in model.parameters())
        return [p.detach().clone() for p in model.parameters()]

    for eager_weights, plain_weights in zip(train(eager=True), train(eager=False)):
        assert torch.equal(eager_weights, plain_weights)


def test_fused_adam_takes_the_kernel_alone_from_its_second_step(monkeypatch):
    """Adam and AdamW with fused=True step through torch's fused kernel directly once torch has
    made their state; a first step, or a parameter without a gradient, goes through torch's step."""
    import sys

    from dlrunner.internals import eager_step, eager_zero_grad

    params = [torch.nn.Parameter(torch.randn(4)), torch.nn.Parameter(torch.randn(3))]
    optimizer = torch.optim.Adam(params, lr=0.1, fused=True)
    monkeypatch.delitem(sys.modules, "torch._dynamo", raising=False)  # as in a process that has not imported it
    step, zero_grad = eager_step(optimizer), eager_zero_grad(optimizer)
    assert step.__qualname__.startswith("fused_adam_step")
    calls = []
    monkeypatch.setattr(torch, "_fused_adam_", lambda *args, **kwargs: calls.append(args))
    for p in params:
        p.grad = torch.ones_like(p)
    step()  # the first: torch's own step (its dispatch to the kernel is by module attribute too, so count it)
    first = len(calls)
    step()
    assert len(calls) == first + 1 and calls[-1][0] == params
    zero_grad()
    assert all(p.grad is None for p in params)
    params[0].grad = torch.ones(4)  # the second has none: torch's step, which skips it
    step()
    assert len(calls) == first + 2 and calls[-1][0] == [params[0]]


def test_fused_adam_counts_steps_in_one_tensor_and_resumes_from_a_saved_state(monkeypatch, tmp_path):
    """The kernel-alone step advances every parameter's step count with one add (each state keeps a
    0-dim tensor of its own, a view); a state saved with torch.save and loaded (weights_only) into
    the live optimizer brings new count tensors, which the step takes over the same way, and the
    run goes on exactly as torch's own Adam does."""
    import sys

    from dlrunner.internals import eager_step

    torch.manual_seed(0)
    start = [torch.randn(5, 3), torch.randn(3), torch.randn(2)]
    ours = [torch.nn.Parameter(t.clone()) for t in start]
    theirs = [torch.nn.Parameter(t.clone()) for t in start]

    def adam(params):
        groups = [{"params": params[:2], "weight_decay": 0.1}, {"params": params[2:], "weight_decay": 0.0}]
        return torch.optim.Adam(groups, lr=1e-2, fused=True)

    optimizer, reference = adam(ours), adam(theirs)
    with monkeypatch.context() as patch:
        patch.delitem(sys.modules, "torch._dynamo", raising=False)  # as in a process that has not imported it
        step = eager_step(optimizer)
    assert step.__qualname__.startswith("fused_adam_step")

    def train(steps):
        for _ in range(steps):
            for p, q in zip(ours, theirs):
                g = torch.randn_like(p)
                p.grad, q.grad = g.clone(), g.clone()
            step()
            reference.step()

    train(4)
    counts = [optimizer.state[p]["step"] for p in ours[:2]]
    assert counts[0]._base is counts[1]._base is not None  # one tensor for the group's counts
    assert [float(optimizer.state[p]["step"]) for p in ours] == [4.0] * 3
    torch.save(optimizer.state_dict(), tmp_path / "optimizer.pt")
    train(2)
    # as a resumed run does: the saved state replaces the live one (its step counts are new tensors)
    optimizer.load_state_dict(torch.load(tmp_path / "optimizer.pt", weights_only=True))
    reference.load_state_dict(torch.load(tmp_path / "optimizer.pt", weights_only=True))
    assert [float(optimizer.state[p]["step"]) for p in ours] == [4.0] * 3
    train(3)
    assert [float(optimizer.state[p]["step"]) for p in ours] == [7.0] * 3
    after = [optimizer.state[p]["step"] for p in ours[:2]]  # the loaded counts, taken over: still the one-add step
    assert after[0]._base is after[1]._base is not None and after[0]._base is not counts[0]._base
    for p, q in zip(ours, theirs):
        assert torch.equal(p, q)


def test_eager_step_keeps_optimizer_step_where_it_would_skip_something(monkeypatch):
    import sys

    from dlrunner.internals import eager_step
    from dlrunner.optim.momentum import CourseMomentum

    monkeypatch.delitem(sys.modules, "torch._dynamo", raising=False)
    params = [torch.nn.Parameter(torch.zeros(3))]
    hooked = torch.optim.Adam(params, lr=0.1)
    hooked.register_step_post_hook(lambda optimizer, args, kwargs: None)  # a hook runs only through optimizer.step
    assert eager_step(hooked) == hooked.step
    course = CourseMomentum(params, lr=0.1)  # its own step, not wrapped by torch.optim's graph breaks
    assert eager_step(course) == course.step
    differentiable = torch.optim.Adam(params, lr=0.1, differentiable=True)  # its step keeps gradients on: as written
    assert eager_step(differentiable) == differentiable.step
    plain = torch.optim.Adam(params, lr=0.1)
    assert eager_step(plain) != plain.step  # the same optimizer without a hook takes the eager step


def test_compiling_after_a_plain_run_gives_torch_optim_its_own_wrappers_back(tmp_path, monkeypatch):
    import sys

    from dlrunner.internals import DYNAMO_WRAPPED_METHODS, restore_dynamo_wrappers, spare_dynamo_import
    from helpers import train_in_process

    with monkeypatch.context() as patch:
        patch.delitem(sys.modules, "torch._dynamo", raising=False)
        assert spare_dynamo_import()
    wrapped = [getattr(torch.optim.Optimizer, name).__wrapped__ for name in DYNAMO_WRAPPED_METHODS]
    assert all(getattr(f, "__dynamo_disable") is f for f in wrapped)
    restore_dynamo_wrappers()
    assert all(getattr(f, "__dynamo_disable", None) is not f for f in wrapped)
    summary = train_in_process(tmp_path, "data=moons", "trainer=quick", "trainer.steps=10", "trainer.compile=true")
    assert summary["status"] == "completed"


STEP_WITH_PAGE_FAULTS = """
import resource, sys, torch
from dlrunner.internals import keep_freed_memory
applied = keep_freed_memory() if sys.argv[1] == "keep" else None
def step():  # forty 2.5 MB activations alive at once, all freed when the step ends, as in a stack
    tensors = [torch.ones(655360) for _ in range(40)]
    return sum(float(t[-1]) for t in tensors)
for _ in range(5):
    step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    step()
print(applied, (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 20)
"""


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc", reason="glibc's mallopt only"
)
@pytest.mark.slow  # counts a process's page faults
def test_kept_freed_memory_spares_a_stacked_step_its_page_faults():
    """Without it glibc hands a step's freed memory back to the kernel and maps it again on the next
    step (25,600 page faults per step here, in most processes: in some the heap's layout happens to
    keep it); with it the memory is reused from the heap in every process."""

    def faults(mode):
        out = subprocess.run(
            [sys.executable, "-c", STEP_WITH_PAGE_FAULTS, mode], capture_output=True, text=True, check=True
        )
        applied, per_step = out.stdout.split()
        return applied, float(per_step)

    for _ in range(2):
        applied, per_step = faults("keep")
        assert applied == "True" and per_step < 100  # ~0; a loaded machine may add a few of its own
    assert any(faults("default")[1] > 1000 for _ in range(8)), "the step never faulted without keep_freed_memory"
