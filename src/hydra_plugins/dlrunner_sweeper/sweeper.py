"""The thin Hydra Sweeper class; the work happens in dlrunner.sweep.runner (imported lazily)."""

from typing import Any

from hydra.plugins.sweeper import Sweeper

from hydra_plugins.dlrunner_sweeper.config import DlrunnerSweeperConf  # noqa: F401  (registers the config)


class DlrunnerSweeper(Sweeper):
    def __init__(self, **settings: Any) -> None:
        self.settings = settings
        self.hydra_context = self.config = self.launcher = self.task_function = None

    def setup(self, *, hydra_context, task_function, config) -> None:
        from hydra.core.plugins import Plugins

        self.hydra_context, self.config, self.task_function = hydra_context, config, task_function
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    def sweep(self, arguments: list[str]) -> Any:
        from dlrunner.errors import ConfigError
        from dlrunner.sweep.best import is_dlrun_task
        from dlrunner.sweep.runner import SweepRunner

        try:
            return SweepRunner(self, self.settings).run(arguments)
        except ConfigError as err:
            if is_dlrun_task(self.task_function):
                raise  # dlrun prints it as bad input
            # Another app: the message alone, exit code 2, as dlrun does (Hydra would show a traceback).
            import sys

            print(f"hydra/sweeper=dlrunner: {err}", file=sys.stderr, flush=True)
            raise SystemExit(2) from None
