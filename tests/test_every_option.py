"""Every option of every config group composes and trains for a couple of steps.

The list comes from the config folders themselves (what `dlrun ls` shows), so a new YAML file is
tested the day it is added.
"""

from __future__ import annotations

import numpy as np
import pytest

from dlrunner.config.catalog import options

from conftest import read_metrics, train_in_process

ALL_OPTIONS = [(group, option.name) for group, group_options in options().items() for option in group_options]
SHORT = ("trainer.steps=2", "trainer.epochs=null", "trainer.eval_every=1", "trainer.device=cpu")


def _user_files(tmp_path) -> list[str]:
    """The csv and npz options need a file of the user's: make a small one."""
    csv = tmp_path / "data.csv"
    rows = ["x1,x2,label"] + [f"{i % 7},{i % 5},{i % 3}" for i in range(60)]
    csv.write_text("\n".join(rows) + "\n")
    np.savez(tmp_path / "data.npz", X=np.random.default_rng(0).normal(size=(60, 3, 2)), y=np.arange(60) % 2)
    return [str(csv), str(tmp_path / "data.npz")]


def test_the_catalog_has_every_group_the_issue_names():
    groups = {group for group, _ in ALL_OPTIONS}
    assert {"data", "model", "optimizer", "schedule", "regularization", "trainer"} <= groups
    assert {"digits", "breast_cancer", "mnist1d", "flower", "moons", "circles", "xor", "gaussians", "spiral", "csv", "npz"} <= {
        name for group, name in ALL_OPTIONS if group == "data"
    }


@pytest.mark.parametrize("group, option", ALL_OPTIONS, ids=[f"{g}={o}" for g, o in ALL_OPTIONS])
def test_option_composes_and_trains(tmp_path, group, option):
    overrides = [f"{group}={option}"]
    if group == "data" and option in ("csv", "npz"):
        csv, npz = _user_files(tmp_path)
        overrides.append(f"data.source.path={csv if option == 'csv' else npz}")
    if group != "data":
        overrides.append("data=moons")  # small and fast; the data options are tested against the default model
    summary = train_in_process(tmp_path, *overrides, *SHORT)
    assert summary["status"] == "completed"
    assert summary["timing"]["steps"] == 2
    records = read_metrics(tmp_path / "run")
    assert [r["step"] for r in records] == [1, 2]
    assert np.isfinite(records[-1]["train_loss"])
    assert (tmp_path / "run" / "checkpoints" / "last.pt").is_file()
