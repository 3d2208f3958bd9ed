"""The ``dlrun`` command line: ``main`` is the console script.

``base`` holds what every command shares (the Typer app, Hydra, bad input); ``commands``,
``diagnostics`` and ``trained`` (predict and evaluate a trained run) register their commands on that app.
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

from dlrunner.cli import commands, diagnostics, trained  # noqa: F401 - registers the commands on the app
from dlrunner.cli.base import app, compose, fail
from dlrunner.cli.shell import shown_completion
from dlrunner.console import guard_stdout

__all__ = ["app", "compose", "main"]


def main() -> None:
    whole_process = _is_the_whole_process()  # before the commands rewrite sys.argv for Hydra
    try:
        script = shown_completion(sys.argv[1:])
    except ValueError as bad_shell:
        fail(str(bad_shell), code=2)
    if script is not None:
        try:
            print(script, flush=True)
        except BrokenPipeError:  # `| head`: the reader has what it wanted; nothing more to say at exit
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return
    stdout = sys.stdout
    guard_stdout()
    try:
        app()
    except SystemExit as done:
        if "torch" in sys.modules and (done.code is None or isinstance(done.code, int)) and whole_process:
            from dlrunner.internals import exit_without_teardown  # imports torch: loaded already

            exit_without_teardown(done.code or 0)
        raise
    finally:
        with contextlib.suppress(OSError, ValueError, AttributeError):  # AttributeError: stdout closed (None)
            sys.stdout.flush()  # through the guard: what is still buffered meets a closed pipe here, not at exit
        sys.stdout = stdout


def _is_the_whole_process() -> bool:
    """Whether this main() is the process itself: the `dlrun` command or `python -m dlrunner`, with no
    profiler or debugger attached (they write their results after main returns) and
    DLRUN_FULL_EXIT unset. A script or notebook that calls main() gets its SystemExit back."""
    program = Path(sys.argv[0]).stem if sys.argv else ""
    return (
        program in ("dlrun", "__main__")
        and sys.getprofile() is None
        and sys.gettrace() is None
        and not os.environ.get("DLRUN_FULL_EXIT")
    )
