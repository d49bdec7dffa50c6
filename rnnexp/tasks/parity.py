"""Parity (Bengio, Simard & Frasconi 1994): read a string of bits, answer their XOR at the last step.

    rnnexp task=parity model=lstm                                  (length 20: stays at chance)
    rnnexp experiment=parity_curriculum model=lstm                  (lengths 2, 3, 5, 10, then 20)

Every bit matters to the answer and a single flip changes it, so the network must carry one bit
of state through every step with nothing in the input to hint at it. The answer of a bit string
is uncorrelated with every proper subset of its bits: a model that does not count all of them
stays at chance, and the gradient gives no clue which partial count to improve. That is why
parity is the classic test of long-range credit assignment, and why a curriculum over the length
(`train.curriculum=[2,3,5,10]`) solves lengths that plain training never leaves chance at.

Inputs (B, T, 1): the bits as 0.0/1.0; target (B,): the parity, 1 when the count of ones is odd.
Baseline: chance, loss ln 2 and accuracy 0.5. Bit strings are split 70/15/15 into train,
validation and test by a hash of their bits (length 20: 2^20 strings); the short stages of a
curriculum (4 strings of 2 bits) are too small to split, and results.json reports their overlap.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from rnnexp.errors import require
from rnnexp.lazy import torch  # on first use: config checks need no torch
from rnnexp.tasks.base import Batch
from rnnexp.tasks.fixed_sets import FixedSetConfig, FixedSetTask
from rnnexp.tasks.parsing import parse_bits


@dataclass
class ParityConfig(FixedSetConfig):
    length: int          # bits per sequence

    def validate(self) -> None:
        super().validate()
        require(self.length >= 1, "task.length", self.length, "use an integer >= 1")


class ParityTask(FixedSetTask):
    name = "parity"
    Config = ParityConfig
    unit = "seqs"
    curriculum_key = "length"
    input_size, num_classes = 1, 2

    def draw(self, cfg: ParityConfig, n: int, generator: torch.Generator) -> tuple[torch.Tensor]:
        return (torch.randint(0, 2, (n, cfg.length), generator=generator),)

    def space(self, cfg: ParityConfig) -> int:
        return 2 ** cfg.length

    def make_batch(self, cfg: ParityConfig, bits: torch.Tensor) -> Batch:
        return Batch(bits.float().unsqueeze(-1), bits.sum(1) % 2)

    def baseline(self) -> dict[str, float]:
        return {"loss": math.log(2), "accuracy": 0.5}

    def max_lag(self) -> int:
        return self.cfg.length  # the first bit counts for the answer at the last step

    def class_label(self, index: int) -> str:
        return ("even", "odd")[index]

    def max_length(self) -> int:
        return self.cfg.length

    def labels(self, batch: Batch) -> list[str]:
        return [str(int(bit)) for bit in batch.inputs[0, :, 0].tolist()]

    def parse(self, text: str) -> tuple[torch.Tensor]:
        return (parse_bits(text, example="1011001").unsqueeze(0),)

    def describe(self) -> str:
        return (f"parity of {self.cfg.length} bits at the last step; {self.cfg.train_size} fresh sequences per "
                f"epoch, {self.cfg.val_size} val, {self.cfg.test_size} test; baseline accuracy 0.5")
