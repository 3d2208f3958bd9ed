"""A sweep through hydra/launcher=submitit_slurm on a real single-node SLURM cluster.

The cluster is started by scripts/slurm_cluster.sh (slurmctld, slurmd and munged on this
machine) and stopped again afterwards, by pid. Where SLURM cannot run (not root, not installed)
the test is skipped with the reason; under CI (CI=true) that is a failure instead, since CI
installs SLURM first (.ci/run).
"""

from __future__ import annotations

import json

import pytest

from helpers import SLURM_LAUNCHER, read_summary, run_dlrun

pytestmark = pytest.mark.slow  # needs a service: the SLURM cluster


def test_sweep_on_a_real_slurm_cluster(tmp_path, slurm_cluster):
    result = run_dlrun(
        "sweep",
        "sweep=lr",
        "data=moons",
        "trainer=quick",
        "trainer.steps=60",
        "trainer.eval_every=30",
        "hydra.sweeper.budget=4",
        "hydra.sweeper.rounds=2",
        "hydra.sweep.dir=s",
        *SLURM_LAUNCHER,
        cwd=tmp_path,
        env=slurm_cluster,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    records = [json.loads(line) for line in (tmp_path / "s" / "trials.jsonl").read_text().splitlines()]
    assert sorted(r["number"] for r in records) == [0, 1, 2, 3]
    assert all(r["status"] == "completed" and r["eligible"] for r in records)
    for record in records:
        summary = read_summary(tmp_path / "s" / str(record["number"]))
        assert summary["metrics"]["dev"]["error"] == record["objective"]
    # The jobs really went through SLURM: submitit's folder holds one log per SLURM job id.
    logs = list((tmp_path / "s" / ".submitit").glob("*/*_log.out"))
    assert len(logs) == 4
    assert "Best: trial" in result.stdout
