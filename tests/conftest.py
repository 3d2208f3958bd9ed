"""The test tiers, and the fixtures every test module shares (helper functions are in helpers.py).

Two tiers, one rule. A test belongs to the **slow tier** -- marked ``@pytest.mark.slow``, or a whole
module with ``pytestmark = pytest.mark.slow`` -- when it does any of these:

- needs a service: the SLURM cluster, a headless Chromium;
- kills or signals processes, or measures a whole process (start-up time, teardown, memory, leaks);
- trains for more than a few seconds (over ~3 s of the test's own time on a 2-core machine);
- runs a benchmark script or reproduces a published table.

Every other test is in the **fast tier**, which still covers every package's logic and one tiny
end-to-end path through the real CLI for each command (test_commands.py).

    python -m pytest                             # the fast tier: the everyday command (a few minutes)
    python -m pytest --runslow                   # both tiers: what CI runs (.ci/run)
    python -m pytest --runslow tests/test_faults.py   # one file, slow tests included
    python -m pytest tests/test_cli.py::NAME     # a test named by its id runs, whatever its tier

The slow tier is only left out of the everyday run, never out of CI.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from helpers import REPO


def pytest_addoption(parser):
    parser.addoption(
        "--runslow",
        action="store_true",
        default=False,
        help="also run the slow tier (services, signals, long training)",
    )


def pytest_collection_modifyitems(config, items):
    if config.getoption("--runslow"):
        return
    named = [_named_test(arg) for arg in config.args if "::" in arg]  # a test asked for by its id runs
    slow = [item for item in items if item.get_closest_marker("slow") and not any(_is(item, n) for n in named)]
    if slow:
        config.hook.pytest_deselected(items=slow)
        slow_ids = {id(item) for item in slow}
        items[:] = [item for item in items if id(item) not in slow_ids]


def _named_test(arg: str) -> tuple[str, str]:
    path, _, name = arg.partition("::")
    return os.path.abspath(path), name


def _is(item, named: tuple[str, str]) -> bool:
    path, name = named
    own = item.nodeid.partition("::")[2]
    return str(item.path) == path and (own == name or own.startswith((f"{name}[", f"{name}::")))


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    deselected = [r for r in terminalreporter.stats.get("deselected", []) if r.get_closest_marker("slow")]
    if deselected and not config.getoption("--runslow"):
        count = f"{len(deselected)} slow-tier test{'s' if len(deselected) > 1 else ''}"
        terminalreporter.write_line(f"{count} not run: add --runslow to run them too (or name a test by its id)")


def pytest_report_header(config):
    if config.getoption("--runslow"):
        return "tiers: fast and slow (--runslow)"
    return "tiers: fast only (the slow tier is deselected; --runslow runs it too)"


@pytest.fixture(autouse=True)
def _isolated_cwd(tmp_path, monkeypatch):
    """Every test runs in its own directory, so outputs/ never lands in the repository."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DLRUN_CONFIG_DIR", raising=False)


def _unavailable(reason: str):
    """A service a test needs is missing: a skip with the reason, but a failure under CI (which installs it)."""
    if os.environ.get("CI"):
        pytest.fail(f"CI must run this test, but: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def slurm_cluster(tmp_path_factory):
    """A real single-node SLURM cluster (scripts/slurm_cluster.sh: slurmctld, slurmd and munged on this
    machine), started once for the module and stopped by pid afterwards. Yields the environment that
    SLURM commands need."""
    script = REPO / "scripts" / "slurm_cluster.sh"
    if shutil.which("slurmctld") is None or shutil.which("munged") is None:
        _unavailable("SLURM is not installed (scripts/slurm_cluster.sh install, as root)")
    if os.geteuid() != 0:
        _unavailable("the test cluster runs its daemons as root")
    state = tmp_path_factory.mktemp("slurm")
    env = {**os.environ, "DLRUNNER_SLURM_DIR": str(state)}
    started = subprocess.run(["bash", str(script), "start"], env=env, capture_output=True, text=True, timeout=120)
    if started.returncode != 0:
        subprocess.run(["bash", str(script), "stop"], env=env, timeout=60)
        _unavailable(f"the SLURM cluster did not start: {started.stderr[-2000:]}")
    try:
        yield {"SLURM_CONF": str(state / "slurm.conf")}
    finally:
        subprocess.run(["bash", str(script), "stop"], env=env, timeout=60)
