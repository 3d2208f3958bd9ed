"""Hydra callbacks of dlrun's own config (conf/config.yaml, hydra.callbacks)."""

from __future__ import annotations

from hydra.experimental.callback import Callback

from dlrunner.cli.base import state


class MultirunFolder(Callback):
    """Notes a multirun's folder in the dlrun process, as Hydra starts it: `dlrun train -m` ends
    with a table of its runs, and with the joblib or the stacked launcher no job runs dlrun's task
    in this process to tell it where they are."""

    def on_multirun_start(self, config, **kwargs) -> None:
        state["multirun_dir"] = str(config.hydra.sweep.dir)
