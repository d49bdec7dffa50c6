"""Reversal: read a string of symbols, write it backwards (the lecture's sequence -> vector ->
sequence; the classic test of what attention is for).

    rnnexp task=reverse model=seq2seq task.length=20
    rnnexp task=reverse model=seq2seq model.attention=none            (everything through one vector)
    rnnexp task=reverse model=seq2seq task.test_length=30             (test on longer strings than trained)
    rnnexp -m experiment=attention_vs_length                          (exact match against length)

Alphabet: the symbols 0-9 and the end token `$`. A source is n symbols drawn uniformly, n uniform
in [task.min_length, task.length] (min_length null: length / 2, rounded up), then `$`; the answer
is the n symbols reversed, then `$`. Sources are token ids (B, S), padded on the right, with their
lengths; the answer is written by a decoder (`Task.decodes`): in training it reads the true
previous symbol (teacher forcing, rnnexp.tasks.decoding), in validation and test its own.

Scores: the cross-entropy per answer symbol (the end token included, the padding after it not),
`accuracy` per answer symbol, and `exact_match`, the share of answers right in every symbol,
which selects the best model. The first symbol written is the last one read: without attention
the encoder's final state must hold the whole string, and a longer string overflows it.

Strings are split 70/15/15 into train, validation and test by a hash of their symbols. With
`task.test_length` > length the test set is strings of length + 1 to test_length, never trained on
at any length: what a model does beyond the lengths it learned (length extrapolation).

Baseline: every symbol equally likely (loss ln 11, accuracy 1/11, exact match 0).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Optional

from rnnexp.errors import ConfigError, require
from rnnexp.lazy import torch  # on first use: config checks need no torch
from rnnexp.tasks.base import Batch, Example
from rnnexp.tasks.decoding import WritesSequence, shift_right
from rnnexp.tasks.fixed_sets import FixedSetConfig, FixedSetTask

SYMBOLS = 10
END = SYMBOLS             # the end token's id, in the source and in the answer
LABELS = [*map(str, range(SYMBOLS)), "$"]


@dataclass
class ReverseConfig(FixedSetConfig):
    length: int                      # L: the longest string
    min_length: Optional[int]        # the shortest; null: ceil(L / 2)
    test_length: Optional[int]       # > L: the test set's strings are L + 1 .. test_length long

    def validate(self) -> None:
        super().validate()
        require(self.length >= 1, "task.length", self.length, "use an integer >= 1")
        if self.min_length is not None:
            require(1 <= self.min_length <= self.length, "task.min_length", self.min_length,
                    f"use 1 <= min_length <= task.length ({self.length}), or null for length / 2")
        if self.test_length is not None:
            require(self.test_length > self.length, "task.test_length", self.test_length,
                    f"use an integer above task.length ({self.length}) for longer test strings, or null")

    @property
    def shortest(self) -> int:
        return self.min_length if self.min_length is not None else math.ceil(self.length / 2)


class ReverseTask(WritesSequence, FixedSetTask):
    name = "reverse"
    Config = ReverseConfig
    unit = "symbols"
    curriculum_key = "length"
    input_size, vocab_size, num_classes = 0, SYMBOLS + 1, SYMBOLS + 1
    symbol_labels = LABELS

    # -- data --------------------------------------------------------------------------------
    def draw(self, cfg: ReverseConfig, n: int, generator: torch.Generator) -> tuple[torch.Tensor]:
        """(n, L) symbols, -1 after each string's own length (the hash split reads them so)."""
        lengths = torch.randint(cfg.shortest, cfg.length + 1, (n,), generator=generator)
        symbols = torch.randint(0, SYMBOLS, (n, cfg.length), generator=generator)
        return (symbols.masked_fill(torch.arange(cfg.length) >= lengths.unsqueeze(1), -1),)

    def draw_part(self, cfg: Any, n: int, generator: torch.Generator, part: str) -> tuple[torch.Tensor, ...]:
        if part == "test" and cfg.test_length is not None:  # (longer strings: length extrapolation)
            cfg = replace(cfg, min_length=cfg.length + 1, length=cfg.test_length, test_length=None)
        return super().draw_part(cfg, n, generator, part)

    def space(self, cfg: ReverseConfig) -> int:
        return sum(SYMBOLS ** n for n in range(cfg.shortest, cfg.length + 1))

    def make_batch(self, cfg: Any, symbols: torch.Tensor) -> Batch:
        """Symbols (B, L), -1 padded -> source ids (B, L + 1) with `$` after each string, answers
        (B, L + 1): the string reversed, then `$`; the mask scores the answer and its `$`."""
        lengths = (symbols >= 0).sum(1)
        batch, steps = symbols.shape[0], symbols.shape[1] + 1
        positions = torch.arange(steps).unsqueeze(0)
        source = torch.cat([symbols.clamp(min=0), torch.zeros(batch, 1, dtype=torch.long)], dim=1)
        source = torch.where(positions >= lengths.unsqueeze(1), END, source)  # `$`, then padding (never read)
        # answer[t] = symbols[n - 1 - t] for t < n, then `$`
        index = (lengths.unsqueeze(1) - 1 - positions).clamp(min=0)
        answer = torch.where(positions < lengths.unsqueeze(1), source.gather(1, index), END)
        mask = positions <= lengths.unsqueeze(1)
        return Batch(source, answer, mask=mask, lengths=lengths + 1, decoder_inputs=shift_right(answer, self.num_classes))

    # -- what a run shows --------------------------------------------------------------------
    def example(self, text: Optional[str] = None) -> Example:
        """One string as the pictures show it: its own steps, no padding after it."""
        example = super().example(text)
        b, n = example.batch, int(example.batch.lengths[0])
        trimmed = Batch(b.inputs[:, :n], b.targets[:, :n], mask=b.mask[:, :n], lengths=b.lengths,  # type: ignore[index]
                        decoder_inputs=b.decoder_inputs[:, :n])  # type: ignore[index]
        return Example(trimmed, self.labels(trimmed))

    def max_lag(self) -> int:
        return 2 * self.cfg.length + 1  # the first symbol read is the last written

    def max_length(self) -> int:
        return (self.cfg.test_length or self.cfg.length) + 1

    def labels(self, batch: Batch) -> list[str]:
        n = int(batch.lengths[0]) if batch.lengths is not None else batch.inputs.shape[1]
        return [LABELS[int(k)] for k in batch.inputs[0, :n]]

    def parse(self, text: str) -> tuple[torch.Tensor]:
        digits = text.strip()
        bad = [c for c in digits if not c.isdigit()]
        if bad or not digits:
            raise ConfigError(f"example {text!r} is invalid ({f'{bad[0]!r} is not a digit' if bad else 'it is empty'}): "
                              f"use a string of digits 0-9, e.g. 3141592")
        return (torch.tensor([[int(c) for c in digits]]),)

    def describe(self) -> str:
        c = self.cfg
        test = f"; test strings {c.length + 1}-{c.test_length} long (longer than any trained)" if c.test_length else ""
        return (f"reverse: strings of {c.shortest}-{c.length} symbols from 0-9, written backwards then '$'; "
                f"{c.train_size} fresh strings per epoch, {c.val_size} val, {c.test_size} test (parts of a hash "
                f"split){test}")
