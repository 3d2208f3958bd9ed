"""The benchmarks (scripts/bench_train.py, scripts/bench_sweep.py) run and print their tables;
timings are not asserted."""

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # runs the benchmark scripts

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
SCRIPT = SCRIPTS / "bench_train.py"


def test_bench_train_quick_prints_the_table():
    proc = subprocess.run([sys.executable, str(SCRIPT), "--quick"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    out = proc.stdout
    assert "| measure | median | min–max | target | result |" in out
    for row in (
        "mlp: hand steps/s",
        "mlp: dataloader steps/s",
        "mlp: dlrun steps/s",
        "mlp: dlrun / hand steps/s",
        "mlp: dlrun / hand peak RSS",
        "mlp: dlrun start-up overhead (s)",
        "mlp: dlrun evaluation time / training time",
        "mlp: dlrun start-up beyond the hand loop's (s)",
        'python -c "import torch" (s)',
        "dlrun --help (s)",
        "dlrun ls (s)",
    ):
        assert f"| {row} |" in out, row
    assert "cnn:" not in out  # --quick is the MLP only
    assert "torch " in out and "cores" in out  # the machine it ran on
    targeted = [line for line in out.splitlines() if line.rstrip().endswith(("| PASS |", "| MISS |"))]
    assert len(targeted) == 7  # steps/s ratio, evaluation share, RSS ratio, two start-up overheads, --help, ls
    assert "lightning" not in out  # --quick leaves the Lightning contender out


def test_bench_sweep_tiny_prints_the_table():
    proc = subprocess.run(
        [sys.executable, str(SCRIPTS / "bench_sweep.py"), "--sweeps", "3x20", "--repeats", "1", "--ceiling"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    out = proc.stdout
    for row in (
        "installed, 3 trials of 20 steps: 1 worker(s): sweep wall (s)",
        "installed, 3 trials of 20 steps: 2 worker(s): sweep wall (s)",
        "installed, 3 trials of 20 steps: sweep wall, 1 worker / 2 workers",
        "installed, 3 trials of 20 steps: 2 worker(s): after the last trial (s)",
        "installed, 3 trials of 20 steps: per-trial overhead, 1 worker (s)",
        "the machine's ceiling: 2 hand loops at once / 1 (summed steps/s)",
    ):
        assert f"| {row} |" in out, row
    targeted = [line for line in out.splitlines() if line.rstrip().endswith(("| PASS |", "| MISS |"))]
    assert len(targeted) == 2


def test_bench_stack_tiny_prints_the_table():
    proc = subprocess.run(
        [
            sys.executable,
            str(SCRIPTS / "bench_stack.py"),
            "--ks",
            "2",
            "--steps",
            "20",
            "--models",
            "mlp",
            "--solo-trials",
            "1",
            "--repeats",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert (
        "| model | K | solo trial-steps/s | stacked trial-steps/s | stacked / solo: median (min–max) |" in proc.stdout
    )
    row = next(line for line in proc.stdout.splitlines() if line.startswith("| mlp | 2 |"))
    assert float(row.split("|")[6]) < 0.05  # the stacked trial ends where its solo run ends


def test_the_reference_loops_train_torchs_own_layers():
    """The hand-written loops and Lightning get nn.Conv1d where dlrun builds its MatmulConv1d: the
    same weights and outputs, and nothing of dlrunner to unpickle."""
    import copy

    import torch

    from dlrunner.models.conv1d import MatmulConv1d
    from dlrunner.train.setup import build_model
    from helpers import compose

    sys.path.insert(0, str(SCRIPT.parent))
    import bench_train

    model, _ = build_model(compose("experiment=mnist1d_cnn"), (1, 40), 10)
    plain = bench_train.as_torch_modules(copy.deepcopy(model))
    assert {type(m) for m in model.modules()} >= {MatmulConv1d}
    assert all(type(m).__module__.startswith("torch.") for m in plain.modules())
    x = torch.randn(7, 1, 40)
    assert torch.allclose(model(x), plain(x), atol=1e-6)
