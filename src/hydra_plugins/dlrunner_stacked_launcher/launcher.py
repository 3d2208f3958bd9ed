"""The thin Hydra Launcher class; the work happens in dlrunner.stack.launch (imported lazily)."""

from collections.abc import Sequence
from dataclasses import dataclass

from hydra.core.config_store import ConfigStore
from hydra.plugins.launcher import Launcher


@dataclass
class StackedLauncherConf:
    _target_: str = "hydra_plugins.dlrunner_stacked_launcher.launcher.StackedLauncher"
    max_stack: int = 64  # trials per stack at most; a larger group is split into balanced stacks no larger


ConfigStore.instance().store(group="hydra/launcher", name="stacked", node=StackedLauncherConf, provider="dlrunner")


class StackedLauncher(Launcher):
    def __init__(self, max_stack: int = 64) -> None:
        self.max_stack = max_stack
        self.hydra_context = self.task_function = self.config = None

    def setup(self, *, hydra_context, task_function, config) -> None:
        self.hydra_context, self.task_function, self.config = hydra_context, task_function, config

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int):
        from dlrunner.stack.launch import launch

        return launch(self, job_overrides, initial_job_idx)
