"""A stacked trial is its solo run (issue 21): on MNIST-1D, the MLP and the ``mnist1d_cnn``
experiment, learning rates from 1e-3 to 0.3, 1500 steps, two seeds, each trial of one stack ends
with the dev error its solo run (``dlrun train`` with the same overrides) ends with. The contract
is at most one dev example apart; on the CPU the two take the same steps bit for bit, so they end
equal (tests/test_stack.py checks every metrics record of shorter runs)."""

from __future__ import annotations

import os

import pytest
from rich.console import Console

from dlrunner.stack.train import train_stacked
from dlrunner.train.run import train
from helpers import compose

pytestmark = pytest.mark.slow  # 44 trainings of 1500 steps
QUIET = Console(file=open(os.devnull, "w"))  # noqa: SIM115 -- a sink for the whole module
LEARNING_RATES = [0.001, 0.003, 0.01, 0.03, 0.1, 0.3]
EXPERIMENTS = {"mlp": ("model=mlp",), "cnn": ("experiment=mnist1d_cnn", "trainer.eval_test=false")}


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("experiment", list(EXPERIMENTS))
def test_each_stacked_trial_ends_with_its_solo_runs_dev_error(tmp_path, experiment, seed):
    learning_rates = LEARNING_RATES if experiment == "mlp" else [*LEARNING_RATES[::2], 0.3]
    common = ("trainer.steps=1500", "trainer.progress=none", f"trainer.seed={seed}", *EXPERIMENTS[experiment])
    cfgs = [compose(*common, f"optimizer.lr={lr}") for lr in learning_rates]
    stacked = train_stacked(cfgs, [tmp_path / f"stacked{k}" for k in range(len(cfgs))], QUIET)
    for k, cfg in enumerate(cfgs):
        solo = train(cfg, tmp_path / f"solo{k}", QUIET)
        n_dev = solo["sizes"]["dev"]
        apart = abs(stacked[k]["metrics"]["dev"]["error"] - solo["metrics"]["dev"]["error"]) * n_dev
        assert apart <= 1 + 1e-9, f"lr={learning_rates[k]}: {apart:.0f} dev examples apart"
        assert stacked[k]["status"] == solo["status"]
