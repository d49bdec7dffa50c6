"""The terminal, as a callback: a live bar, plain lines, or (in sweep jobs) only the result.

* `bar` (a terminal, outside sweeps): a rich progress bar that fits the terminal's width, with
  each epoch's line printed above it and kept;
* `lines` (a file, CI, nohup, `train.progress=lines`): one unwrapped line per epoch, and within
  a long epoch a progress line at least every 30 s (steps, rate, time left);
* `quiet` (sweep jobs): per-epoch lines go to run.log only.
The end of a run prints a summary table (see rnnexp.report.results).
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any, Optional

from rich.console import Console
from rich.logging import RichHandler
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from rnnexp.engine.callbacks import Callback

log = logging.getLogger("rnnexp")
start_log = logging.getLogger("rnnexp.start")  # what the run is: console (not in sweeps) and run.log
epoch_log = logging.getLogger("rnnexp.epoch")  # per-epoch and progress lines: run.log; console in lines mode
PROGRESS_LINE_EVERY_S = 30.0


def make_console() -> Console:
    """stdout console; when it is not a terminal, wide enough that nothing wraps."""
    console = Console()
    if not console.is_terminal:
        console = Console(width=200, no_color=True, highlight=False, soft_wrap=True)
    return console


def progress_mode(setting: str, console: Console, in_sweep: bool) -> str:
    if setting in ("bar", "lines"):
        return setting
    return "quiet" if in_sweep else "bar" if console.is_terminal else "lines"


def route_console_logging(console: Console, mode: str) -> None:
    """Adapt the console handler Hydra set up: rich's handler on a terminal (it prints above a live
    bar); in sweep jobs keep start and epoch lines out of the shared terminal (they stay in run.log)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, logging.FileHandler) or not isinstance(handler, logging.StreamHandler):
            continue
        if getattr(handler, "stream", None) not in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
            continue
        if mode == "bar":
            rich_handler = RichHandler(console=console, show_path=False, show_level=False, markup=False)
            rich_handler.setLevel(handler.level)
            # (the bar prints each epoch's line above itself: through the log it came a second time)
            rich_handler.addFilter(lambda record: not record.name.startswith("rnnexp.epoch"))
            root.removeHandler(handler)
            root.addHandler(rich_handler)
        elif mode == "quiet":
            handler.addFilter(lambda record: not record.name.startswith(("rnnexp.epoch", "rnnexp.start")))  # (.curriculum too)


def epoch_line(metrics: dict[str, float], epochs: int, unit: str) -> str:
    line = (f"epoch {int(metrics['epoch']):>3}/{epochs}  train loss {metrics['train/loss']:.4f} "
            f"acc {metrics['train/accuracy']:.4f}  val loss {metrics['val/loss']:.4f} "
            f"acc {metrics['val/accuracy']:.4f}")
    if "val/exact_match" in metrics:  # a written sequence: the share written right in every symbol
        line += f" exact {metrics['val/exact_match']:.4f}"
    if "train/teacher_forcing" in metrics and metrics["train/teacher_forcing"] != 1.0:
        line += f"  forcing {metrics['train/teacher_forcing']:.2f}"
    if "train/stage" in metrics:  # a curriculum: the stage this epoch trained on
        line += f"  stage {int(metrics['train/stage'])}" + (f" acc {metrics['stage/accuracy']:.4f}" if "stage/accuracy" in metrics else "")
    return line + f"  {metrics.get('train/targets_per_second', 0):,.0f} {unit}/s"


def duration(seconds: float) -> str:
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


class ConsoleProgress(Callback):
    def __init__(self, console: Console, mode: str, unit: str, epochs: int, batches_per_epoch: int, label: str = ""):
        """`label`: what each line starts with (a packed seed's run: its job's name), "" for none."""
        self.console, self.mode, self.unit, self.epochs = console, mode, unit, epochs
        self.batches = batches_per_epoch
        self.label = f"{label}: " if label else ""
        self.progress: Optional[Progress] = None
        self.bar: Any = None
        self.epoch_started = self.last_line = time.monotonic()
        self.estimated = False
        self.partial = False

    def on_fit_start(self, engine: Any) -> None:
        s = engine.state
        self.epoch_started = self.last_line = time.monotonic()
        self.partial = s.batch > 0  # a resumed epoch that started part-way tells nothing about an epoch's time
        if self.mode != "bar":
            return
        narrow = self.console.width < 100
        columns = [TextColumn("{task.description}"), BarColumn(bar_width=10 if narrow else 30)]
        columns += [] if narrow else [MofNCompleteColumn()]
        columns += [TextColumn("{task.fields[metrics]}"), TimeRemainingColumn()]
        columns += [] if narrow else [TimeElapsedColumn()]
        self.progress = Progress(*columns, console=self.console, transient=True)
        self.progress.start()
        self.bar = self.progress.add_task(f"epoch {s.epoch}/{self.epochs}", total=self.epochs * self.batches,
                                          completed=(s.epoch - 1) * self.batches + s.batch, metrics="")

    def on_log(self, engine: Any, metrics: dict[str, float]) -> None:
        if self.progress is not None:
            s = engine.state
            self.progress.update(self.bar, completed=(s.epoch - 1) * self.batches + s.batch,
                                 metrics=f"loss {metrics['train/step_loss']:.4f} acc {metrics['train/step_accuracy']:.3f}")

    def on_progress(self, engine: Any) -> None:
        s, now = engine.state, time.monotonic()
        if self.progress is not None:
            self.progress.update(self.bar, completed=(s.epoch - 1) * self.batches + s.batch)
        elif now - self.last_line >= PROGRESS_LINE_EVERY_S and s.batch:
            rate = s.batch / max(1e-9, now - self.epoch_started)
            left = (self.batches - s.batch) / max(rate, 1e-9)
            epoch_log.info(f"{self.label}epoch {s.epoch}/{self.epochs}: {s.batch}/{self.batches} steps "
                           f"({100 * s.batch / self.batches:.0f}%), {rate:.1f} steps/s, ~{duration(left)} left in this epoch")
            self.last_line = now

    def on_epoch_end(self, engine: Any, metrics: dict[str, float]) -> None:
        line = self.label + epoch_line(metrics, self.epochs, self.unit)
        if self.progress is not None:
            self.progress.console.print(line, highlight=False, soft_wrap=True)  # kept above the bar
            s = engine.state
            self.progress.update(self.bar, completed=(s.epoch - 1) * self.batches,
                                 description=f"epoch {min(s.epoch, self.epochs)}/{self.epochs}")
        epoch_log.info(line)
        if self.partial:
            self.partial = False
        elif not self.estimated:  # the run's expected duration, once a whole epoch has been timed
            self.estimated = True
            took = time.monotonic() - self.epoch_started
            left = self.epochs - int(metrics["epoch"])
            if left > 0:
                limit = engine.cfg.time_limit_minutes
                bound = min(took * left, limit * 60) if limit else took * left
                stop = " (less if it reaches train.target_accuracy)" if engine.cfg.target_accuracy else ""
                start_log.info(f"an epoch takes ~{duration(took)}: at most ~{duration(bound)} more{stop}")
        self.epoch_started = self.last_line = time.monotonic()

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None

    def on_interrupt(self, engine: Any) -> None:
        self.close()

    def on_fit_end(self, engine: Any) -> None:
        self.close()


def print_summary(console: Console, title: str, rows: list[tuple[str, str]]) -> None:
    """The end-of-run table: two columns that fit any width (paths are printed whole, below)."""
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column("what", style="bold", no_wrap=True)
    table.add_column("value", no_wrap=True, overflow="ellipsis")
    paths = [(k, v) for k, v in rows if k == "run directory"]
    for key, value in rows:
        if (key, value) not in paths:
            table.add_row(key, value)
    console.print(table)
    for key, value in paths:  # on its own line, never split, so it can be copied
        console.print(f"{key}: {value}", soft_wrap=True, highlight=False)
