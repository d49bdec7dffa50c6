"""Pictures of the inside of the network during training (TensorBoard) and at its end (PNG files).

    InsightCallback(writer, run_dir, every_epochs, example)

* after epoch 1 and every `every_epochs`-th epoch: TensorBoard images `insight/states`,
  `insight/gradients_through_time`, `insight/gates` (LSTM/GRU) at global step = the epoch, and
  scalars `insight/grad_norm_h_first` / `insight/grad_norm_h_last` (d loss / d h_t at the first
  and last step) and, for gated cells, `insight/closed_<gate>` / `insight/open_<gate>` (last layer);
* at the end of training: states.png, gradients_through_time.png, gates.png in the run
  directory from the final model, and for a character model (task.vocab_size > 0) units.html and
  the text `insight/units` in TensorBoard.

`every_epochs` 0 turns all of it off. One replay of one example per picture time: never in the
training step. The model's mode, weights and gradients and torch's global RNG are left as they
were (exact resume relies on it). A failure to draw is a warning, never the end of a run.

Drawing (matplotlib, ~0.3-1 s a set) would cost more than a whole epoch of a small model, so only
the replay (milliseconds) runs in the training process; a separate process draws, on a core the
training leaves free, and its images reach TensorBoard at the next epoch end (or at the end of
training, which waits for them). Where the training uses every core, or no process can be started,
the drawing happens inline, between epochs.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
import warnings
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import fields, is_dataclass, replace
from pathlib import Path
from typing import Any, Callable, Optional

import torch

from rnnexp.engine.callbacks import Callback
from rnnexp.insight import FILES, UNITS_FILE, Insight, draw_figures, look, unit_states, units_markdown, units_report


class InsightCallback(Callback):
    def __init__(self, writer: Optional[Any], run_dir: Path | str, every_epochs: int, example: Any,
                 background: bool = True, title: str = ""):
        self.title = title  # what every picture says it shows: task, model, initialisation (and the epoch)
        self.writer = writer
        self.run_dir = Path(run_dir)
        self.every = int(every_epochs or 0)
        self.example = example
        self.last_epoch: Optional[int] = None
        self.pool: Optional[ProcessPoolExecutor] = None
        # Draw here, between epochs: no drawing process could be started (or it died), or the
        # training uses every core (`background` False), where a drawing process, even at the lowest
        # priority, cost a 2-thread language model 15-20% of its speed (BENCHMARKS.md).
        self.inline = not background
        self.pending: list[tuple[int, Future, Callable[[], Any]]] = []

    # -- hooks -------------------------------------------------------------------------------
    def due(self, epoch: int) -> bool:
        return self.every > 0 and (epoch == 1 or epoch % self.every == 0)

    def on_epoch_end(self, engine: Any, metrics: dict[str, float]) -> None:
        epoch = int(metrics.get("epoch", engine.state.epoch))
        self.last_epoch = epoch
        if self.writer is None or not self.due(epoch):
            return
        self._guarded(engine, lambda: self._log(engine, epoch))

    def on_fit_end(self, engine: Any) -> None:
        if self.every <= 0:
            return
        self._guarded(engine, lambda: self._save(engine))
        self._guarded(engine, lambda: self._collect(wait=True))
        self.close()

    def on_interrupt(self, engine: Any) -> None:
        if self.writer is not None and self.pending:
            self._guarded(engine, lambda: self._collect(wait=True))  # a resumed run does not draw them again
        self.close()

    def close(self) -> None:
        """Forget what is still queued; the drawing process stays for the next run in this process."""
        for _, future, _ in self.pending:
            future.cancel()
        self.pool = None

    # -- work --------------------------------------------------------------------------------
    def _guarded(self, engine: Any, work: Callable[[], None]) -> None:
        device = torch.device(getattr(engine, "device", "cpu"))
        cuda = [device.index if device.index is not None else torch.cuda.current_device()] \
            if device.type == "cuda" else []
        try:
            with torch.random.fork_rng(devices=cuda):  # belt and braces: nothing here draws
                work()
        except Exception as exc:  # noqa: BLE001 - a picture must never cost a run
            warnings.warn(f"insight figures failed: {type(exc).__name__}: {exc}", RuntimeWarning, stacklevel=2)

    def _look(self, engine: Any) -> Insight:
        return look(engine.model, engine.task, self.example)

    def _submit(self, function: Callable[..., Any], *args: Any) -> tuple[Future, Callable[[], Any]]:
        """Run `function(*args)` in the drawing process (inline where none can be started); the
        future, and the work itself to redo inline should that process die."""
        work = lambda: function(*args)  # noqa: E731
        if self.pool is None and not self.inline:
            self.pool = drawing_pool()
            self.inline = self.pool is None
        if self.pool is not None:
            try:
                return self.pool.submit(function, *args), work
            except (BrokenProcessPool, RuntimeError, AssertionError, OSError):  # e.g. a daemonic worker
                self.inline, self.pool = True, None
                _POOL.clear()
        done: Future = Future()
        done.set_result(work())
        return done, work

    def _result(self, future: Future, work: Callable[[], Any]) -> Any:
        try:
            return future.result()
        except BrokenProcessPool:  # the drawing process died (a signal to its process group, memory)
            self.inline, self.pool = True, None
            _POOL.clear()
            return work()

    def _collect(self, wait: bool) -> None:
        """Images drawn so far (all of them when `wait`) into TensorBoard at their epochs."""
        still = []
        for epoch, future, work in self.pending:
            if not (wait or future.done()):
                still.append((epoch, future, work))
                continue
            drawn = self._result(future, work)
            for name, rgb in drawn["images"].items():
                self.writer.add_image(f"insight/{name}", rgb, global_step=epoch, dataformats="HWC")
            for name, value in drawn["scalars"].items():
                self.writer.add_scalar(f"insight/{name}", value, epoch)
        self.pending = still
        if self.writer is not None:
            self.writer.flush()

    def _log(self, engine: Any, epoch: int) -> None:
        insight = self._look(engine)
        self.pending.append((epoch, *self._submit(draw_epoch, detached(insight), epoch, self.title)))
        self._collect(wait=False)

    def _save(self, engine: Any) -> None:
        insight = self._look(engine)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        epoch = self.last_epoch if self.last_epoch is not None else int(engine.state.epoch) - 1
        pngs, redo = self._submit(save_pngs, detached(insight), self.run_dir,
                                  picture_title(self.title, f"final model, after epoch {epoch}"))
        if insight.character_model:
            page, found = units_report(insight)
            (self.run_dir / UNITS_FILE).write_text(page, encoding="utf-8")
            if self.writer is not None:
                _, names = unit_states(insight.replay)
                step = self.last_epoch if self.last_epoch is not None else int(engine.state.epoch)
                self.writer.add_text("insight/units", units_markdown(found, names), global_step=step)
                self.writer.flush()
        self._result(pngs, redo)


_POOL: dict[str, ProcessPoolExecutor] = {}


def drawing_pool() -> Optional[ProcessPoolExecutor]:
    """The drawing process of this Python process, started on first use and kept for the runs
    that follow: a sequential sweep runs all its jobs in one process, and a joblib worker several,
    so they pay its start-up (importing torch and matplotlib, ~2-3 s of CPU) once, not once a job.
    None where no process can be started (e.g. inside a daemonic worker): draw inline."""
    if "pool" not in _POOL:
        try:
            _POOL["pool"] = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"),
                                                initializer=_setup_drawing_process, initargs=(os.getpid(),))
        except (OSError, ValueError, AssertionError, RuntimeError):
            return None
    return _POOL["pool"]


def start_drawing_process() -> None:
    """Start this process's drawing process now and let it import what drawing needs, so that it is
    ready when the first pictures are due (a short run otherwise waits for its start-up at the end)."""
    pool = drawing_pool()
    if pool is not None:
        try:
            pool.submit(_ready_to_draw)
        except (BrokenProcessPool, RuntimeError, OSError):
            _POOL.clear()  # InsightCallback finds out again, and draws inline


def _ready_to_draw() -> None:
    import rnnexp.insight.figures  # noqa: F401  (matplotlib)


def picture_title(title: str, when: str) -> str:
    """"qrsu-hard / lstm (chrono init), epoch 3": what a picture shows and when."""
    return f"{title}, {when}" if title else when


def draw_epoch(insight: Insight, epoch: int, title: str = "") -> dict[str, Any]:
    """In the drawing process: one epoch's figures as RGB arrays, and its scalars (d loss / d h_t
    at the first and last step; the share of closed and open gates in the last layer)."""
    from rnnexp.insight.figures import figure_to_rgb, gate_saturation

    images = {name: figure_to_rgb(fig)
              for name, fig in draw_figures(insight, title=picture_title(title, f"epoch {epoch}")).items()}
    scalars: dict[str, float] = {}
    grads = insight.gradients
    if len(grads):
        scalars.update(grad_norm_h_first=float(grads[0]), grad_norm_h_last=float(grads[-1]))
    last = len(insight.replay.layers) - 1
    for (layer, gate), (closed, opened) in gate_saturation(insight.replay).items():
        if layer == last:
            scalars.update({f"closed_{gate}": closed, f"open_{gate}": opened})
    return {"images": images, "scalars": scalars}


def save_pngs(insight: Insight, run_dir: Path, title: Optional[str] = None) -> None:
    """In the drawing process: the end-of-training PNG files."""
    from rnnexp.insight.figures import save_png

    for name, fig in draw_figures(insight, title).items():
        save_png(fig, run_dir / FILES[name])


def detached(value: Any) -> Any:
    """A copy without autograd history, on the CPU, that can be sent to another process."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if is_dataclass(value) and not isinstance(value, type):
        return replace(value, **{f.name: detached(getattr(value, f.name)) for f in fields(value) if f.init})
    if isinstance(value, (list, tuple)):
        return type(value)(detached(v) for v in value)
    if isinstance(value, dict):
        return {k: detached(v) for k, v in value.items()}
    return value


def _setup_drawing_process(parent: int) -> None:
    """The drawing process ignores Ctrl-C (the run, which gets it too, decides what stops), ends on
    SIGTERM (the run then draws what is left itself), and ends within a second of its run's death:
    a run killed with -9 (a cluster's time limit) cannot stop it, and it would otherwise stay for
    ever, holding 260-300 MB. It draws on one thread. (Not at a low priority: beside busy
    processes a nice-19 drawing process starved, and the run waited minutes at its end.)"""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    torch.set_num_threads(1)
    threading.Thread(target=_exit_with_parent, args=(parent,), name="rnnexp-parent-watch", daemon=True).start()


def _exit_with_parent(parent: int) -> None:
    """(The run's pid comes from the run itself: one that died before this process started is
    noticed too.)"""
    while True:
        if os.getppid() != parent:  # reparented: the run is gone
            os._exit(0)
        time.sleep(PARENT_CHECK_S)


PARENT_CHECK_S = 0.5
