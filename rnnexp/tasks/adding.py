"""The adding problem (Hochreiter & Schmidhuber 1997, experiment 4), in the form of Le, Jaitly &
Hinton 2015 and Arjovsky, Shah & Bengio 2016.

Every step reads two inputs: a value drawn uniformly from [0, 1] and a marker that is 1 at exactly
two steps and 0 elsewhere. The target, read at the last step (many-to-one regression, MSE), is the
sum of the two marked values.

Where the markers go: one uniformly in the first half (steps 0 .. T//2 - 1), one uniformly in the
second half (T//2 .. T - 1), as in Arjovsky et al. 2016. This form (not "any two steps") keeps the
two markers apart, and the first marked value must be held for T/2 steps or more, so `length`
alone sets how long the network must remember. (The 1997 original drew values from [-1, 1] with
the first marker among the first 10 steps and rescaled the target to 0.5 + sum / 4.)

Accuracy is the 1997 criterion: an answer is correct when its absolute error is below 0.04. Here
it applies to the unscaled sum, which spans [0, 2], so it is twice as strict relative to the
target's range as in 1997 (where the target spanned [0, 1]).

Baseline: a network that remembers nothing can do no better than a constant; the best constant is
the mean of the sum, 1, and its MSE is the variance of a sum of two independent U(0, 1) values:
2 x 1/12 = 1/6 ~ 0.167.

Generation is vectorised in torch: an epoch's values and marker positions are drawn at once (so the
data does not depend on the batch size), and each batch's inputs are assembled when it is used.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Optional

from rnnexp.errors import ConfigError, require
from rnnexp.lazy import torch  # on first use: config checks need no torch
from rnnexp.tasks.base import (SPLITS, Batch, Example, Task, check_sizes, epoch_generator, num_batches,
                               split_generator)
from rnnexp.tasks.scoring import Score, regression

TOLERANCE = 0.04                # |error| below this counts as correct (Hochreiter & Schmidhuber 1997)
MEMORYLESS_MSE = 2.0 / 12.0     # Var(U1 + U2): the MSE of always answering the mean, 1
EVAL_BATCH = 500                # held-out batch size, fixed so val/test never depend on train.batch_size


@dataclass
class AddingConfig:
    name: str
    length: int          # T, steps per sequence (the literature uses 100, 200, 400, 750)
    train_size: int      # fresh sequences per epoch
    val_size: int
    test_size: int
    heldout_seed: int    # seeds the fixed validation and test sets (the same for every train.seed)
    label: str

    def validate(self) -> None:
        require(self.length >= 2, "task.length", self.length, "use an integer >= 2 (one marker in each half)")
        check_sizes(self)


def draw_sequences(n: int, length: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """`n` sequences: values (n, T) uniform in [0, 1] and marker positions (n, 2), one per half."""
    values = torch.rand(n, length, generator=generator)
    half = length // 2
    first = torch.randint(0, half, (n,), generator=generator)
    second = torch.randint(half, length, (n,), generator=generator)
    return values, torch.stack([first, second], dim=1)


def make_batch(values: torch.Tensor, marked: torch.Tensor) -> Batch:
    """Inputs (B, T, 2) = (value, marker) per step; targets (B,) = the sum of the marked values."""
    markers = torch.zeros_like(values).scatter_(1, marked, 1.0)
    targets = values.gather(1, marked).sum(1)
    return Batch(torch.stack([values, markers], dim=-1), targets)


def batches_of(values: torch.Tensor, marked: torch.Tensor, batch_size: int) -> Iterator[Batch]:
    for start in range(0, len(values), batch_size):
        yield make_batch(values[start:start + batch_size], marked[start:start + batch_size])


class AddingTask(Task):
    name = "adding"
    Config = AddingConfig
    unit = "seqs"
    streaming = False
    objective = ("loss", "min")  # the MSE, as the literature reports it; graded, unlike the 0.04 hit rate
    curriculum_key = "length"

    def __init__(self, cfg: AddingConfig, batch_size: int, seed: int):
        self.cfg, self.batch_size, self.seed = cfg, batch_size, seed
        self.input_size, self.num_classes = 2, 1
        sizes = {"val": cfg.val_size, "test": cfg.test_size}
        # Each held-out split: drawn once from its own generator, cut once, reused every epoch.
        self._eval = {split: list(batches_of(*draw_sequences(sizes[split], cfg.length,
                                                             split_generator(cfg.heldout_seed, split)), EVAL_BATCH))
                      for split in SPLITS}

    def train_batches(self, epoch: int) -> Iterator[Batch]:
        data = draw_sequences(self.cfg.train_size, self.train_cfg.length, epoch_generator(self.seed, epoch))
        return batches_of(*data, self.batch_size)

    def train_batch_count(self) -> int:
        return num_batches(self.cfg.train_size, self.batch_size)

    def eval_batches(self, split: str) -> Iterator[Batch]:
        if split == "stage":
            return self.stage_batches(lambda cfg, generator: list(batches_of(
                *draw_sequences(self.cfg.val_size, cfg.length, generator), EVAL_BATCH)))
        if split not in self._eval:
            raise ValueError(f"split={split!r}: use one of {', '.join(SPLITS)}")
        return iter(self._eval[split])

    def score(self, outputs: torch.Tensor, batch: Batch) -> Score:
        return regression(outputs[:, -1, 0], batch.targets, tolerance=TOLERANCE)

    def baseline(self) -> dict[str, float]:
        return {"loss": MEMORYLESS_MSE}

    def max_lag(self) -> Optional[int]:
        return self.cfg.length  # the first marker may sit at step 0, the answer is read at T - 1

    def example(self, text: Optional[str] = None) -> Example:
        if text is None:
            batch = next(iter(self._eval["val"]))
            values, markers = batch.inputs[0, :, 0], batch.inputs[0, :, 1]
            batch = Batch(batch.inputs[:1], batch.targets[:1])
        else:
            values, markers = parse_sequence(text)
            batch = Batch(torch.stack([values, markers], -1).unsqueeze(0), (values * markers).sum().reshape(1))
        labels = [("*" if m > 0 else "") + f"{v:.2f}" for v, m in zip(values.tolist(), markers.tolist())]
        return Example(batch, labels)

    def describe(self) -> str:
        return (f"adding T={self.cfg.length}: sum of the 2 marked values in [0, 1]; {self.cfg.train_size} fresh "
                f"sequences per epoch, {self.cfg.val_size} val, {self.cfg.test_size} test; "
                f"baseline MSE {MEMORYLESS_MSE:.4f} (answer 1)")


EXAMPLE_FORMAT = "comma-separated values in [0, 1], the two marked ones with a leading *, e.g. 0.1,*0.5,0.3,*0.9"


def parse_sequence(text: str) -> tuple[torch.Tensor, torch.Tensor]:
    """"0.1,*0.5,0.3,*0.9" -> values (T,) and markers (T,); a bad token is a one-line ConfigError."""
    values, markers = [], []
    for token in text.split(","):
        token = token.strip()
        number = token.removeprefix("*")
        try:
            value = float(number)
        except ValueError:
            value = float("nan")
        if not 0.0 <= value <= 1.0:  # also rejects nan
            raise ConfigError(f"example token {token!r} is invalid: use {EXAMPLE_FORMAT}")
        values.append(value)
        markers.append(1.0 if token.startswith("*") else 0.0)
    if sum(markers) != 2:
        raise ConfigError(f"example {text!r} marks {int(sum(markers))} values: mark exactly 2; use {EXAMPLE_FORMAT}")
    return torch.tensor(values), torch.tensor(markers)
