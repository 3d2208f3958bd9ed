"""The filter that keeps the sweeper's DLRUN_* variables out of Hydra's log lines."""

from __future__ import annotations

import json
import logging

from dlrunner.sweep.logs import HideSweepEnvironment


def shown(message: str, *args) -> str:
    record = logging.LogRecord("hydra", logging.INFO, __file__, 1, message, args, None)
    assert HideSweepEnvironment().filter(record)
    return record.getMessage()


def test_the_sweepers_variables_leave_the_line_and_the_users_overrides_stay():
    pruning = json.dumps({"path": "/tmp/it's here/pruning.jsonl", "min_steps": None}).replace("'", "\\'")
    line = (
        "\t#3 : optimizer.lr=0.01 sweep=lr ++hydra.job.env_set.DLRUN_SWEEP_NAME='lr search' "
        "++hydra.job.env_set.DLRUN_SWEEP_TRIAL=3 ++hydra.job.env_set.DLRUN_SWEEP_ROUND=1 "
        f"++hydra.job.env_set.DLRUN_PRUNING='{pruning}' trainer.steps=20"
    )
    assert shown("%s", line) == "\t#3 : optimizer.lr=0.01 sweep=lr trainer.steps=20"


def test_a_users_own_environment_variables_and_other_lines_are_left_alone():
    line = "\t#0 : optimizer.lr=0.01 ++hydra.job.env_set.CUDA_VISIBLE_DEVICES=1"
    assert shown(line) == line
    assert shown("Launching %d jobs locally", 2) == "Launching 2 jobs locally"
