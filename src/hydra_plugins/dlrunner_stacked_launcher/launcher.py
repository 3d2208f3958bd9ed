"""The thin Hydra Launcher class; the work happens in dlrunner.stack.launch (imported lazily).

Only dlrun's own experiments can be stacked. The jobs of any other task (a Hydra app that knows
nothing of dlrun) run one after another exactly as Hydra's basic launcher runs them, with one note
saying why, so that ``hydra/launcher=stacked`` is safe to select in any app.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from hydra.core.config_store import ConfigStore
from hydra.plugins.launcher import Launcher


@dataclass
class StackedLauncherConf:
    _target_: str = "hydra_plugins.dlrunner_stacked_launcher.launcher.StackedLauncher"
    max_stack: int = 64  # rows per stack at most; a larger group waits in line for the rows trials free


ConfigStore.instance().store(group="hydra/launcher", name="stacked", node=StackedLauncherConf, provider="dlrunner")


class StackedLauncher(Launcher):
    def __init__(self, max_stack: int = 64) -> None:
        self.max_stack = max_stack
        self.hydra_context = self.task_function = self.config = None
        self._noted = False
        # on_return(i, job): told as the i-th job of a launch finishes in a stack (its result is
        # final), before launch() returns; dlrunner's sweeper writes its ledger line then
        self.on_return = None
        # job_numbers: the jobs' numbers when they do not count up from initial_job_idx (dlrunner's
        # sweeper resuming a round whose finished trials sit between its unfinished ones, which then
        # go on as one stack); None: Hydra's numbering
        self.job_numbers = None

    def setup(self, *, hydra_context, task_function, config) -> None:
        self.hydra_context, self.task_function, self.config = hydra_context, task_function, config

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int):
        from dlrunner.sweep.best import is_dlrun_task

        # Stacking trains the trials with dlrun's own code instead of calling the task function:
        # right only when the task is dlrun's.
        if not is_dlrun_task(self.task_function):
            if not self._noted:
                print(
                    "note: hydra/launcher=stacked stacks only dlrun's own experiments (dlrun train / sweep); "
                    "these jobs run one after another, as with the basic launcher",
                    flush=True,
                )
                self._noted = True
            return self._run_in_sequence(job_overrides, initial_job_idx)
        from dlrunner.stack.launch import launch

        return launch(self, job_overrides, initial_job_idx)

    def numbers(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> list[int]:
        """Each job's number: ``job_numbers`` when set, else Hydra's, counting up from ``initial_job_idx``."""
        if self.job_numbers is not None:
            if len(self.job_numbers) != len(job_overrides):
                raise ValueError(f"{len(self.job_numbers)} job numbers for {len(job_overrides)} jobs")
            return list(self.job_numbers)
        return list(range(initial_job_idx, initial_job_idx + len(job_overrides)))

    def _run_in_sequence(self, job_overrides, initial_job_idx: int) -> list:
        """Hydra's basic launcher, through Hydra's public job API."""
        import logging

        from hydra.core.utils import configure_log, filter_overrides, run_job, setup_globals
        from omegaconf import open_dict

        setup_globals()
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        Path(str(self.config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
        log = logging.getLogger(__name__)
        returns = []
        for number, overrides in zip(self.numbers(job_overrides, initial_job_idx), job_overrides):
            log.info(f"\t#{number} : {' '.join(filter_overrides(overrides))}")
            config = self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
            with open_dict(config):
                config.hydra.job.id = config.hydra.job.num = number
            returns.append(
                run_job(
                    hydra_context=self.hydra_context,
                    task_function=self.task_function,
                    config=config,
                    job_dir_key="hydra.sweep.dir",
                    job_subdir_key="hydra.sweep.subdir",
                )
            )
        return returns
