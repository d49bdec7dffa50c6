"""Teacher forcing and scheduled sampling (`train.teacher_forcing`, `train.teacher_forcing_end`), as a callback.

    rnnexp task=reverse model=seq2seq train.teacher_forcing=0.5
    rnnexp task=reverse model=seq2seq train.teacher_forcing=1.0 train.teacher_forcing_end=0.0

A decoder in training reads the true previous symbol with probability `teacher_forcing` and its
own previous guess otherwise. With `teacher_forcing_end` the probability goes linearly from the
first to the second over the epochs (scheduled sampling, Bengio, Vinyals, Jaitly & Shazeer 2015):
the decoder learns from true prefixes first, then from its own, as it must write in evaluation.
The probability of an epoch follows from the epoch alone, so a resumed run uses the same one.
Logged every epoch as `train/teacher_forcing`.
"""

from __future__ import annotations

from typing import Any, Optional

from rnnexp.engine.callbacks import Callback


class TeacherForcing(Callback):
    def __init__(self, start: float, end: Optional[float], epochs: int):
        self.start, self.end, self.epochs = start, end, epochs

    def ratio(self, epoch: int) -> float:
        if self.end is None or self.epochs <= 1:
            return self.start
        done = min(1.0, (epoch - 1) / (self.epochs - 1))
        return self.start + (self.end - self.start) * done

    def on_fit_start(self, engine: Any) -> None:
        engine.model.teacher_forcing = self.ratio(engine.state.epoch)

    def on_epoch_end(self, engine: Any, metrics: dict[str, float]) -> None:
        metrics["train/teacher_forcing"] = engine.model.teacher_forcing  # (the epoch just trained)
        engine.model.teacher_forcing = self.ratio(engine.state.epoch)  # (state.epoch: the next one now)
