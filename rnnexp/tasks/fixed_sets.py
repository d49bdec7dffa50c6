"""A base for tasks of independent sequences with fixed held-out sets (adding, copy, parity): a
subclass gives its data and its score, this class does the rest.

What a subclass defines (see `adding.py`, `copy_memory.py` and `parity.py`):

    name, Config              task=NAME and the config: a `FixedSetConfig` subclass with the task's
                              own keys (and a `validate()` that calls super's); the base has the
                              sizes, the held-out seed and `label`, which names the run directory
                              (outputs/runs/DATE/TIME_LABEL_MODEL)
    input_size, num_classes   features per step in, outputs per step out (1 for a regression)
    draw(cfg, n, generator)   n fresh examples of `cfg` (the target's config or a curriculum
                              stage's) as a tuple of tensors with n rows each
    make_batch(cfg, *drawn)   a Batch of such rows
    space(cfg)                the number of distinct symbol strings `cfg` allows, when the data is
                              discrete: every example then belongs to one part, train, validation or
                              test, by a hash of its symbols (rnnexp.tasks.splits), and the first
                              tensor `draw` returns must be those symbols. None (the default):
                              continuous data, where two draws never coincide.
    labels(batch)             one label per step of a batch of one (the pictures' time axis)
    parse(text)               the drawn tuple of one example typed by the user (example=...)
  and, as every Task: baseline(), describe(), max_lag(), max_length(), curriculum_key and, when
  the default cross-entropy at each sequence's last step does not fit, score() and metrics().

This class draws the training examples of every epoch from (train.seed, epoch), and the
validation and test sets once, each from its own stream of task.heldout_seed; it cuts them into
batches, makes the held-out sets of curriculum stages, picks the example for the pictures and
reports the split and its measured overlap in results.json.

A space too small to split into parts that each hold MIN_PART distinct sequences (parity's first
curriculum stages: 4 strings of 2 bits) is not split: every part then draws from all of it, and
the data report says so and gives the overlap measured.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator, Optional

from rnnexp.lazy import torch  # on first use: config checks need no torch
from rnnexp.tasks.base import (SPLITS, Batch, Example, Task, check_sizes, epoch_generator, num_batches,
                               split_generator, stage_generator)
from rnnexp.tasks import mixing
from rnnexp.tasks.splits import SHARES, distinct, draw_in_part, split_report

EVAL_BATCH = 500    # held-out batch size, fixed so val/test never depend on train.batch_size
MIN_PART = 100      # a space is hash-split when its smallest part holds at least this many sequences
Drawn = tuple["torch.Tensor", ...]


@dataclass
class FixedSetConfig:
    """The keys every fixed-set task has; a task's Config adds its own."""

    name: str
    train_size: int      # fresh sequences per epoch
    val_size: int        # the fixed validation set
    test_size: int       # the fixed test set
    heldout_seed: int    # seeds the validation and test sets (the same for every train.seed)
    label: str           # names the run directory

    def validate(self) -> None:
        check_sizes(self)


class FixedSetTask(Task):
    streaming = False

    # -- what a subclass defines -------------------------------------------------------------
    def draw(self, cfg: Any, n: int, generator: torch.Generator) -> Drawn:
        raise NotImplementedError

    def make_batch(self, cfg: Any, *drawn: torch.Tensor) -> Batch:
        raise NotImplementedError

    def space(self, cfg: Any) -> Optional[int]:
        return None

    def labels(self, batch: Batch) -> list[str]:
        raise NotImplementedError

    def parse(self, text: str) -> Drawn:
        raise NotImplementedError

    # -- the rest ----------------------------------------------------------------------------
    def __init__(self, cfg: Any, batch_size: int, seed: int):
        self.cfg, self.batch_size, self.seed = cfg, batch_size, seed
        self.stages_seen: list[Any] = []  # curriculum stages trained on (their overlap is reported)
        sizes = {"val": cfg.val_size, "test": cfg.test_size}
        # Each held-out split: drawn once from its own stream, cut once, reused every epoch.
        self.heldout = {split: self.draw_part(cfg, sizes[split], split_generator(cfg.heldout_seed, split), split)
                        for split in SPLITS}
        self._eval = {split: list(self.batches(cfg, drawn, EVAL_BATCH)) for split, drawn in self.heldout.items()}

    def is_split(self, cfg: Any) -> bool:
        space = self.space(cfg)
        return space is not None and space * min(SHARES.values()) >= MIN_PART

    def draw_part(self, cfg: Any, n: int, generator: torch.Generator, part: str) -> Drawn:
        """`n` examples of `cfg` from `part` of the hash split (from anywhere where there is none)."""
        if not self.is_split(cfg):
            return self.draw(cfg, n, generator)
        return draw_in_part(n, part, lambda m, g: self.draw(cfg, m, g), generator,
                            keys=f"the settings of task={self.name}")

    def batches(self, cfg: Any, drawn: Drawn, batch_size: int) -> Iterator[Batch]:
        for start in range(0, len(drawn[0]), batch_size):
            yield self.make_batch(cfg, *(t[start:start + batch_size] for t in drawn))

    def set_stage(self, value: Any) -> None:
        super().set_stage(value)
        if value is not None and value not in self.stages_seen:
            self.stages_seen.append(value)

    def train_batches(self, epoch: int) -> Iterator[Batch]:
        cfg = self.train_cfg
        return self.batches(cfg, self.draw_part(cfg, self.cfg.train_size, epoch_generator(self.seed, epoch), "train"),
                            self.batch_size)

    def train_batch_count(self) -> int:
        return num_batches(self.cfg.train_size, self.batch_size)

    def epoch_batches(self, epoch: int) -> Iterator[Batch]:
        """Under a mixing curriculum: each example from its own stage (rnnexp.tasks.mixing), each
        stage's part drawn where it goes and made into batches by its own config, the examples of
        a batch in the epoch's order, padded on the right to its longest."""
        if getattr(self, "mixing", None) is None:
            return super().epoch_batches(epoch)
        n = self.cfg.train_size
        parts = mixing.parts(self, epoch, n)
        drawn = [self.draw_part(part.cfg, part.size, part.generator, "train") for part in parts]
        for part in parts:
            if part.stage is not None and part.stage not in self.stages_seen:
                self.stages_seen.append(part.stage)
        which = mixing.place(parts, [torch.full((part.size,), k) for k, part in enumerate(parts)], -1)
        row = mixing.place(parts, [torch.arange(part.size) for part in parts], -1)
        return self._mixed_batches(parts, drawn, which, row)

    def _mixed_batches(self, parts: list[Any], drawn: list[Drawn], which: torch.Tensor, row: torch.Tensor) -> Iterator[Batch]:
        for start in range(0, len(which), self.batch_size):
            here = which[start:start + self.batch_size]
            pieces, order = [], []
            for k, part in enumerate(parts):
                at = (here == k).nonzero().squeeze(1)
                if at.numel():
                    rows = row[start:start + self.batch_size][at]
                    pieces.append(self.make_batch(part.cfg, *(t[rows] for t in drawn[k])))
                    order.append(at)
            yield mixing.join(pieces, order)

    def eval_batches(self, split: str) -> Iterator[Batch]:
        if split == "stage":
            return self.stage_batches(lambda cfg, generator: list(self.batches(
                cfg, self.draw_part(cfg, self.cfg.val_size, generator, "val"), EVAL_BATCH)))
        if split not in self._eval:
            raise ValueError(f"split={split!r}: use one of {', '.join(SPLITS)}")
        return iter(self._eval[split])

    def example(self, text: Optional[str] = None) -> Example:
        if text is None:
            batch = next(iter(self._eval["val"])).first()
        else:
            batch = self.make_batch(self.cfg, *self.parse(text))
        return Example(batch, self.labels(batch))

    # -- what results.json says of the data --------------------------------------------------
    def data_report(self, epochs: int) -> dict[str, Any]:
        if self.space(self.cfg) is None:
            return {}
        report = self._report(self.cfg, {split: drawn[0] for split, drawn in self.heldout.items()}, epochs)
        if self.stages_seen:
            report["stages"] = {str(stage): self._stage_report(stage) for stage in self.stages_seen}
        return report

    def _report(self, cfg: Any, held_out: dict[str, torch.Tensor], epochs: int) -> dict[str, Any]:
        report = split_report(self.space(cfg) or 0, held_out, lambda e: self.draw_part(
            cfg, self.cfg.train_size, epoch_generator(self.seed, e), "train")[0], epochs)
        if not self.is_split(cfg):
            report["split"] = (f"none: {report['space']} distinct sequences are too few for parts of "
                               f"{MIN_PART} or more; every part draws from all of them")
        return report

    def _stage_report(self, stage: Any) -> dict[str, Any]:
        """A stage's held-out set (val part, stage_batches' stream) against one epoch of its training draws."""
        cfg = self.stage_config(self.cfg, stage)
        val = self.draw_part(cfg, self.cfg.val_size, stage_generator(self.seed, stage), "val")[0]
        train = distinct(self.draw_part(cfg, self.cfg.train_size, epoch_generator(self.seed, 1), "train")[0])
        held = distinct(val)
        return {"space": self.space(cfg), "split": self.is_split(cfg), "distinct_val": len(held),
                "val_in_train": len(held & train), "overlap_checked_over_epochs": 1}

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "stages_seen": list(self.stages_seen)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.stages_seen = list(state.get("stages_seen", []))
