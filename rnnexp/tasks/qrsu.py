"""The temporal-order task QRSU (Hochreiter & Schmidhuber 1997, experiment 6a).

A sequence is B, distractors from {a, b, c, d}, E, with X or Y at positions t1 and t2 (B is at
position 0). The class is the order of the two: Q=XX, R=XY, S=YX, U=YY. The model reads one-hot
vectors and is scored at the last step only (many-to-one).

A batch mixes lengths, so sequences are left-padded with all-zero vectors: the last step is
always E, which is where the answer is read. Generation is vectorised in torch: one set of
tensor operations per epoch, no Python loop over sequences.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Iterator, Optional

from rnnexp.errors import ConfigError, require, require_choice
from rnnexp.lazy import F, torch  # on first use: config checks need no torch
from rnnexp.tasks.base import Batch, Example, Task, check_sizes, epoch_generator, num_batches, split_generator

SYMBOLS = ("X", "Y", "a", "b", "c", "d", "B", "E")
X, Y, FIRST_DISTRACTOR, BEGIN, END = 0, 1, 2, 6, 7
CLASSES = ("Q", "R", "S", "U")  # XX, XY, YX, YY: class = 2 * (first is Y) + (second is Y)

# Inclusive ranges: (length, t1, t2).
DIFFICULTIES: dict[str, tuple[tuple[int, int], tuple[int, int], tuple[int, int]]] = {
    "easy": ((7, 8), (1, 2), (4, 5)),
    "normal": ((30, 40), (2, 5), (20, 27)),
    "moderate": ((60, 80), (10, 20), (45, 54)),
    "hard": ((100, 110), (10, 20), (50, 60)),  # the 1997 paper's setting
    "nightmare": ((300, 500), (10, 80), (250, 290)),
}
EVAL_BATCH = 250  # validation and test batch size (fixed, independent of train.batch_size)


@dataclass
class QRSUConfig:
    name: str
    difficulty: str
    length: Optional[list[int]]
    t1: Optional[list[int]]
    t2: Optional[list[int]]
    train_size: int
    val_size: int
    test_size: int
    heldout_seed: int
    label: str

    def ranges(self) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
        """The (length, t1, t2) ranges: the difficulty's, with any custom range replacing its own."""
        base = DIFFICULTIES.get(self.difficulty, DIFFICULTIES["easy"])
        picked = [tuple(custom) if custom is not None else default
                  for custom, default in zip((self.length, self.t1, self.t2), base)]
        return picked[0], picked[1], picked[2]  # type: ignore[return-value]

    def validate(self) -> None:
        require_choice("task.difficulty", self.difficulty, [*DIFFICULTIES, "custom"])
        custom = [k for k in ("length", "t1", "t2") if getattr(self, k) is not None]
        if self.difficulty == "custom" and len(custom) < 3:
            raise ConfigError("task.difficulty=custom needs task.length, task.t1 and task.t2, each [min,max]")
        for key in custom:
            value = getattr(self, key)
            require(len(value) == 2 and value[0] <= value[1], f"task.{key}", value, "use [min,max] with min <= max")
        (lmin, _), (t1min, t1max), (t2min, t2max) = self.ranges()
        require(1 <= t1min, "task.t1", [t1min, t1max], "t1 must start at 1 or later (position 0 is B)")
        require(t1max < t2min, "task.t2", [t2min, t2max],
                f"every t2 must come after every t1 (t1 max is {t1max})")
        require(t2max < lmin - 1, "task.length", self.ranges()[0],
                f"the shortest sequence must be longer than t2 max + 1 = {t2max + 1} (E is last)")
        check_sizes(self, "heldout_seed")


def generate(n: int, cfg: QRSUConfig, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """`n` sequences: one-hot inputs (n, T, 8) left-padded to the longest, and labels (n,)."""
    (lmin, lmax), (t1min, t1max), (t2min, t2max) = cfg.ranges()

    def draw(low: int, high: int, size: tuple[int, ...]) -> torch.Tensor:
        return torch.randint(low, high + 1, size, generator=generator)

    lengths, t1, t2 = draw(lmin, lmax, (n,)), draw(t1min, t1max, (n,)), draw(t2min, t2max, (n,))
    first, second = draw(0, 1, (n,)), draw(0, 1, (n,))  # 0 = X, 1 = Y
    steps = int(lengths.max())
    symbols = draw(FIRST_DISTRACTOR, FIRST_DISTRACTOR + 3, (n, steps))
    # Position within each sequence; negative = left padding.
    pos = torch.arange(steps).unsqueeze(0) - (steps - lengths).unsqueeze(1)
    symbols = torch.where(pos == 0, BEGIN, symbols)
    symbols = torch.where(pos == lengths.unsqueeze(1) - 1, END, symbols)
    symbols = torch.where(pos == t1.unsqueeze(1), (X + first).unsqueeze(1), symbols)
    symbols = torch.where(pos == t2.unsqueeze(1), (X + second).unsqueeze(1), symbols)
    inputs = F.one_hot(symbols, len(SYMBOLS)).float() * (pos >= 0).unsqueeze(-1)
    return inputs, 2 * first + second


def batches_of(inputs: torch.Tensor, labels: torch.Tensor, batch_size: int) -> Iterator[Batch]:
    """Split into batches, trimming each to its own longest sequence (padding is all-zero columns).
    The batches' lengths are found in one pass over the whole set, not one per batch."""
    n, steps = inputs.shape[:2]
    lengths = (inputs.abs().sum(-1) != 0).sum(1)
    groups = -(-n // batch_size)
    longest = torch.zeros(groups * batch_size, dtype=lengths.dtype)
    longest[:n] = lengths
    for index, length in enumerate(longest.view(groups, batch_size).amax(1).tolist()):
        start = index * batch_size
        yield Batch(inputs[start:start + batch_size, steps - length:], labels[start:start + batch_size])


class QRSUTask(Task):
    name = "qrsu"
    Config = QRSUConfig
    unit = "seqs"
    streaming = False
    curriculum_key = "difficulty"

    @classmethod
    def stage_config(cls, cfg: QRSUConfig, value: str) -> QRSUConfig:
        return replace(cfg, difficulty=value, length=None, t1=None, t2=None)

    def __init__(self, cfg: QRSUConfig, batch_size: int, seed: int):
        self.cfg, self.batch_size, self.seed = cfg, batch_size, seed
        self.input_size, self.num_classes = len(SYMBOLS), len(CLASSES)
        # Validation and test sets are generated once, each from its own seed: curves compare
        # across runs, and they are cut into batches once, reused every epoch.
        sizes = {"val": cfg.val_size, "test": cfg.test_size}
        self.heldout = {split: generate(n, cfg, split_generator(cfg.heldout_seed, split)) for split, n in sizes.items()}
        self._eval_batches = {split: list(batches_of(*data, EVAL_BATCH)) for split, data in self.heldout.items()}

    def train_batches(self, epoch: int) -> Iterator[Batch]:
        inputs, labels = generate(self.cfg.train_size, self.train_cfg, epoch_generator(self.seed, epoch))
        return batches_of(inputs, labels, self.batch_size)

    def train_batch_count(self) -> int:
        return num_batches(self.cfg.train_size, self.batch_size)

    def eval_batches(self, split: str) -> Iterator[Batch]:
        if split == "stage":
            seed = self.cfg.heldout_seed
            return self.stage_batches(lambda cfg: list(batches_of(
                *generate(self.cfg.val_size, cfg, split_generator(seed, "val")), EVAL_BATCH)))
        return iter(self._eval_batches[split])

    def baseline(self) -> dict[str, float]:
        """Chance: the four classes are equally likely."""
        return {"loss": math.log(len(CLASSES)), "accuracy": 1 / len(CLASSES)}

    def max_lag(self) -> int:
        """From the first X/Y to the readout at the last step: the longest sequence minus the earliest t1."""
        (_, lmax), (t1min, _), _ = self.cfg.ranges()
        return lmax - t1min

    def example(self, text: Optional[str] = None) -> Example:
        if text is None:
            inputs, labels = self.heldout["val"]
            x = inputs[:1]
            x = x[:, int((x[0].abs().sum(-1) > 0).nonzero()[0]):]  # leave the padding out
            return Example(Batch(x, labels[:1]), [SYMBOLS[i] for i in x[0].argmax(-1).tolist()])
        unknown = sorted(set(text) - set(SYMBOLS))
        if unknown:
            raise ConfigError(f"example={text!r} has symbols outside QRSU's alphabet: {''.join(unknown)!r}; "
                              f"use {''.join(SYMBOLS)} (e.g. BaXbcYdE: B first, E last, X/Y twice)")
        order = [SYMBOLS.index(ch) for ch in text if ch in "XY"]
        if len(order) != 2:
            raise ConfigError(f"example={text!r} has {len(order)} X/Y symbols; QRSU's answer is the order of exactly two")
        ids = torch.tensor([[SYMBOLS.index(ch) for ch in text]])
        target = torch.tensor([2 * order[0] + order[1]])
        return Example(Batch(F.one_hot(ids, len(SYMBOLS)).float(), target), list(text))

    def describe(self) -> str:
        (lmin, lmax), (a, b), (c, d) = self.cfg.ranges()
        return (f"qrsu {self.cfg.difficulty}: length {lmin}-{lmax}, t1 {a}-{b}, t2 {c}-{d}; "
                f"{self.cfg.train_size} fresh sequences per epoch, {self.cfg.val_size} validation, "
                f"{self.cfg.test_size} test")
