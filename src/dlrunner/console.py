"""Where dlrun's output goes: the terminal at its own width, files and pipes unwrapped, a reader
that goes away (``| head -1``) never failing a run, and a copy of a run's output in its folder.

Every rich Console of dlrun comes from ``make_console``. rich's default for a file or a pipe is 80
columns: SLURM and CI logs and ``| tee`` then got values and paths split over lines. Off a terminal,
text is never wrapped (``soft_wrap``) and tables get ``OFF_TERMINAL_WIDTH`` columns (or $COLUMNS,
when set, to lay tables out); a table wider than that is for the caller to show another way.
"""

from __future__ import annotations

import errno
import os
import re
import sys

OFF_TERMINAL_WIDTH = 200

# Cursor movement and line erasing: the redraws of a live progress bar, not lines worth a log.
_REDRAW = re.compile(r"\x1b\[(\d*[ABK]|\?25[lh])")
_ANSI = re.compile(r"\x1b\[[0-9;?]*[a-zA-Z]")


def make_console(stderr: bool = False, quiet: bool = False, file=None):
    """A rich Console: the terminal's width on a terminal, no wrapping elsewhere. On stdout it
    writes through a ``ConsoleStream``, so that a reader that leaves (``dlrun ls | head -1``) does
    not fail the command."""
    from rich.console import Console

    if file is None and not stderr:
        file = ConsoleStream()
    stream = file if file is not None else sys.stderr
    on_terminal = _isatty(stream)
    if on_terminal:
        return Console(stderr=stderr, quiet=quiet, file=file)
    width = int(os.environ["COLUMNS"]) if os.environ.get("COLUMNS", "").isdigit() else OFF_TERMINAL_WIDTH
    return Console(stderr=stderr, quiet=quiet, file=file, width=width, soft_wrap=True)


def _isatty(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError, OSError):
        return False


class ConsoleStream:
    """A text stream in front of stdout: a closed reader (``| head -1``, a closed terminal) is
    ignored from then on instead of raising BrokenPipeError into the run, and what is written can
    be copied to a log file (``copy_to``) without the redraws of a live progress bar."""

    def __init__(self, stream=None):
        self.stream = stream if stream is not None else sys.stdout
        self.reader_gone = self.stream is None  # a process started with its stdout closed
        self._copy = None

    def write(self, text: str) -> int:
        if self._copy is not None and not _REDRAW.search(text):
            self._copy.write(_ANSI.sub("", text))
        if not self.reader_gone:
            try:
                self.stream.write(text)
            except OSError as err:
                self._lost(err)
        return len(text)

    def flush(self) -> None:
        if self._copy is not None:
            self._copy.flush()
        if not self.reader_gone:
            try:
                self.stream.flush()
            except OSError as err:
                self._lost(err)

    def _lost(self, err: OSError) -> None:
        if err.errno not in (errno.EPIPE, errno.EIO, errno.EBADF) and not isinstance(err, BrokenPipeError):
            raise err
        self.reader_gone = True
        # Whatever else writes to this descriptor later (the interpreter flushing stdout at exit,
        # a library's print) writes into /dev/null instead of raising again.
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self.stream.fileno())
            os.close(devnull)
        except (OSError, AttributeError, ValueError):
            pass  # not a real descriptor (captured output): nothing else will write to it

    def copy_to(self, path) -> None:
        """From now on, also write (without colours) into ``path``, appending."""
        self.stop_copy()
        self._copy = open(path, "a", encoding="utf-8")  # noqa: SIM115 -- open until stop_copy()

    def stop_copy(self) -> None:
        if self._copy is not None:
            self._copy.close()
            self._copy = None

    def isatty(self) -> bool:
        return not self.reader_gone and _isatty(self.stream)

    def fileno(self) -> int:
        return self.stream.fileno()

    @property
    def encoding(self) -> str:
        return getattr(self.stream, "encoding", "utf-8")

    def writelines(self, lines) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str):  # the rest of a text stream (buffer, errors, name, ...) is the stream's
        if name.startswith("__") or "stream" not in self.__dict__:  # copy and pickle look before __init__
            raise AttributeError(name)
        return getattr(self.stream, name)


def guard_stdout() -> None:
    """Route this process's ``sys.stdout`` through a ``ConsoleStream``: a reader that leaves
    (``dlrun sweep ... | head -1``) then fails no print, log line or trial, in the process that
    runs the command and in a worker process that runs a job."""
    if sys.stdout is not None and not isinstance(sys.stdout, ConsoleStream):  # None: started with stdout closed
        sys.stdout = ConsoleStream(sys.stdout)


def table_fits(console, table, prose_width: int = 0) -> bool:
    """Whether ``table`` shows whole on ``console``: every row on one line each, or, with
    ``prose_width``, its last column (sentences that may wrap inside their cell) still at least that
    wide while the other columns keep their lines whole. A table that does not fit is shown
    another way (one block a row) rather than truncated."""
    from rich.measure import Measurement

    wide = console.options.update(max_width=100_000)
    if not prose_width:
        return Measurement.get(console, wide, table).maximum <= console.width
    fixed = [
        max(
            [Measurement.get(console, wide, column.header).maximum]
            + [Measurement.get(console, wide, cell).maximum for cell in column.cells]
        )
        for column in table.columns[:-1]
    ]
    borders = 3 * len(table.columns) + 1
    return sum(fixed) + prose_width + borders <= console.width
