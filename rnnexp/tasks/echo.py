"""Echo: the target at step t is the input bit at step t - delay (the lecture's memory test).

`batch_size` parallel streams of fair random bits, cut into chunks of `chunk_length` steps and
trained with truncated BPTT: the state is carried across chunks and detached. The first `delay`
steps of a series have no source bit and are masked out of the loss and the accuracy, which is
the fraction of correct bits over all scored steps (right for any batch size and chunk length).
Validation and test are `eval_streams` fixed series of `val_length` steps each, whatever the
training batch size.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Iterator, Optional

from rnnexp.errors import require
from rnnexp.lazy import torch  # on first use: config checks need no torch
from rnnexp.tasks.parsing import parse_bits
from rnnexp.tasks.streams import chunk_streams
from rnnexp.tasks.base import Batch, Example, Task, epoch_generator, num_batches, split_generator

log = logging.getLogger("rnnexp")


@dataclass
class EchoConfig:
    name: str
    delay: int
    chunk_length: int
    series_length: int
    carry_state: bool
    val_length: int
    eval_streams: int
    heldout_seed: int
    label: str

    def validate(self) -> None:
        require(self.delay >= 0, "task.delay", self.delay, "use an integer >= 0")
        require(self.chunk_length >= 1, "task.chunk_length", self.chunk_length, "use an integer >= 1")
        require(self.series_length >= self.chunk_length, "task.series_length", self.series_length,
                f"use at least one chunk (>= task.chunk_length={self.chunk_length})")
        require(self.val_length > self.delay, "task.val_length", self.val_length,
                f"use more steps than task.delay={self.delay}")
        require(self.eval_streams >= 1, "task.eval_streams", self.eval_streams, "use an integer >= 1")
        require(self.series_length > self.delay, "task.series_length", self.series_length,
                f"use more steps than task.delay={self.delay}")


def echo_series(num_streams: int, length: int, delay: int, generator: torch.Generator):
    """Bits (B, L, 1) as float inputs, targets (B, L) = inputs delayed, mask (B, L) of scored steps."""
    bits = torch.randint(0, 2, (num_streams, length), generator=generator)
    targets = torch.zeros_like(bits)
    targets[:, delay:] = bits[:, : length - delay]
    mask = (torch.arange(length) >= delay).expand(num_streams, length)
    return bits.float().unsqueeze(-1), targets, mask


class EchoTask(Task):
    name = "echo"
    Config = EchoConfig
    unit = "bits"
    streaming = True

    def __init__(self, cfg: EchoConfig, batch_size: int, seed: int):
        self.cfg, self.batch_size, self.seed = cfg, batch_size, seed
        self.input_size, self.num_classes = 1, 2
        self.heldout = {split: echo_series(cfg.eval_streams, cfg.val_length, cfg.delay,
                                           split_generator(cfg.heldout_seed, split)) for split in ("val", "test")}
        if cfg.delay >= cfg.chunk_length:
            log.warning(f"warning: task.delay={cfg.delay} >= task.chunk_length={cfg.chunk_length}: no gradient "
                        f"path spans the delay, so this cannot be learned; use task.chunk_length > {cfg.delay}")

    def train_batches(self, epoch: int) -> Iterator[Batch]:
        series = echo_series(self.batch_size, self.cfg.series_length, self.cfg.delay,
                             epoch_generator(self.seed, epoch))
        return chunk_streams(*series[:2], self.cfg.chunk_length, series[2], self.cfg.carry_state)

    def train_batch_count(self) -> int:
        return num_batches(self.cfg.series_length, self.cfg.chunk_length)

    def eval_batches(self, split: str) -> Iterator[Batch]:
        inputs, targets, mask = self.heldout[split]
        return chunk_streams(inputs, targets, self.cfg.chunk_length, mask, self.cfg.carry_state)

    def baseline(self) -> dict[str, float]:
        """Chance: fair random bits."""
        return {"loss": math.log(2), "accuracy": 0.5}

    def max_lag(self) -> int:
        return self.cfg.delay

    def example(self, text: Optional[str] = None) -> Example:
        if text is None:
            length = max(30, 3 * self.cfg.delay + 10)
            inputs, targets, mask = (t[:1, :length] for t in self.heldout["val"])
        else:
            bits = parse_bits(text).unsqueeze(0)
            inputs, targets = bits.float().unsqueeze(-1), torch.zeros_like(bits)
            targets[:, self.cfg.delay:] = bits[:, : bits.shape[1] - self.cfg.delay]
            mask = torch.arange(bits.shape[1]).unsqueeze(0) >= self.cfg.delay
        labels = [str(int(b)) for b in inputs[0, :, 0].tolist()]
        return Example(Batch(inputs, targets, mask), labels)

    def describe(self) -> str:
        carry = "carried across chunks" if self.cfg.carry_state else "reset every chunk (ablation)"
        return (f"echo: delay {self.cfg.delay}, chunks of {self.cfg.chunk_length} steps, {self.batch_size} "
                f"streams x {self.cfg.series_length} steps per epoch, state {carry}; validation and test "
                f"{self.cfg.eval_streams} x {self.cfg.val_length} bits each")
