"""What attaches to the training loop from outside: reports, checkpoints, figures, curricula.

The loop (`rnnexp.engine.loop.Engine`) does no I/O. It calls these hooks, in the order the
callbacks were given, with itself as the argument: a callback reads what it needs
(`engine.model`, `engine.task`, `engine.state`, `engine.optimizer`, ...) and may change the
task's training data (a curriculum) but not the loop's position.

    on_fit_start(engine)               before the first step (also on resume)
    on_log(engine, metrics)            every `train.log_every_steps` steps (fixed steps: a resumed
                                       run logs the same points): train/step_loss, step_accuracy
    on_progress(engine)                every few seconds within an epoch (no metrics, no sync)
    on_epoch_end(engine, metrics)      after validation: train/*, val/*, lr, epoch, seconds
                                       (a callback may add entries; they are logged and kept)
    on_interrupt(engine)               a stop was requested; the state is consistent, the
                                       loop is about to raise `Interrupted`
    on_fit_end(engine)                 training is over (target, epochs or time limit)
"""

from __future__ import annotations

from typing import Any


class Callback:
    def on_fit_start(self, engine: Any) -> None:
        pass

    def on_log(self, engine: Any, metrics: dict[str, float]) -> None:
        pass

    def on_progress(self, engine: Any) -> None:
        pass

    def on_epoch_end(self, engine: Any, metrics: dict[str, float]) -> None:
        pass

    def on_interrupt(self, engine: Any) -> None:
        pass

    def on_fit_end(self, engine: Any) -> None:
        pass


class Callbacks(Callback):
    """Several callbacks called in order, as one."""

    def __init__(self, callbacks: list[Callback]):
        self.callbacks = list(callbacks)

    def on_fit_start(self, engine: Any) -> None:
        for cb in self.callbacks:
            cb.on_fit_start(engine)

    def on_log(self, engine: Any, metrics: dict[str, float]) -> None:
        for cb in self.callbacks:
            cb.on_log(engine, metrics)

    def on_progress(self, engine: Any) -> None:
        for cb in self.callbacks:
            cb.on_progress(engine)

    def on_epoch_end(self, engine: Any, metrics: dict[str, float]) -> None:
        for cb in self.callbacks:
            cb.on_epoch_end(engine, metrics)

    def on_interrupt(self, engine: Any) -> None:
        for cb in self.callbacks:
            cb.on_interrupt(engine)

    def on_fit_end(self, engine: Any) -> None:
        for cb in self.callbacks:
            cb.on_fit_end(engine)
