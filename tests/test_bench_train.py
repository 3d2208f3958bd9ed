"""The training benchmark (scripts/bench_train.py) runs and prints its table; timings are not asserted."""

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "bench_train.py"


def test_bench_train_quick_prints_the_table():
    proc = subprocess.run([sys.executable, str(SCRIPT), "--quick"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    out = proc.stdout
    assert "| measure | median | min–max | target | result |" in out
    for row in ("mlp: hand steps/s", "mlp: dataloader steps/s", "mlp: dlrun steps/s",
                "mlp: dlrun / hand steps/s", "mlp: dlrun / hand peak RSS", "mlp: dlrun start-up overhead (s)",
                'python -c "import torch" (s)', "dlrun --help (s)", "dlrun ls (s)"):
        assert f"| {row} |" in out, row
    assert "cnn:" not in out  # --quick is the MLP only
    assert "torch " in out and "cores" in out  # the machine it ran on
    targeted = [line for line in out.splitlines() if line.rstrip().endswith(("| PASS |", "| MISS |"))]
    assert len(targeted) == 5  # steps/s ratio, RSS ratio, start-up overhead, --help, ls
