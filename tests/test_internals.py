"""The speed layer's private torch and glibc names (dlrunner.internals): each has a public fallback,
taken outside the tested torch range or when the private name is missing or has changed, and
training still works -- with the same result where the public path does the same arithmetic."""

from __future__ import annotations

import signal
import sys

import pytest
import torch

from dlrunner import internals
from helpers import dlrun_in_process, run_dlrun, train_in_process

TINY = ("data=moons", "trainer=quick", "trainer.steps=60", "trainer.eval_every=20", "optimizer=adam")


@pytest.fixture(autouse=True)
def fresh_paths(monkeypatch):
    monkeypatch.setattr(internals, "PATHS", {})


def final_dev_error(tmp_path, name: str) -> float:
    summary = train_in_process(tmp_path / name, *TINY)
    assert summary["status"] == "completed"
    return summary["metrics"]["dev"]["error"]


def test_the_installed_torch_is_inside_the_tested_range():
    assert internals.in_tested_range(), f"torch {torch.__version__} is outside internals.TORCH_RANGE: update it"
    assert "cpu" in internals.fused_kernel_devices() and internals.PATHS["fused kernel devices"] == "private"


@pytest.mark.slow  # a fresh process: the private paths apply only while torch._dynamo is not imported
def test_a_fresh_dlrun_takes_every_private_path(tmp_path):
    result = run_dlrun("--debug", "train", *TINY, "hydra.run.dir=r", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for feature in ("eager optimizer step", "fused Adam kernel alone", "optimizer without torch._dynamo"):
        assert f"debug: {feature}: private" in result.stderr, result.stderr


def test_outside_the_tested_range_every_feature_takes_the_public_path(tmp_path, monkeypatch):
    reference = final_dev_error(tmp_path, "private")
    monkeypatch.setattr(internals, "PATHS", {})
    monkeypatch.setattr(internals, "TORCH_RANGE", ((0, 1), (0, 2)))
    public = final_dev_error(tmp_path, "public")
    assert internals.PATHS and all(path.startswith("public") for path in internals.PATHS.values()), internals.PATHS
    assert internals.fused_kernel_devices() == {"cuda"}
    assert public == pytest.approx(reference, abs=0.02)  # Adam unfused: other rounding, the same training


def test_a_fused_kernel_that_refuses_its_arguments_falls_back_to_torchs_step(monkeypatch):
    """A torch whose kernel changed its signature: dlrun's direct call fails, torch's own step takes
    over from that step on, and nothing is updated twice (the same weights as torch's step throughout)."""
    torch.manual_seed(0)
    start = [torch.randn(6, 4), torch.randn(4)]
    ours = [torch.nn.Parameter(t.clone()) for t in start]
    theirs = [torch.nn.Parameter(t.clone()) for t in start]
    optimizer = torch.optim.Adam(ours, lr=1e-2, fused=True)
    reference = torch.optim.Adam(theirs, lr=1e-2, fused=True)
    real, calls = torch._fused_adam_, []

    def changed(params, *args, **kwargs):
        if params[0] is ours[0]:
            calls.append(len(calls))
            if len(calls) == 2:  # the first call from dlrun's path (torch's own first step makes the first)
                raise TypeError("_fused_adam_() got an unexpected keyword argument 'beta1'")
        return real(params, *args, **kwargs)

    monkeypatch.setattr(torch, "_fused_adam_", changed)
    step = internals.fused_adam_step(optimizer, optimizer.step)
    for _ in range(5):
        gradients = [torch.randn_like(p) for p in ours]
        for p, q, g in zip(ours, theirs, gradients):
            p.grad, q.grad = g.clone(), g.clone()
        step()
        reference.step()
    assert internals.PATHS["fused Adam kernel alone"].startswith("public (the kernel refused")
    for p, q in zip(ours, theirs):
        assert torch.equal(p, q)
    assert optimizer.state[ours[0]]["step"] == reference.state[theirs[0]]["step"] == 5


@pytest.mark.parametrize(
    "owner, name",
    [
        ("torch", "_disable_dynamo"),
        ("torch.optim.optimizer", "_use_grad_for_differentiable"),
        ("torch.utils._foreach_utils", "_get_fused_kernels_supported_devices"),
        ("torch", "_fused_adam_"),
    ],
    ids=["disable-dynamo", "use-grad-wrapper", "fused-devices", "fused-adam"],
)
def test_a_missing_private_name_takes_the_public_path_and_training_works(tmp_path, monkeypatch, owner, name):
    import importlib

    monkeypatch.delattr(importlib.import_module(owner), name)
    if name == "_fused_adam_":
        import dlrunner.runtime

        # torch's fused step needs it too
        monkeypatch.setattr(dlrunner.runtime, "fused_kernel_devices", lambda: {"cuda"})
    final_dev_error(tmp_path, "run")
    assert any(path.startswith("public") for path in internals.PATHS.values()), internals.PATHS


def test_without_mallopt_freed_memory_is_not_kept_and_nothing_fails(monkeypatch):
    import ctypes

    def no_libc(*args, **kwargs):
        raise OSError("no libc here")

    monkeypatch.setattr(ctypes, "CDLL", no_libc)
    assert internals.keep_freed_memory() is False
    assert internals.PATHS["freed memory kept (glibc mallopt)"].startswith("public")


def test_a_fork_asks_linux_to_stop_it_with_its_parent_and_without_prctl_nothing_fails(monkeypatch):
    import ctypes
    import subprocess

    asked = """
import ctypes, signal
from dlrunner.internals import stop_with_parent
print(stop_with_parent(signal.SIGTERM))
death_signal = ctypes.c_int()
ctypes.CDLL("libc.so.6").prctl(2, ctypes.byref(death_signal), 0, 0, 0)  # PR_GET_PDEATHSIG
print(death_signal.value)
"""
    out = subprocess.run([sys.executable, "-c", asked], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["True", str(int(signal.SIGTERM))]

    def no_libc(*args, **kwargs):
        raise OSError("no libc here")

    monkeypatch.setattr(ctypes, "CDLL", no_libc)
    assert internals.stop_with_parent(signal.SIGTERM) is False
    assert internals.PATHS["forks stop with their parent (prctl)"].startswith("public")


def test_debug_says_which_path_each_feature_took(tmp_path):
    result = dlrun_in_process("--debug", "train", *TINY, "hydra.run.dir=r", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "private paths written for" in result.stderr
    # (private or public: this test process may have imported torch._dynamo already)
    for feature in ("eager optimizer step", "optimizer without torch._dynamo"):
        assert f"debug: {feature}: " in result.stderr, feature
    plain = dlrun_in_process("train", *TINY, "hydra.run.dir=r2", cwd=tmp_path)
    assert "debug:" not in plain.stderr + plain.stdout


def test_the_public_layer_types_stand_in_for_torchs_private_bases(monkeypatch):
    monkeypatch.setattr(internals, "TORCH_RANGE", ((0, 1), (0, 2)))
    batch_norm = internals._layer_types(torch.nn.modules.batchnorm, "_BatchNorm", ("BatchNorm1d", "BatchNorm2d"))
    assert batch_norm == (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)
    assert isinstance(torch.nn.BatchNorm2d(3), batch_norm) and not isinstance(torch.nn.Linear(2, 2), batch_norm)
    assert internals._layer_types(None, "_Gone", ("Dropout",)) == (torch.nn.Dropout,)
    for layer, types in ((torch.nn.BatchNorm1d(2), internals.BATCH_NORM), (torch.nn.Dropout(), internals.DROPOUT)):
        assert isinstance(layer, types)
    assert isinstance(torch.nn.Conv1d(1, 1, 3), internals.CONVOLUTION)


def test_the_course_momentum_without_foreach_kernels_takes_the_same_steps(monkeypatch):
    from dlrunner.optim.momentum import CourseMomentum

    torch.manual_seed(0)
    start = [torch.randn(5, 3), torch.randn(3)]
    fast = [torch.nn.Parameter(t.clone()) for t in start]
    loop = [torch.nn.Parameter(t.clone()) for t in start]
    with_kernels = CourseMomentum(fast, lr=0.1, beta=0.9, weight_decay=0.01)
    monkeypatch.setattr(internals, "TORCH_RANGE", ((0, 1), (0, 2)))
    without = CourseMomentum(loop, lr=0.1, beta=0.9, weight_decay=0.01)
    assert internals.PATHS["multi-tensor momentum (torch._foreach_*)"].startswith("public")
    for _ in range(20):
        for p, q in zip(fast, loop):
            p.grad = torch.randn_like(p)
            q.grad = p.grad.clone()
        with_kernels.step()
        without.step()
    for p, q in zip(fast, loop):
        torch.testing.assert_close(p, q, rtol=1e-6, atol=1e-7)


def test_hydra_outside_its_tested_range_probes_as_usual(tmp_path, monkeypatch):
    from hydra._internal.hydra import Hydra

    original = Hydra.get_mode
    monkeypatch.setattr(internals, "HYDRA_RANGE", ((0, 1), (0, 2)))
    with internals.hydra_mode_probe_skipped():
        assert Hydra.get_mode is original
    assert internals.PATHS["Hydra's mode probe skipped"].startswith("public")
    monkeypatch.setattr(internals, "HYDRA_RANGE", ((1, 3), (1, 4)))
    with internals.hydra_mode_probe_skipped():
        assert Hydra.get_mode is not original
    assert Hydra.get_mode is original
    result = dlrun_in_process("train", "-m", *TINY, "optimizer.lr=0.01", "hydra.sweep.dir=m", cwd=tmp_path)
    assert result.returncode == 0, result.stderr


def test_old_checkpoints_without_safe_globals_are_refused_and_new_ones_load(tmp_path, monkeypatch):
    import numpy as np

    from dlrunner.errors import ConfigError
    from dlrunner.train.checkpoint import FORMAT, load_checkpoint

    old, new = tmp_path / "old.pt", tmp_path / "new.pt"
    torch.save({"format": FORMAT, "normalization": {"mean": np.zeros(2, dtype=np.float32)}}, old)
    torch.save({"format": FORMAT, "normalization": {"mean": torch.zeros(2)}}, new)
    assert load_checkpoint(old, "trainer.resume", training_state=False)["format"] == FORMAT
    monkeypatch.delattr(torch.serialization, "safe_globals")
    with pytest.raises(ConfigError, match="refused"):
        load_checkpoint(old, "trainer.resume", training_state=False)
    assert load_checkpoint(new, "trainer.resume", training_state=False)["format"] == FORMAT


@pytest.mark.slow  # a fresh process's imports
def test_commands_that_do_not_train_never_import_torch_through_internals(tmp_path):
    import subprocess
    import sys

    script = (
        "import sys\n"
        "sys.argv = ['dlrun', 'train', '--cfg', 'job']\n"
        "from dlrunner.cli import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print('torch' in sys.modules, file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.stderr.strip().splitlines()[-1] == "False", done.stderr


def test_the_joblib_launchers_per_job_function_is_taken_inside_its_tested_range():
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher", reason="the joblib launcher is an extra")
    execute, clean, _log = internals.joblib_job_runner()
    assert execute.__name__ == "execute_job" and callable(clean)
    assert internals.PATHS[internals.JOBLIB_FREE_WORKERS] == "private"


@pytest.mark.parametrize("change", ["plugin range", "old joblib", "other parameters", "no function"])
def test_a_joblib_launcher_outside_what_was_tested_takes_its_own_launch(monkeypatch, change):
    """None: the sweep then launches through the launcher's public launch() (tests/test_sweep_parallel.py)."""
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher", reason="the joblib launcher is an extra")
    import joblib
    from hydra_plugins.hydra_joblib_launcher import _core

    if change == "plugin range":
        monkeypatch.setattr(internals, "JOBLIB_LAUNCHER_RANGE", ((0, 1), (0, 2)))
    elif change == "old joblib":
        monkeypatch.setattr(joblib, "__version__", "1.3.2")
    elif change == "other parameters":
        monkeypatch.setattr(_core, "execute_job", lambda idx, overrides, context, config, task, state: None)
    else:
        monkeypatch.delattr(_core, "execute_job")
    assert internals.joblib_job_runner() is None
    assert internals.PATHS[internals.JOBLIB_FREE_WORKERS].startswith("public")
