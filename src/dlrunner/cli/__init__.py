"""The ``dlrun`` command line: ``main`` is the console script.

``base`` holds what every command shares (the Typer app, Hydra, bad input); ``commands`` and
``diagnostics`` register their commands on that app.
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

from dlrunner.cli import commands, diagnostics  # noqa: F401 - registers the commands on the app
from dlrunner.cli.base import app, compose

__all__ = ["app", "compose", "main"]


def main() -> None:
    whole_process = _is_the_whole_process()  # before the commands rewrite sys.argv for Hydra
    try:
        app()
    except SystemExit as done:
        if "torch" in sys.modules and (done.code is None or isinstance(done.code, int)) and whole_process:
            _exit_without_teardown(done.code or 0)
        raise


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


def _exit_without_teardown(code: int) -> None:
    """End the process without the interpreter's teardown, once torch is loaded.

    That teardown frees every module and object one by one and writes nothing: measured ~0.75 s
    after `import torch` alone and ~1 s after a `dlrun train` (2026-12-03), as long as the start-up
    beyond `import torch` (issue 7). What exit still has to do is done first: exit handlers run
    (logging, W&B, temporary folders) and the standard streams are flushed. Returns, for the normal
    exit, while a non-daemon thread is alive (the interpreter would wait for it)."""
    import atexit
    import threading

    if any(t.is_alive() and not t.daemon for t in threading.enumerate() if t is not threading.main_thread()):
        return
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe or stream: nothing more can reach it
            stream.flush()
    try:  # and what C libraries wrote through stdio's own buffers
        import ctypes

        ctypes.CDLL(None).fflush(None)
    except (OSError, AttributeError):
        pass
    os._exit(code)
