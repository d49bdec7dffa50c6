"""The copy memory task (Arjovsky, Shah & Bengio 2016, section 4.1; after Hochreiter & Schmidhuber
1997, experiment 2): read 10 symbols, wait, then write them back in order.

Alphabet of 10 categories: 0 blank, 1-8 the symbols, 9 the delimiter. With T = `task.delay`:

    input  (T + 20 steps): 10 symbols drawn uniformly from 1..8 | T - 1 blanks | delimiter | 10 blanks
    target (T + 20 steps): T + 10 blanks                                      | the 10 symbols

Inputs are one-hot (B, T + 20, 10). The loss is the cross-entropy averaged over every step, as in
the paper; the accuracy counts the 10 recalled symbols only (the blanks are trivial).

Every symbol string belongs to one part, train, validation or test, by a hash of its symbols
(rnnexp.tasks.splits), so no test sequence is ever trained on.

Baseline (the paper's "memoryless strategy"): answer blank with certainty for the first T + 10
steps (free) and guess uniformly among the 8 symbols for the last 10 (ln 8 each), which gives
10 ln 8 / (T + 20) per step. A network stuck on the well-known plateau sits exactly there, with
recall accuracy 1/8.

The objective is the loss (min), not the recall accuracy: it is the quantity the paper reports and
compares with the baseline, and it keeps ranking runs that are still on the plateau, where the
accuracy is flat at chance.

The module is named copy_memory so it never shadows the standard library's `copy`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterator, Optional

from rnnexp.errors import ConfigError, require
from rnnexp.lazy import F, torch  # on first use: config checks need no torch
from rnnexp.tasks.base import (SPLITS, Batch, Example, Task, check_sizes, epoch_generator, num_batches,
                               split_generator)
from rnnexp.tasks.scoring import Score
from rnnexp.tasks.splits import draw_in_part, split_report

BLANK, DELIMITER, CATEGORIES = 0, 9, 10
FIRST_SYMBOL, LAST_SYMBOL = 1, 8
RECALLED = 10                   # symbols to remember per sequence
LABELS = ("_", *map(str, range(FIRST_SYMBOL, LAST_SYMBOL + 1)), ":")  # per category, for figures
EVAL_BATCH = 500                # held-out batch size, fixed so val/test never depend on train.batch_size


@dataclass
class CopyConfig:
    name: str
    delay: int           # T: the delimiter comes T - 1 blanks after the 10 symbols
    train_size: int      # fresh sequences per epoch
    val_size: int
    test_size: int
    heldout_seed: int    # seeds the fixed validation and test sets (the same for every train.seed)
    label: str

    def validate(self) -> None:
        require(self.delay >= 1, "task.delay", self.delay, "use an integer >= 1")
        check_sizes(self)


def draw_symbols(n: int, generator: torch.Generator, part: str = "train") -> torch.Tensor:
    """The (n, 10) symbols to remember, uniform over 1..8 and independent, from the hash split's
    `part` (the symbols decide it, whatever the delay)."""
    def draw(m: int, g: torch.Generator) -> tuple[torch.Tensor]:
        return (torch.randint(FIRST_SYMBOL, LAST_SYMBOL + 1, (m, RECALLED), generator=g),)

    return draw_in_part(n, part, draw, generator)[0]


def make_batch(symbols: torch.Tensor, delay: int) -> Batch:
    """Symbols (B, 10) -> one-hot inputs (B, T + 20, 10) and category targets (B, T + 20)."""
    n, steps = symbols.shape[0], delay + 2 * RECALLED
    sequence = torch.full((n, steps), BLANK, dtype=torch.long)
    sequence[:, :RECALLED] = symbols
    sequence[:, RECALLED + delay - 1] = DELIMITER
    targets = torch.full((n, steps), BLANK, dtype=torch.long)
    targets[:, -RECALLED:] = symbols
    return Batch(F.one_hot(sequence, CATEGORIES).float(), targets)


def batches_of(symbols: torch.Tensor, delay: int, batch_size: int) -> Iterator[Batch]:
    for start in range(0, len(symbols), batch_size):
        yield make_batch(symbols[start:start + batch_size], delay)


class CopyTask(Task):
    name = "copy"
    Config = CopyConfig
    unit = "symbols"     # what `count` counts: recalled symbols, 10 per sequence
    streaming = False
    objective = ("loss", "min")
    curriculum_key = "delay"

    def __init__(self, cfg: CopyConfig, batch_size: int, seed: int):
        self.cfg, self.batch_size, self.seed = cfg, batch_size, seed
        self.input_size, self.num_classes = CATEGORIES, CATEGORIES
        sizes = {"val": cfg.val_size, "test": cfg.test_size}
        # Each held-out split: drawn once from its own generator, cut once, reused every epoch.
        self.heldout = {split: draw_symbols(sizes[split], split_generator(cfg.heldout_seed, split), part=split)
                        for split in SPLITS}
        self._eval = {split: list(batches_of(symbols, cfg.delay, EVAL_BATCH)) for split, symbols in self.heldout.items()}

    def train_batches(self, epoch: int) -> Iterator[Batch]:
        symbols = draw_symbols(self.cfg.train_size, epoch_generator(self.seed, epoch))
        return batches_of(symbols, self.train_cfg.delay, self.batch_size)

    def train_batch_count(self) -> int:
        return num_batches(self.cfg.train_size, self.batch_size)

    def eval_batches(self, split: str) -> Iterator[Batch]:
        if split == "stage":
            return self.stage_batches(lambda cfg, generator: list(batches_of(
                draw_symbols(self.cfg.val_size, generator, part="val"), cfg.delay, EVAL_BATCH)))
        if split not in self._eval:
            raise ValueError(f"split={split!r}: use one of {', '.join(SPLITS)}")
        return iter(self._eval[split])

    def data_report(self, epochs: int) -> dict[str, Any]:
        return split_report((LAST_SYMBOL - FIRST_SYMBOL + 1) ** RECALLED, self.heldout,  # 8^10 symbol strings
                            lambda e: draw_symbols(self.cfg.train_size, epoch_generator(self.seed, e)), epochs)

    def score(self, outputs: torch.Tensor, batch: Batch) -> Score:
        """Cross-entropy over every step (the loss); accuracy over the 10 recalled symbols."""
        targets = batch.targets
        summed = F.cross_entropy(outputs.reshape(-1, outputs.shape[-1]), targets.reshape(-1), reduction="sum")
        steps = torch.full((), float(targets.numel()), device=outputs.device)
        with torch.no_grad():
            recalled = outputs[:, -RECALLED:].argmax(-1) == targets[:, -RECALLED:]
        return Score(summed / steps, {"loss": summed.detach(), "steps": steps,
                                      "correct": recalled.sum().float(),
                                      "count": torch.full((), float(recalled.numel()), device=outputs.device)})

    def metrics(self, sums: dict[str, float]) -> dict[str, float]:
        return {"loss": sums.get("loss", 0.0) / max(1.0, sums.get("steps", 0.0)),
                "accuracy": sums.get("correct", 0.0) / max(1.0, sums.get("count", 0.0))}

    def baseline(self) -> dict[str, float]:
        return {"loss": RECALLED * math.log(LAST_SYMBOL - FIRST_SYMBOL + 1) / (self.cfg.delay + 2 * RECALLED),
                "accuracy": 1.0 / (LAST_SYMBOL - FIRST_SYMBOL + 1)}

    def max_lag(self) -> Optional[int]:
        # Symbol i is read at step i and written at step T + 10 + i: every lag is exactly T + 10.
        return self.cfg.delay + RECALLED

    def example(self, text: Optional[str] = None) -> Example:
        if text is None:
            batch = next(iter(self._eval["val"]))
            batch = Batch(batch.inputs[:1], batch.targets[:1])
        else:
            batch = make_batch(parse_symbols(text).unsqueeze(0), self.cfg.delay)
        return Example(batch, [LABELS[c] for c in batch.inputs[0].argmax(-1).tolist()])

    def describe(self) -> str:
        return (f"copy T={self.cfg.delay}: recall {RECALLED} symbols from 1-8 after {self.cfg.delay + RECALLED} "
                f"steps ({self.cfg.delay + 2 * RECALLED} per sequence); {self.cfg.train_size} fresh sequences "
                f"per epoch, {self.cfg.val_size} val, {self.cfg.test_size} test; "
                f"baseline loss {self.baseline()['loss']:.4f} (memoryless)")


def parse_symbols(text: str) -> torch.Tensor:
    """"12345678" + 2 more -> the (10,) symbols; anything else is a one-line ConfigError."""
    symbols = text.strip()
    bad = [c for c in symbols if c not in "12345678"]
    if bad or len(symbols) != RECALLED:
        problem = f"symbol {bad[0]!r} is not in 1-8" if bad else f"it has {len(symbols)} symbols"
        raise ConfigError(f"example {text!r} is invalid ({problem}): use exactly {RECALLED} digits from 1-8, "
                          f"e.g. 1234567812")
    return torch.tensor([int(c) for c in symbols])
