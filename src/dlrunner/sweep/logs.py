"""Hydra's log lines in a dlrun sweep, without the variables the sweeper passes to each trial.

The sweeper hands every trial its place in the sweep (and the pruner's settings) as
``++hydra.job.env_set.DLRUN_*`` overrides, and the launchers log each job's overrides: the lines
grew by three to four long items that say nothing a user set. Each trial's
``.hydra/hydra.yaml`` still has them.
"""

from __future__ import annotations

import logging
import re

# ++hydra.job.env_set.DLRUN_NAME=value, the value quoted ('...' with \' inside) or one word
SWEEP_ENVIRONMENT = re.compile(r"\s*\+\+hydra\.job\.env_set\.DLRUN_\w+=(?:'(?:[^'\\]|\\.)*'|\S*)")


class HideSweepEnvironment(logging.Filter):
    """A logging filter (conf/hydra/hydra_logging/dlrun.yaml) that drops those overrides from a line."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "env_set.DLRUN_" in message:
            record.msg, record.args = SWEEP_ENVIRONMENT.sub("", message), ()
        return True
