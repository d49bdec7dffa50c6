"""The temporal-order task QRSU (Hochreiter & Schmidhuber 1997, experiment 6a).

A sequence is B, distractors from {a, b, c, d}, E, with X or Y at positions t1 and t2 (B is at
position 0). The class is the order of the two: Q=XX, R=XY, S=YX, U=YY. The model reads one-hot
vectors and is scored at each sequence's last step, E (many-to-one).

A batch mixes lengths. By default (`task.padding=right`) a sequence is followed by all-zero
vectors and its answer is read at its own last step, so its score never depends on the batch it
is in; `task.padding=left` is the lecture's form: the zeros come first, every answer is read at
the batch's last step, and the network runs over the padding before B (its biases move the state
there), so a sequence's score depends on how long the others in its batch are.

Every sequence belongs to one part, train, validation or test, by a hash of its symbols
(rnnexp.tasks.splits): easy has 5,120 distinct sequences, and without the split most of the test
set would be trained on. Generation is vectorised in torch: one set of tensor operations per
draw, no Python loop over sequences.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Iterator, Optional

from rnnexp.errors import ConfigError, require, require_choice
from rnnexp.lazy import F, torch  # on first use: config checks need no torch
from rnnexp.tasks.base import Batch, Example, Task, check_sizes, epoch_generator, num_batches, split_generator
from rnnexp.tasks import mixing
from rnnexp.tasks.splits import draw_in_part, split_report

SYMBOLS = ("X", "Y", "a", "b", "c", "d", "B", "E")
X, Y, FIRST_DISTRACTOR, BEGIN, END = 0, 1, 2, 6, 7
PAD = -1  # after a sequence's end in the drawn symbols; an all-zero input vector
PADDINGS = ("right", "left")
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
    padding: str
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
        check_sizes(self)
        require_choice("task.padding", self.padding, PADDINGS)


def draw(n: int, cfg: QRSUConfig, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """`n` sequences: symbol ids (n, longest length of the config), PAD after each one's end, and
    labels (n,). Any part of the hash split (see `generate` for one part)."""
    (lmin, lmax), (t1min, t1max), (t2min, t2max) = cfg.ranges()

    def uniform(low: int, high: int, size: tuple[int, ...]) -> torch.Tensor:
        return torch.randint(low, high + 1, size, generator=generator)

    lengths, t1, t2 = uniform(lmin, lmax, (n,)), uniform(t1min, t1max, (n,)), uniform(t2min, t2max, (n,))
    first, second = uniform(0, 1, (n,)), uniform(0, 1, (n,))  # 0 = X, 1 = Y
    symbols = uniform(FIRST_DISTRACTOR, FIRST_DISTRACTOR + 3, (n, lmax))
    pos = torch.arange(lmax).unsqueeze(0)
    symbols = torch.where(pos == 0, BEGIN, symbols)
    symbols = torch.where(pos == lengths.unsqueeze(1) - 1, END, symbols)
    symbols = torch.where(pos >= lengths.unsqueeze(1), PAD, symbols)
    symbols = torch.where(pos == t1.unsqueeze(1), (X + first).unsqueeze(1), symbols)
    symbols = torch.where(pos == t2.unsqueeze(1), (X + second).unsqueeze(1), symbols)
    return symbols, 2 * first + second


def generate(n: int, cfg: QRSUConfig, generator: torch.Generator, part: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
    """`n` sequences of the hash split's `part`: symbols (n, T) with PAD after each end, labels (n,)."""
    keys = "task.length, task.t1 and task.t2" if cfg.difficulty == "custom" else f"task.difficulty={cfg.difficulty}"
    return draw_in_part(n, part, lambda m, g: draw(m, cfg, g), generator, keys)  # type: ignore[return-value]


def lengths_of(symbols: torch.Tensor) -> torch.Tensor:
    return (symbols != PAD).sum(1)


def one_hot(symbols: torch.Tensor) -> torch.Tensor:
    """Symbol ids with PAD -> (n, T, 8) one-hot vectors, all-zero at PAD."""
    return F.one_hot(symbols.clamp(min=0), len(SYMBOLS)).float() * (symbols != PAD).unsqueeze(-1)


def batches_of(symbols: torch.Tensor, labels: torch.Tensor, batch_size: int, padding: str = "right") -> Iterator[Batch]:
    """Cut into batches, each trimmed to its own longest sequence and padded on `padding`'s side.
    The batches' lengths are found in one pass over the whole set, not one per batch, and the
    one-hot vectors (right padding: as drawn) are made once for the whole set."""
    n = symbols.shape[0]
    lengths = lengths_of(symbols)
    groups = -(-n // batch_size)
    longest = torch.zeros(groups * batch_size, dtype=lengths.dtype)
    longest[:n] = lengths
    right = one_hot(symbols) if padding == "right" else None
    for index, length in enumerate(longest.view(groups, batch_size).amax(1).tolist()):
        rows = slice(index * batch_size, (index + 1) * batch_size)
        own = lengths[rows]
        if right is not None:
            inputs = right[rows, :length]
        else:  # shift each row right by its padding: ids[j - (length - own)]
            ids = symbols[rows, :length]
            source = torch.arange(length).unsqueeze(0) - (length - own).unsqueeze(1)
            inputs = one_hot(torch.where(source >= 0, ids.gather(1, source.clamp(min=0)), PAD))
        yield Batch(inputs, labels[rows], lengths=own, left_padded=padding == "left")


def space_size(cfg: QRSUConfig) -> int:
    """Distinct sequences of the config: per length L, t1 and t2 choices, X/Y twice, 4 distractors
    at each of the other L - 4 steps."""
    (lmin, lmax), (t1min, t1max), (t2min, t2max) = cfg.ranges()
    return sum((t1max - t1min + 1) * (t2max - t2min + 1) * 4 * 4 ** (length - 4) for length in range(lmin, lmax + 1))


class QRSUTask(Task):
    name = "qrsu"
    Config = QRSUConfig
    unit = "seqs"
    streaming = False
    curriculum_key = "difficulty"

    @classmethod
    def stage_config(cls, cfg: QRSUConfig, value: str) -> QRSUConfig:
        return replace(cfg, difficulty=value, length=None, t1=None, t2=None)

    @classmethod
    def example_stages(cls, cfg: QRSUConfig) -> list[str]:
        """The named difficulties with shorter sequences than the target's."""
        return [name for name in DIFFICULTIES
                if DIFFICULTIES[name][0][1] < cfg.ranges()[0][1]] or ["easy"]

    @classmethod
    def beyond_target(cls, cfg: QRSUConfig, stage_cfg: QRSUConfig) -> Optional[str]:
        longest, target = stage_cfg.ranges()[0][1], cfg.ranges()[0][1]
        if longest > target:
            return f"has sequences of up to {longest} steps, longer than the target's {target}"
        return None

    def __init__(self, cfg: QRSUConfig, batch_size: int, seed: int):
        self.cfg, self.batch_size, self.seed = cfg, batch_size, seed
        self.input_size, self.num_classes = len(SYMBOLS), len(CLASSES)
        # Validation and test sets: drawn once from their parts of the split, each from its own
        # stream of task.heldout_seed, cut into batches once and reused every epoch.
        sizes = {"val": cfg.val_size, "test": cfg.test_size}
        self.heldout = {split: generate(n, cfg, split_generator(cfg.heldout_seed, split), part=split)
                        for split, n in sizes.items()}
        self._eval_batches = {split: list(batches_of(*data, EVAL_BATCH, cfg.padding)) for split, data in self.heldout.items()}

    def train_batches(self, epoch: int) -> Iterator[Batch]:
        symbols, labels = generate(self.cfg.train_size, self.train_cfg, epoch_generator(self.seed, epoch))
        return batches_of(symbols, labels, self.batch_size, self.cfg.padding)

    def epoch_batches(self, epoch: int) -> Iterator[Batch]:
        """Under a mixing curriculum: each sequence from its own difficulty (rnnexp.tasks.mixing),
        a batch mixing them as it mixes lengths. With left padding each batch comes from one
        difficulty: its answers are read at the batch's last step, and an easy sequence behind a
        hard one's ~100 steps of padding would score differently for its company."""
        if getattr(self, "mixing", None) is None or self.cfg.padding == "left":
            return super().epoch_batches(epoch)
        parts = mixing.parts(self, epoch, self.cfg.train_size)
        drawn = [generate(part.size, part.cfg, part.generator) for part in parts]
        symbols = mixing.place(parts, [symbols for symbols, _ in drawn], PAD)
        return batches_of(symbols, mixing.place(parts, [labels for _, labels in drawn], 0), self.batch_size,
                          self.cfg.padding)

    def train_batch_count(self) -> int:
        return num_batches(self.cfg.train_size, self.batch_size)

    def eval_batches(self, split: str) -> Iterator[Batch]:
        if split == "stage":
            return self.stage_batches(lambda cfg, generator: list(batches_of(
                *generate(self.cfg.val_size, cfg, generator, part="val"), EVAL_BATCH, self.cfg.padding)))
        return iter(self._eval_batches[split])

    def data_report(self, epochs: int) -> dict[str, Any]:
        return split_report(space_size(self.cfg), {split: data[0] for split, data in self.heldout.items()},
                            lambda e: generate(self.cfg.train_size, self.cfg, epoch_generator(self.seed, e))[0], epochs)

    def baseline(self) -> dict[str, float]:
        """Chance: the four classes are equally likely."""
        return {"loss": math.log(len(CLASSES)), "accuracy": 1 / len(CLASSES)}

    def max_lag(self) -> int:
        """From the first X/Y to the readout at the last step: the longest sequence minus the earliest t1."""
        (_, lmax), (t1min, _), _ = self.cfg.ranges()
        return lmax - t1min

    def class_label(self, index: int) -> str:
        return CLASSES[index]

    def max_length(self) -> int:
        return self.cfg.ranges()[0][1]  # the longest sequence (a batch is padded to its longest)

    def example(self, text: Optional[str] = None) -> Example:
        if text is None:
            symbols, labels = self.heldout["val"]
            ids = symbols[:1, :int(lengths_of(symbols[:1]))]  # the padding left out
            return Example(Batch(one_hot(ids), labels[:1]), [SYMBOLS[i] for i in ids[0].tolist()])
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
        return (f"qrsu {self.cfg.difficulty}: length {lmin}-{lmax}, t1 {a}-{b}, t2 {c}-{d}, padded on the "
                f"{self.cfg.padding}; {self.cfg.train_size} fresh sequences per epoch, {self.cfg.val_size} validation, "
                f"{self.cfg.test_size} test (parts of a hash split)")
