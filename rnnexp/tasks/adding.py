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
from typing import Optional

from rnnexp.errors import ConfigError, require
from rnnexp.lazy import torch  # on first use: config checks need no torch
from rnnexp.tasks.base import Batch
from rnnexp.tasks.fixed_sets import FixedSetConfig, FixedSetTask
from rnnexp.tasks.scoring import Score, regression

TOLERANCE = 0.04                # |error| below this counts as correct (Hochreiter & Schmidhuber 1997)
MEMORYLESS_MSE = 2.0 / 12.0     # Var(U1 + U2): the MSE of always answering the mean, 1


@dataclass
class AddingConfig(FixedSetConfig):
    length: int          # T, steps per sequence (the literature uses 100, 200, 400, 750)

    def validate(self) -> None:
        super().validate()
        require(self.length >= 2, "task.length", self.length, "use an integer >= 2 (one marker in each half)")


class AddingTask(FixedSetTask):
    name = "adding"
    Config = AddingConfig
    unit = "seqs"
    objective = ("loss", "min")  # the MSE, as the literature reports it; graded, unlike the 0.04 hit rate
    curriculum_key = "length"
    input_size, num_classes = 2, 1

    def draw(self, cfg: AddingConfig, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """`n` sequences: values (n, T) uniform in [0, 1] and marker positions (n, 2), one per half."""
        values = torch.rand(n, cfg.length, generator=generator)
        half = cfg.length // 2
        first = torch.randint(0, half, (n,), generator=generator)
        second = torch.randint(half, cfg.length, (n,), generator=generator)
        return values, torch.stack([first, second], dim=1)

    def make_batch(self, cfg: AddingConfig, values: torch.Tensor, marked: torch.Tensor) -> Batch:
        """Inputs (B, T, 2) = (value, marker) per step; targets (B,) = the sum of the marked values."""
        markers = torch.zeros_like(values).scatter_(1, marked, 1.0)
        targets = values.gather(1, marked).sum(1)
        return Batch(torch.stack([values, markers], dim=-1), targets)

    def score(self, outputs: torch.Tensor, batch: Batch) -> Score:
        return regression(batch.last_outputs(outputs)[:, 0], batch.targets, tolerance=TOLERANCE)

    def baseline(self) -> dict[str, float]:
        return {"loss": MEMORYLESS_MSE}

    def memoryless_outputs(self, batch: Batch) -> torch.Tensor:
        return torch.ones(batch.inputs.shape[0], batch.inputs.shape[1], 1)  # always the mean of the sum, 1

    def max_lag(self) -> Optional[int]:
        return self.cfg.length  # the first marker may sit at step 0, the answer is read at T - 1

    def max_length(self) -> int:
        return self.cfg.length

    def labels(self, batch: Batch) -> list[str]:
        values, markers = batch.inputs[0, :, 0].tolist(), batch.inputs[0, :, 1].tolist()
        return [("*" if m > 0 else "") + f"{v:.2f}" for v, m in zip(values, markers)]

    def parse(self, text: str) -> tuple[torch.Tensor, torch.Tensor]:
        values, markers = parse_sequence(text)
        return values.unsqueeze(0), markers.nonzero().view(1, 2)

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
