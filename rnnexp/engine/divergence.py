"""When a run has diverged: a non-finite loss, or a finite one far above where it started.

A loss of 1e8 (or 2,514, or 9,304) is finite, and a run that ends there has not "stayed at chance":
it exploded. The yardstick is the run's reference loss, the larger of

* the task's baseline (what a model that learned nothing scores: ln 4 for QRSU, 1/6 for adding), and
* the initial model's loss on the first training batch (a fresh copy model starts at ln 10 = 2.30,
  far above its baseline of 0.173; a fresh adding model near 1.17 against 0.167),

so a run is judged against where it could honestly be, never below where it began. It has
diverged when

* an epoch's mean training loss, from epoch 2 on, exceeds `train.divergence_factor` (10) times the
  reference (epoch 1 may still be settling), or
* the mean of one logged interval (`train.log_every_steps` steps) exceeds 10 x that factor (100)
  times it, in any epoch: a spike that large is no transient;
* or any logged loss is NaN or infinite.

`train.divergence_factor=null` keeps only the last rule. A diverged run ends like a NaN does: exit 3,
results.json `status: diverged`, the last good checkpoint kept. The largest ratios a run reached
are in results.json (`divergence`), so a researcher sees how close a healthy run came.
"""

from __future__ import annotations

import math
from typing import Any, Optional

from rnnexp.errors import DivergedError

INTERVAL_TIMES = 10  # a logged interval may reach this many times the epoch rule's bound
FIRST_JUDGED_EPOCH = 2
ADVICE = "lower train.lr, set train.grad_clip (e.g. 1.0), or try train.optimizer=adam"


def check_finite(value: float, what: str, where: str) -> None:
    if not math.isfinite(value):
        raise DivergedError(f"the {what} became {value} at {where}; {ADVICE}")


def reference_loss(baseline: dict[str, float], first_loss: float) -> float:
    """The larger of the task's baseline loss (when it has one) and the initial loss."""
    return max(baseline.get("loss", 0.0), first_loss)


class DivergenceRule:
    """Applies the rules above; `state` is the loop's (it keeps the reference and the largest
    ratios, so a resumed run judges as an uninterrupted one would)."""

    def __init__(self, factor: Optional[float], baseline: dict[str, float]):
        self.factor, self.baseline = factor, baseline

    def first_step(self, state: Any, loss: float) -> None:
        if state.reference_loss is None:
            check_finite(loss, "training loss", "the first step")
            state.reference_loss = reference_loss(self.baseline, loss)

    def interval(self, state: Any, loss: float, where: str) -> None:
        check_finite(loss, "training loss", where)
        self._judge(state, "interval", loss, where, INTERVAL_TIMES, judged=True)

    def epoch(self, state: Any, loss: float) -> None:
        """(Epoch 1's ratio is recorded, not judged.)"""
        check_finite(loss, "training loss", f"epoch {state.epoch}")
        self._judge(state, "epoch", loss, f"epoch {state.epoch} (its mean)", 1, judged=state.epoch >= FIRST_JUDGED_EPOCH)

    def _judge(self, state: Any, kind: str, loss: float, where: str, times: float, judged: bool) -> None:
        if state.reference_loss is None or state.reference_loss <= 0:
            return
        ratio = loss / state.reference_loss
        key = f"max_{kind}_ratio"
        state.divergence[key] = max(state.divergence.get(key, 0.0), ratio)
        if judged and self.factor is not None and ratio > self.factor * times:
            raise DivergedError(
                f"the training loss reached {loss:.4g} at {where}, {ratio:.3g}x its reference "
                f"{state.reference_loss:.4g} (the larger of the task's baseline and the initial loss; a run "
                f"diverges above {self.factor * times:g}x); {ADVICE}, or set train.divergence_factor=null "
                f"to judge only NaN and infinity")

    def report(self, state: Any) -> dict[str, Any]:
        """What results.json says: the reference, the factor and the largest ratios reached (epoch 1
        included; None before the first interval or epoch)."""
        reached = {key: round(state.divergence[key], 4) if key in state.divergence else None
                   for key in ("max_epoch_ratio", "max_interval_ratio")}
        return {"reference_loss": state.reference_loss, "factor": self.factor,
                "interval_factor": None if self.factor is None else self.factor * INTERVAL_TIMES, **reached}

    def unjudged(self, state: Any, default: float = 10.0) -> Optional[str]:
        """With train.divergence_factor=null: a warning when the loss went where the default rule
        would have called it diverged (a completed run that exploded must not pass unremarked)."""
        epoch, interval = state.divergence.get("max_epoch_ratio", 0.0), state.divergence.get("max_interval_ratio", 0.0)
        if self.factor is not None or (epoch <= default and interval <= default * INTERVAL_TIMES):
            return None
        return (f"warning: the training loss reached {max(epoch, interval):.3g}x its reference {state.reference_loss:.4g}; "
                f"with train.divergence_factor=null this run is not called diverged, but it is not a trained model")
