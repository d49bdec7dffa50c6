"""What a run reports: TensorBoard scalars, a rich progress bar or plain lines, the summary.

One `RunLog` per run, writing into the run's directory:
* TensorBoard: `train/loss`, `train/accuracy`, `val/loss`, `val/accuracy` (+ task extras such as
  `val/bpc`) every epoch, `train/step_loss` every step (in the `steps` sub-run), the config as
  text, samples where the task makes them, the hparams view;
* the terminal: a live rich progress bar (on a terminal, outside sweeps), or one plain unwrapped
  line per epoch (CI, files, `train.progress=lines`), or nothing but the result line (sweep jobs);
* the end: a rich summary table.
"""

from __future__ import annotations

import logging
import math
import sys
from pathlib import Path
from typing import Any, Optional

from rich.console import Console
from rich.logging import RichHandler
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table
from torch.utils.tensorboard import SummaryWriter

log = logging.getLogger("rnnexp")
start_log = logging.getLogger("rnnexp.start")  # what the run is: console (not in sweeps) and run.log
epoch_log = logging.getLogger("rnnexp.epoch")  # per-epoch lines: run.log; console only in "lines" mode


def make_console() -> Console:
    """stdout console; when it is not a terminal, wide enough that nothing wraps."""
    console = Console()
    if not console.is_terminal:
        console = Console(width=200, no_color=True, highlight=False)
    return console


def route_console_logging(console: Console, mode: str) -> None:
    """Adapt the console handler Hydra set up: rich's handler on a terminal; in sweep jobs
    ("quiet"), keep per-epoch lines out of the shared terminal (they stay in run.log)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, logging.FileHandler) or not isinstance(handler, logging.StreamHandler):
            continue
        if getattr(handler, "stream", None) not in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
            continue
        hidden = {"bar": ("rnnexp.epoch",), "quiet": ("rnnexp.epoch", "rnnexp.start")}.get(mode, ())
        if mode == "bar":
            rich_handler = RichHandler(console=console, show_path=False, show_level=False, markup=False)
            rich_handler.setLevel(handler.level)
            root.removeHandler(handler)
            root.addHandler(rich_handler)
            handler = rich_handler
        if hidden:  # the bar (or, in sweeps, the result line) says it on the console
            handler.addFilter(lambda record, hidden=hidden: not record.name.startswith(hidden))


class RunLog:
    def __init__(self, run_dir: Path, mode: str, console: Console, unit: str = "targets",
                 resume_from: Any = None):
        self.run_dir, self.mode, self.console, self.unit = Path(run_dir), mode, console, unit
        # Epoch curves (x = epoch) in the run directory; the step-level loss (x = optimizer step) in
        # its `steps/` sub-run. On resume each writer purges what came after the checkpoint, so a
        # killed and resumed run has the same curves as an uninterrupted one, with no duplicate steps.
        epoch_purge = step_purge = None
        if resume_from is not None:
            epoch_purge, step_purge = len(resume_from.history) + 1, resume_from.global_step + 1
        self.writer = SummaryWriter(log_dir=str(self.run_dir), purge_step=epoch_purge)
        self.step_writer = SummaryWriter(log_dir=str(self.run_dir / "steps"), purge_step=step_purge)
        self.progress: Optional[Progress] = None
        self._bar: Any = None

    # -- start -----------------------------------------------------------------------------
    def begin(self, lines: list[str], config_yaml: str, total_steps: int, done_steps: int = 0) -> None:
        for line in lines:
            start_log.info(line)
        self.writer.add_text("config", "```\n" + config_yaml + "\n```", 0)
        if self.mode == "bar":
            self.progress = Progress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("loss {task.fields[loss]}  acc {task.fields[acc]}  val {task.fields[val]}  "
                           "{task.fields[rate]}"),
                TimeElapsedColumn(), TimeRemainingColumn(), console=self.console, transient=False)
            self.progress.start()
            self._bar = self.progress.add_task("training", total=total_steps, completed=done_steps,
                                               loss="-", acc="-", val="-", rate="")

    # -- during training -------------------------------------------------------------------
    def step(self, global_step: int, loss: float, accuracy: float, rate: float) -> None:
        if math.isfinite(loss):  # nan: a chunk with nothing to score
            self.step_writer.add_scalar("train/step_loss", loss, global_step)
        if self.progress is not None:
            self.progress.update(self._bar, advance=1, loss=f"{loss:.4f}", acc=f"{accuracy:.3f}",
                                 rate=f"{rate:,.0f} {self.unit}/s")

    def epoch(self, epoch: int, epochs: int, metrics: dict[str, float]) -> None:
        for key, value in metrics.items():
            if "/" in key:
                self.writer.add_scalar(key, value, epoch)
        self.writer.flush()
        self.step_writer.flush()
        line = (f"epoch {epoch:>3}/{epochs}  train loss {metrics['train/loss']:.4f} "
                f"acc {metrics['train/accuracy']:.4f}  val loss {metrics['val/loss']:.4f} "
                f"acc {metrics['val/accuracy']:.4f}  {metrics['train/targets_per_second']:,.0f} {self.unit}/s")
        epoch_log.info(line)
        if self.progress is not None:
            self.progress.update(self._bar, description=f"epoch {epoch}/{epochs}",
                                 val=f"{metrics['val/accuracy']:.3f}")

    def text(self, tag: str, text: str, step: int) -> None:
        self.writer.add_text(tag, text, step)

    # -- end -------------------------------------------------------------------------------
    def stop_progress(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None

    def finish(self, title: str, rows: list[tuple[str, str]], hparams: dict[str, Any],
               final_metrics: dict[str, float], epochs: int) -> None:
        self.stop_progress()
        self._write_hparams(hparams, final_metrics, epochs)
        table = Table(title=title, show_header=False, title_justify="left")
        table.add_column("what", style="bold")
        table.add_column("value", overflow="fold")
        for key, value in rows:
            table.add_row(key, value)
        if self.mode != "quiet":
            self.console.print(table)

    def _write_hparams(self, hparams: dict[str, Any], metrics: dict[str, float], step: int) -> None:
        """The hparams dashboard entry, in this run's own directory (run_name=".", not a sub-run)."""
        clean = {k: (v if isinstance(v, (int, float, str, bool)) else str(v)) for k, v in hparams.items()}
        self.writer.add_hparams(clean, {f"hparam/{k}": v for k, v in metrics.items()}, run_name=".",
                                global_step=step)

    def close(self) -> None:
        self.stop_progress()
        self.writer.close()
        self.step_writer.close()
