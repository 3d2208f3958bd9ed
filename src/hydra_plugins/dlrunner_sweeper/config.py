"""The sweeper's settings (``hydra.sweeper.*``, declared in dlrunner.sweep.conf), registered as
hydra/sweeper=dlrunner."""

from hydra.core.config_store import ConfigStore

from dlrunner.sweep.conf import DlrunnerSweeperConf

ConfigStore.instance().store(group="hydra/sweeper", name="dlrunner", node=DlrunnerSweeperConf, provider="dlrunner")
