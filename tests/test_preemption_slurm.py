"""Preemption on SLURM, for real: a sweep through hydra/launcher=submitit_slurm on the single-node
cluster of tests/test_sweep_slurm.py, with one running trial requeued by `scontrol requeue`
(SLURM sends SIGTERM, kills the job and queues it again) and the other sent SIGUSR2 (what SLURM
sends before a time limit: submitit checkpoints and requeues the job, up to
hydra.launcher.max_num_timeout times). Both trials must resume from their checkpoints and end as
if never stopped.
"""

from __future__ import annotations

import os
import subprocess
import time

import pytest

from helpers import (
    SLURM_LAUNCHER,
    last_step,
    output,
    read_metrics,
    read_summary,
    run_dlrun,
    start_dlrun,
    sweep_ledger,
    wait_for,
)

pytestmark = pytest.mark.slow  # needs a service: the SLURM cluster

TRIAL = ("trainer.steps=20000", "trainer.eval_every=500", "trainer.checkpoint_every=1")


def squeue(env: dict) -> dict:
    """Job id -> (state, reason) of the jobs in the queue."""
    out = subprocess.run(["squeue", "-h", "-o", "%i %T %r"], env=env, capture_output=True, text=True, timeout=30).stdout
    return {job: (state, reason) for job, state, reason in (line.split(maxsplit=2) for line in out.splitlines())}


def test_requeued_and_timed_out_trials_resume_from_their_checkpoints(tmp_path, slurm_cluster):
    env = {**os.environ, **slurm_cluster}
    sweep = start_dlrun(
        "sweep",
        "trainer.seed=0,1",
        *TRIAL,
        "hydra.sweeper.method=grid",
        "hydra.sweeper.budget=2",
        "hydra.sweeper.rounds=1",
        "hydra.sweep.dir=s",
        *SLURM_LAUNCHER,
        "hydra.launcher.max_num_timeout=2",
        cwd=tmp_path,
        env=slurm_cluster,
    )
    trials = [tmp_path / "s" / "0", tmp_path / "s" / "1"]
    wait_for(
        lambda: all(last_step(t) >= 1000 for t in trials),
        "both trials past their second checkpoint",
        sweep,
        timeout=300,
    )
    jobs = sorted(squeue(env))  # one array job: task i runs trial i
    assert len(jobs) == 2, jobs
    subprocess.run(["scontrol", "requeue", jobs[0]], env=env, check=True, timeout=30)
    subprocess.run(["scancel", "--signal=USR2", jobs[1]], env=env, check=True, timeout=30)

    # SLURM holds a requeued job back for its credential lifetime (2 minutes); let it start sooner,
    # but not within the second of its requeue: slurmd refuses a job credential issued in the same
    # second as the revocation of the job's old one ("Job credential revoked"), and the job then
    # ends as failed instead of running again.
    released, pending_since = set(), {}

    def released_and_done() -> bool:
        for job, (state, reason) in squeue(env).items():
            if (
                state == "PENDING"
                and reason == "BeginTime"
                and job not in released
                and time.monotonic() - pending_since.setdefault(job, time.monotonic()) >= 2.0
            ):
                subprocess.run(["scontrol", "update", f"JobId={job}", "StartTime=now"], env=env, check=True, timeout=30)
                released.add(job)
        return sweep.poll() is not None

    wait_for(released_and_done, "the sweep to finish", timeout=400)
    _out, err = output(sweep)
    assert sweep.returncode == 0, err[-3000:]
    assert released == set(jobs)  # both jobs really went back to the queue

    records = sweep_ledger(tmp_path / "s")
    assert sorted(r["number"] for r in records) == [0, 1]
    for record, how in zip(sorted(records, key=lambda r: r["number"]), ("scontrol requeue", "SIGUSR2")):
        run_dir = tmp_path / "s" / str(record["number"])
        summary = read_summary(run_dir)
        assert record["status"] == summary["status"] == "completed", how
        resumed = summary["resumed_from"]
        assert resumed is not None and 1000 <= resumed["step"] < 20000, (how, resumed)
        # The job ran twice (submitit's log of it, appended to, says so) ...
        [log] = (tmp_path / "s" / ".submitit" / jobs[record["number"]]).glob("*_log.out")
        assert log.read_text().count("Starting with JobEnvironment") == 2, how
        # ... and its result is that of the same trial run straight through, bit for bit.
        reference = run_dlrun("train", *record["overrides"], f"hydra.run.dir=ref{record['number']}", cwd=tmp_path)
        assert reference.returncode == 0, reference.stderr
        assert read_metrics(run_dir) == read_metrics(tmp_path / f"ref{record['number']}"), how
        assert record["objective"] == read_summary(tmp_path / f"ref{record['number']}")["metrics"]["dev"]["error"]
    timed_out = tmp_path / "s" / ".submitit" / jobs[1]
    assert "Requeued job" in "".join(p.read_text() for p in timed_out.glob("*_log.out"))
