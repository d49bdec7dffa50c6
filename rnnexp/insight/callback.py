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
training, which waits for them). It gets the replay as numpy arrays and never imports torch
(rnnexp.insight.drawing), so it is ready within the first second of a run. Where the training uses
every core, or no process can be started, the drawing happens inline, between epochs.
"""

from __future__ import annotations

import warnings
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any, Callable, Optional

import torch

from rnnexp.engine.callbacks import Callback
from rnnexp.insight import UNITS_FILE, Insight, look, unit_states, units_markdown, units_report
from rnnexp.insight.drawing import _POOL, LayerValues, Pictured, draw_epoch, drawing_pool, picture_title, save_pngs
from rnnexp.report.tensorboard import add_png


class InsightCallback(Callback):
    def __init__(self, writer: Optional[Any], run_dir: Path | str, every_epochs: int, example: Any,
                 background: bool = True, title: str = "", deferred: bool = False):
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
        # `deferred`: the end-of-training pictures are waited for in `finish()`, which the run calls
        # after its result line (the answer is not held up by the drawing); else in on_fit_end.
        self.deferred = deferred
        self.final: Optional[tuple[Future, Callable[[], Any]]] = None
        self.files_from: Optional[int] = None  # the epoch whose TensorBoard pictures are also the files

    # -- hooks -------------------------------------------------------------------------------
    def due(self, epoch: int) -> bool:
        return self.every > 0 and (epoch == 1 or epoch % self.every == 0)

    def on_epoch_end(self, engine: Any, metrics: dict[str, float]) -> None:
        epoch = int(metrics.get("epoch", engine.state.epoch))
        self.last_epoch = epoch
        if self.writer is None or not self.due(epoch):
            return
        # The last epoch's pictures show the final model: drawn once, as its TensorBoard images and
        # its files (a short run otherwise waited ~0.4 s at its end for the same pictures again).
        final = bool(getattr(engine, "finished", False))
        self._guarded(engine, lambda: self._log(engine, epoch, final))

    def on_fit_end(self, engine: Any) -> None:
        if self.every <= 0:
            return
        self._guarded(engine, lambda: self._save(engine))
        if not self.deferred:
            self.finish()

    def drawn(self) -> bool:
        """Whether every picture asked for is drawn (`finish` would not wait)."""
        futures = [future for _, future, _ in self.pending] + ([self.final[0]] if self.final else [])
        return all(future.done() for future in futures)

    def finish(self) -> None:
        """Wait for the pictures still being drawn (the final PNGs, TensorBoard's images), then
        forget the drawing process (it stays for the next run in this process)."""
        try:
            if self.final is not None:
                self._result(*self.final)
            if self.writer is not None:
                self._collect(wait=True)
        except Exception as exc:  # noqa: BLE001 - a picture must never cost a run
            warnings.warn(f"insight figures failed: {type(exc).__name__}: {exc}", RuntimeWarning, stacklevel=2)
        self.final = None
        self.close()

    def on_interrupt(self, engine: Any) -> None:
        if self.writer is not None and self.pending:
            self._guarded(engine, lambda: self._collect(wait=True))  # a resumed run does not draw them again
        self.close()

    def close(self) -> None:
        """Forget what is still queued; the drawing process stays for the next run in this process."""
        for _, future, _ in self.pending:
            future.cancel()
        self.pending, self.pool = [], None

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
            for name, png in drawn["images"].items():
                add_png(self.writer, f"insight/{name}", png, epoch)
            for name, value in drawn["scalars"].items():
                self.writer.add_scalar(f"insight/{name}", value, epoch)
        self.pending = still
        if self.writer is not None:
            self.writer.flush()

    def _log(self, engine: Any, epoch: int, final: bool) -> None:
        insight = self._look(engine)
        if final:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        self.pending.append((epoch, *self._submit(draw_epoch, as_arrays(insight), epoch, self.title,
                                                  self.run_dir if final else None)))
        if final:
            self.files_from = epoch  # (on their way: the end of training does not draw them again)
        self._collect(wait=False)

    def _save(self, engine: Any) -> None:
        epoch = self.last_epoch if self.last_epoch is not None else int(engine.state.epoch) - 1
        self.final = None
        insight = self._look(engine)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if self.files_from != epoch:  # (else the last epoch's pictures, on their way, are the files)
            self.final = self._submit(save_pngs, as_arrays(insight), self.run_dir,
                                      picture_title(self.title, f"final model, after epoch {epoch}"))
        if insight.character_model:
            page, found = units_report(insight)
            (self.run_dir / UNITS_FILE).write_text(page, encoding="utf-8")
            if self.writer is not None:
                _, names = unit_states(insight.replay)
                step = self.last_epoch if self.last_epoch is not None else int(engine.state.epoch)
                self.writer.add_text("insight/units", units_markdown(found, names), global_step=step)
                self.writer.flush()


def as_arrays(insight: Insight) -> Pictured:
    """What the drawing process draws: the replay's values as numpy arrays (no torch there)."""
    def array(value: Any) -> Any:
        return None if value is None else value.detach().float().cpu().numpy()

    layers = [LayerValues(array(layer.h), array(layer.c), {k: array(v) for k, v in layer.gates.items()})
              for layer in insight.replay.layers]
    return Pictured(insight.replay.cell, layers, array(insight.gradients), list(insight.labels), insight.readout_at_end)
