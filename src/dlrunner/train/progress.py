"""Live progress on a terminal, plain periodic lines elsewhere (CI, SLURM logs, nohup)."""

from __future__ import annotations

import sys
import time

from rich.console import Console


def make_progress(mode: str, total_steps: int, start_step: int = 0, console: Console | None = None):
    """``auto``: a live bar when stdout is a terminal, plain lines otherwise; ``bar``, ``plain``, ``none``."""
    if console is None:
        from dlrunner.console import make_console

        console = make_console()
    if mode == "auto":
        mode = "bar" if console.is_terminal else "plain"
    if mode == "bar":
        return BarProgress(total_steps, start_step, console)
    if mode == "plain":
        return PlainProgress(total_steps, start_step, console.file or sys.stdout)
    return NoProgress()


def _fmt(value, digits=4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


class NoProgress:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def advance(self, step: int, epoch: int) -> None:
        pass

    def evaluated(self, record: dict) -> None:
        pass


class PlainProgress(NoProgress):
    """One line per evaluation: step, epoch, train loss, dev error, ETA."""

    def __init__(self, total_steps: int, start_step: int, stream):
        self.total, self.start_step, self.stream = total_steps, start_step, stream
        self.started = time.perf_counter()

    def evaluated(self, record: dict) -> None:
        step = record["step"]
        elapsed = time.perf_counter() - self.started
        eta = elapsed / max(1, step - self.start_step) * (self.total - step)
        trial = f"trial {record['trial']}  " if "trial" in record else ""  # a stack's: which trial this is
        print(
            f"step {step}/{self.total}  {trial}epoch {record['epoch']}  loss {_fmt(record['train_loss'])}"
            f"  train err {_fmt(record['train']['error'])}  dev err {_fmt(record['dev']['error'])}"
            f"  lr {record['lr']:.3g}  eta {eta:.0f}s",
            file=self.stream,
            flush=True,
        )


class BarProgress(NoProgress):
    """A rich progress bar; the step count moves every few steps, the metrics at each evaluation."""

    UPDATE_EVERY = 20  # steps between bar refreshes (a refresh costs microseconds, not a device sync)

    def __init__(self, total_steps: int, start_step: int, console: Console):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.progress = Progress(
            TextColumn("[bold]train"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[trial]}"),
            TextColumn("epoch {task.fields[epoch]}"),
            TextColumn("loss {task.fields[loss]}"),
            TextColumn("dev err {task.fields[dev]}"),
            TimeRemainingColumn(),
            console=console,
        )
        self.task = self.progress.add_task(
            "train", total=total_steps, completed=start_step, epoch=0, loss="-", dev="-", trial=""
        )

    def __enter__(self):
        self.progress.start()
        return self

    def __exit__(self, *exc):
        self.progress.stop()
        return False

    def advance(self, step: int, epoch: int) -> None:
        if step % self.UPDATE_EVERY == 0:
            self.progress.update(self.task, completed=step, epoch=epoch)

    def evaluated(self, record: dict) -> None:
        self.progress.update(
            self.task,
            completed=record["step"],
            epoch=record["epoch"],
            trial=f"trial {record['trial']}" if "trial" in record else "",
            loss=_fmt(record["train_loss"]),
            dev=_fmt(record["dev"]["error"]),
        )
