"""Hydra's own conformance suites (``hydra.test_utils.launcher_common_tests``), subclassed as Hydra's
official plugins subclass them, against dlrunner's two plugins:

- the sweeper ``hydra/sweeper=dlrunner`` with ``method=grid``, which enumerates Hydra's sweep syntax
  (``+a=0,1``, ``group1=file1,file2``) as the basic sweeper does, in the same order and with the same
  job overrides, and runs the one job when there is nothing to search;
- the launcher ``hydra/launcher=stacked``, which runs the jobs of any config that is not dlrun's
  through Hydra's sequential path.

Every test of the suites applies to these plugins and runs; none is skipped. The suites' apps know
nothing of dlrun: their tasks return 100, None or a string, which the sweeper records as trials
without a number to optimise (the sweep still runs every job and returns its results). With
``hydra.sweeper.max_batch_size`` the sweeper returns one list per launch, as Hydra's basic sweeper
does (``BatchedSweeperTestSuite``); without it, one list per round.
"""

from __future__ import annotations

import pytest
from hydra.test_utils.launcher_common_tests import BatchedSweeperTestSuite, IntegrationTestSuite, LauncherTestSuite

SWEEPER = ["hydra/sweeper=dlrunner", "hydra.sweeper.method=grid"]


@pytest.fixture(autouse=True)
def hydras_default_version_base():
    """The suites expect Hydra's defaults for an app that gives no version base (1.1: jobs change
    into their folder, where the suites look for their logs), as in a fresh process. A dlrun command
    run earlier in this process leaves 1.3 in Hydra's VersionBase singleton, which outlives it."""
    from hydra.version import VersionBase
    from packaging.version import Version

    saved = VersionBase.instance().getbase()
    VersionBase.instance().setbase(Version("1.1"))
    yield
    VersionBase.instance().version_base = saved  # may be "unspecified", which setbase() refuses


@pytest.mark.parametrize("launcher_name, overrides", [("basic", SWEEPER)])
class TestDlrunnerSweeperWithHydrasLauncherSuite(LauncherTestSuite):
    pass


@pytest.mark.parametrize("launcher_name, overrides", [("basic", [*SWEEPER, "hydra.sweeper.max_batch_size=2"])])
class TestDlrunnerSweeperBatches(BatchedSweeperTestSuite):
    pass


@pytest.mark.parametrize("task_launcher_cfg, extra_flags", [({}, ["-m", *SWEEPER])])
class TestDlrunnerSweeperIntegration(IntegrationTestSuite):
    pass


@pytest.mark.parametrize("launcher_name, overrides", [("stacked", [])])
class TestStackedLauncherSuite(LauncherTestSuite):
    pass


@pytest.mark.parametrize("task_launcher_cfg, extra_flags", [({}, ["-m", "hydra/launcher=stacked"])])
class TestStackedLauncherIntegration(IntegrationTestSuite):
    pass
