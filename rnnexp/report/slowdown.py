"""A warning when training slows down for good: a run whose rate falls under half of its first
two epochs' (or windows') for two epochs in a row says so once. On a shared machine another
process on the same cores can cost a small model 10-100x (rnnexp/engine/threads.py), and a
time-limited run then quietly trains a fraction of what its settings promise."""

from __future__ import annotations

import logging
from typing import Any, Optional

from rnnexp.engine.callbacks import Callback

log = logging.getLogger("rnnexp")
SPEED = "train/targets_per_second"
FACTOR = 0.5      # "slow": under this share of the reference rate
IN_A_ROW = 2      # epochs in a row
MIN_SECONDS = 1.0  # shorter epochs are not judged: their rate is mostly noise (and a small test's)


class SlowdownWarning(Callback):
    def __init__(self, unit: str):
        self.unit = unit
        self.rates: list[float] = []
        self.slow_since: Optional[int] = None
        self.warned = False
        self.seconds = 0.0

    def on_epoch_end(self, engine: Any, metrics: dict[str, float]) -> None:
        rate = metrics.get(SPEED)
        took, self.seconds = metrics.get("seconds", 0.0) - self.seconds, metrics.get("seconds", 0.0)
        if not rate or self.warned or took < MIN_SECONDS:  # (a resumed epoch that only validated has no rate)
            return
        self.rates.append(rate)
        if len(self.rates) <= 2:
            return
        reference = (self.rates[0] + self.rates[1]) / 2
        if rate >= FACTOR * reference:
            self.slow_since = None
            return
        self.slow_since = self.slow_since or int(metrics["epoch"])
        if int(metrics["epoch"]) - self.slow_since + 1 >= IN_A_ROW:
            self.warned = True
            log.warning(f"warning: training runs at {rate:,.0f} {self.unit}/s since epoch {self.slow_since}, under "
                        f"half of its first two epochs' {reference:,.0f}: another process may be using these cores "
                        f"(train.threads=1 helps a small model beside others); a time limit now buys less training")
