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
from typing import Optional

from rnnexp.errors import ConfigError, require
from rnnexp.lazy import F, torch  # on first use: config checks need no torch
from rnnexp.tasks.base import Batch
from rnnexp.tasks.fixed_sets import FixedSetConfig, FixedSetTask
from rnnexp.tasks.scoring import Score

BLANK, DELIMITER, CATEGORIES = 0, 9, 10
FIRST_SYMBOL, LAST_SYMBOL = 1, 8
RECALLED = 10                   # symbols to remember per sequence
LABELS = ("_", *map(str, range(FIRST_SYMBOL, LAST_SYMBOL + 1)), ":")  # per category, for figures


@dataclass
class CopyConfig(FixedSetConfig):
    delay: int           # T: the delimiter comes T - 1 blanks after the 10 symbols

    def validate(self) -> None:
        super().validate()
        require(self.delay >= 1, "task.delay", self.delay, "use an integer >= 1")


class CopyTask(FixedSetTask):
    name = "copy"
    Config = CopyConfig
    unit = "symbols"     # what `count` counts: recalled symbols, 10 per sequence
    objective = ("loss", "min")
    curriculum_key = "delay"
    input_size, num_classes = CATEGORIES, CATEGORIES

    def draw(self, cfg: CopyConfig, n: int, generator: torch.Generator) -> tuple[torch.Tensor]:
        """The (n, 10) symbols to remember, uniform over 1..8 and independent (they decide the
        hash split's part, whatever the delay)."""
        return (torch.randint(FIRST_SYMBOL, LAST_SYMBOL + 1, (n, RECALLED), generator=generator),)

    def space(self, cfg: CopyConfig) -> int:
        return (LAST_SYMBOL - FIRST_SYMBOL + 1) ** RECALLED  # 8^10 symbol strings

    def make_batch(self, cfg: CopyConfig, symbols: torch.Tensor) -> Batch:
        """Symbols (B, 10) -> one-hot inputs (B, T + 20, 10) and category targets (B, T + 20)."""
        n, steps = symbols.shape[0], cfg.delay + 2 * RECALLED
        sequence = torch.full((n, steps), BLANK, dtype=torch.long)
        sequence[:, :RECALLED] = symbols
        sequence[:, RECALLED + cfg.delay - 1] = DELIMITER
        targets = torch.full((n, steps), BLANK, dtype=torch.long)
        targets[:, -RECALLED:] = symbols
        return Batch(F.one_hot(sequence, CATEGORIES).float(), targets)

    def score(self, outputs: torch.Tensor, batch: Batch) -> Score:
        """Cross-entropy over every step (the loss); accuracy over the 10 recalled symbols. In a
        batch that mixes delays (a mixing curriculum) each sequence's padding is left out and its
        recall is its own last 10 steps."""
        targets, classes = batch.targets, outputs.shape[-1]
        if batch.mask is None:
            summed = F.cross_entropy(outputs.reshape(-1, classes), targets.reshape(-1), reduction="sum")
            steps = torch.full((), float(targets.numel()), device=outputs.device)
        else:
            keep = batch.mask.reshape(-1)
            summed = F.cross_entropy(outputs.reshape(-1, classes)[keep], targets.reshape(-1)[keep], reduction="sum")
            steps = keep.sum().float()
        with torch.no_grad():
            if batch.lengths is None:
                recalled = outputs[:, -RECALLED:].argmax(-1) == targets[:, -RECALLED:]
            else:
                at = (batch.lengths - RECALLED).unsqueeze(1) + torch.arange(RECALLED, device=outputs.device)
                written = outputs.gather(1, at.unsqueeze(-1).expand(-1, -1, classes)).argmax(-1)
                recalled = written == targets.gather(1, at)
        return Score(summed / steps, {"loss": summed.detach(), "steps": steps,
                                      "correct": recalled.sum().float(),
                                      "count": torch.full((), float(recalled.numel()), device=outputs.device)})

    def metrics(self, sums: dict[str, float]) -> dict[str, float]:
        return {"loss": sums.get("loss", 0.0) / max(1.0, sums.get("steps", 0.0)),
                "accuracy": sums.get("correct", 0.0) / max(1.0, sums.get("count", 0.0))}

    def baseline(self) -> dict[str, float]:
        return {"loss": RECALLED * math.log(LAST_SYMBOL - FIRST_SYMBOL + 1) / (self.cfg.delay + 2 * RECALLED),
                "accuracy": 1.0 / (LAST_SYMBOL - FIRST_SYMBOL + 1)}

    def memoryless_outputs(self, batch: Batch) -> torch.Tensor:
        """Blank with certainty until the recall, then the 8 symbols equally likely."""
        n, steps = batch.targets.shape
        outputs = torch.full((n, steps, CATEGORIES), -1e4)
        outputs[:, :-RECALLED, BLANK] = 0.0
        outputs[:, -RECALLED:, FIRST_SYMBOL:LAST_SYMBOL + 1] = 0.0
        return outputs

    def max_lag(self) -> Optional[int]:
        # Symbol i is read at step i and written at step T + 10 + i: every lag is exactly T + 10.
        return self.cfg.delay + RECALLED

    def max_length(self) -> int:
        return self.cfg.delay + 2 * RECALLED

    def prediction_text(self, outputs: torch.Tensor, batch: Batch) -> str:
        recalled = outputs[0, -RECALLED:].argmax(-1)
        right = int((recalled == batch.targets[0, -RECALLED:]).sum())
        return (f"recalled {''.join(LABELS[int(k)] for k in recalled)}, target "
                f"{''.join(LABELS[int(k)] for k in batch.targets[0, -RECALLED:])}; {right} of {RECALLED} right")

    def labels(self, batch: Batch) -> list[str]:
        return [LABELS[c] for c in batch.inputs[0].argmax(-1).tolist()]

    def parse(self, text: str) -> tuple[torch.Tensor]:
        return (parse_symbols(text).unsqueeze(0),)

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
