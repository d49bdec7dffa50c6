"""The `Task` interface: what the data is and how it is scored. The training loop knows no more.

A task produces batches and says, for a model's per-step outputs, which logits are scored against
which targets (`readout`). Two shapes of task share one loop:

* many-to-one (QRSU): every batch is independent, `Batch.reset` is always true, and the answer
  is read at the last step;
* streaming (echo, charlm): a batch is one chunk of `batch_size` parallel streams; the loop carries
  the hidden state from chunk to chunk and `Batch.reset` marks the start of a new series.

A new task is one module in this package (a `Task` subclass with a `name` and a `Config`
dataclass) and one YAML file in `conf/task/`; subclasses register themselves.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar, Iterator, Optional

import numpy as np
import torch

from rnnexp.errors import ConfigError

_REGISTRY: dict[str, type["Task"]] = {}


@dataclass
class Batch:
    inputs: torch.Tensor             # (B, T, features) float, or (B, T) token ids
    targets: torch.Tensor            # (B,) for many-to-one, (B, T) for streaming
    mask: Optional[torch.Tensor] = None  # (B, T) bool: which targets count (streaming)
    reset: bool = True               # start from a fresh (zero) hidden state

    def to(self, device: torch.device) -> "Batch":
        if self.inputs.device == device:
            return self
        mask = None if self.mask is None else self.mask.to(device)
        return Batch(self.inputs.to(device), self.targets.to(device), mask, self.reset)


class Task:
    name: ClassVar[str]
    Config: ClassVar[type]
    streaming: ClassVar[bool] = False
    #: The metric a sweep optimises and its direction.
    objective: ClassVar[tuple[str, str]] = ("val/accuracy", "max")
    #: What one scored target is, for speeds ("chars/s").
    unit: ClassVar[str] = "targets"

    # Set by subclasses in __init__:
    input_size: int      # features per step (one-hot or bits); 0 when inputs are token ids
    vocab_size: int = 0  # > 0: inputs are token ids, the model embeds them
    num_classes: int

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" in cls.__dict__:
            _REGISTRY[cls.name] = cls

    @classmethod
    def validate_with(cls, task_cfg: Any, model_cfg: Any, train_cfg: Any) -> None:
        """Checks that need the model or training config too (override where needed)."""

    def train_batches(self, epoch: int) -> Iterator[Batch]:
        """The batches of training epoch `epoch` (1-based), reproducible from (seed, epoch)."""
        raise NotImplementedError

    def train_batch_count(self) -> int:
        """Batches in one training epoch (for the progress bar)."""
        raise NotImplementedError

    def val_batches(self) -> Iterator[Batch]:
        """The fixed held-out batches; the same every epoch."""
        raise NotImplementedError

    def readout(self, outputs: torch.Tensor, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-step logits (B, T, C) -> the scored logits (N, C) and their targets (N,)."""
        if not self.streaming:
            return outputs[:, -1], batch.targets  # many-to-one: the answer at the last step
        logits, targets = outputs.reshape(-1, outputs.shape[-1]), batch.targets.reshape(-1)
        if batch.mask is None:
            return logits, targets
        keep = batch.mask.reshape(-1)
        return logits[keep], targets[keep]

    def extra_metrics(self, loss: float, accuracy: float) -> dict[str, float]:
        """Task-specific metrics derived from the validation loss/accuracy (e.g. bits per char)."""
        return {}

    def describe(self) -> str:
        return self.name

    def artifacts(self) -> dict[str, str]:
        """Files (name -> text) to write into the run directory, e.g. a vocabulary."""
        return {}

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint must hold to regenerate the same data (most tasks: nothing)."""
        return {}


def task_class(name: Any) -> type[Task]:
    _import_all()
    if name not in _REGISTRY:
        raise ConfigError(f"task={name!r} is unknown; choose one of {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def build_task(task_cfg: Any, batch_size: int, seed: int) -> Task:
    return task_class(task_cfg.name)(task_cfg, batch_size=batch_size, seed=seed)


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """An independent RNG for (seed, epoch): epoch e's data never depends on epochs before it, so a
    resumed run sees exactly the data an uninterrupted one would."""
    mixed = np.random.SeedSequence([seed, epoch]).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator().manual_seed(int(mixed) & ((1 << 63) - 1))


def num_batches(total: int, batch_size: int) -> int:
    """Batches (or chunks) of at most `batch_size` that cover `total` items (or steps)."""
    return max(1, math.ceil(total / batch_size))


def _import_all() -> None:
    import importlib
    import pkgutil

    import rnnexp.tasks as pkg

    for info in pkgutil.iter_modules(pkg.__path__):
        if info.name != "base":
            importlib.import_module(f"rnnexp.tasks.{info.name}")
