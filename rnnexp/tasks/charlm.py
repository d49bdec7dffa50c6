"""Character language model: predict the next character of a text; bits per character.

The text (see rnnexp.tasks.corpus) is split 90/10 into contiguous train and validation parts (nanoGPT's
convention). Training cuts the train part into `batch_size` parallel streams and runs truncated
BPTT over chunks of `chunk_length` characters with the state carried across chunks (see
rnnexp.tasks.streams); each epoch starts the streams at a fresh random offset. Validation runs the
whole validation part the same way, so val/loss is the per-character loss in nats; val/bpc is
that / ln 2.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Iterator

import torch

from rnnexp.tasks.corpus import load_corpus
from rnnexp.errors import DataError, require
from rnnexp.tasks.streams import chunk_streams, split_into_streams
from rnnexp.tasks.base import Batch, Task, epoch_generator, num_batches


@dataclass
class CharLMConfig:
    name: str
    corpus: str
    chunk_length: int
    val_fraction: float
    sample_length: int
    sample_temperature: float
    label: str

    def validate(self) -> None:
        require(self.chunk_length >= 1, "task.chunk_length", self.chunk_length, "use an integer >= 1")
        require(0 < self.val_fraction < 1, "task.val_fraction", self.val_fraction, "use 0 < fraction < 1")
        require(self.sample_length >= 0, "task.sample_length", self.sample_length, "use >= 0 (0 = no samples)")
        require(self.sample_temperature > 0, "task.sample_temperature", self.sample_temperature, "use > 0")


def split_text(text: str, val_fraction: float) -> tuple[str, str]:
    cut = int(len(text) * (1 - val_fraction))
    return text[:cut], text[cut:]


class CharLMTask(Task):
    name = "charlm"
    Config = CharLMConfig
    unit = "chars"
    streaming = True
    objective = ("val/loss", "min")

    @classmethod
    def validate_with(cls, task_cfg: CharLMConfig, model_cfg: Any, train_cfg: Any) -> None:
        """Read and size-check the corpus before anything starts."""
        text = load_corpus(task_cfg.corpus)
        train, val = split_text(text, task_cfg.val_fraction)
        need_train = train_cfg.batch_size * (task_cfg.chunk_length + 1)
        if len(train) < need_train or len(val) < 2 * train_cfg.batch_size:
            raise DataError(
                f"task.corpus={task_cfg.corpus} has {len(text):,} characters, too short for one batch of chunks "
                f"(train.batch_size x (task.chunk_length + 1) = {need_train:,} training characters and "
                f"{2 * train_cfg.batch_size} for validation); use a longer text or lower train.batch_size / task.chunk_length")

    def __init__(self, cfg: CharLMConfig, batch_size: int, seed: int, vocab: str | None = None):
        self.cfg, self.batch_size, self.seed = cfg, batch_size, seed
        text = load_corpus(cfg.corpus)
        self.vocab = vocab if vocab is not None else "".join(sorted(set(text)))
        index = {ch: i for i, ch in enumerate(self.vocab)}
        train, val = split_text(text, cfg.val_fraction)
        self.train_ids = torch.tensor([index[ch] for ch in train], dtype=torch.long)
        self.val_ids = torch.tensor([index[ch] for ch in val], dtype=torch.long)
        self.input_size, self.vocab_size, self.num_classes = 0, len(self.vocab), len(self.vocab)
        self._val_streams = split_into_streams(self.val_ids, batch_size)

    def train_batches(self, epoch: int) -> Iterator[Batch]:
        # A fresh offset per epoch, so chunk boundaries fall at new places in the text.
        offset = int(torch.randint(0, self.cfg.chunk_length, (1,), generator=epoch_generator(self.seed, epoch)))
        streams = split_into_streams(self.train_ids[offset:], self.batch_size)
        return chunk_streams(streams[:, :-1], streams[:, 1:], self.cfg.chunk_length)

    def train_batch_count(self) -> int:
        return num_batches(len(self.train_ids) // self.batch_size - 1, self.cfg.chunk_length)

    def val_batches(self) -> Iterator[Batch]:
        return chunk_streams(self._val_streams[:, :-1], self._val_streams[:, 1:], self.cfg.chunk_length)

    def extra_metrics(self, loss: float, accuracy: float) -> dict[str, float]:
        return {"val/bpc": loss / math.log(2), "val/perplexity": math.exp(min(loss, 50.0))}

    def sample(self, model: torch.nn.Module, device: torch.device, seed: int = 0) -> str:
        """A text sample for the TensorBoard text tab."""
        from rnnexp.models.generate import generate_text

        return generate_text(model, self.vocab, "", self.cfg.sample_length, self.cfg.sample_temperature,
                             seed=seed, device=device)

    def describe(self) -> str:
        return (f"charlm on {self.cfg.corpus}: {len(self.train_ids):,} train / {len(self.val_ids):,} val characters, "
                f"vocabulary {self.vocab_size}, {self.batch_size} streams x chunks of {self.cfg.chunk_length}")

    def artifacts(self) -> dict[str, str]:
        return {"vocab.json": json.dumps(self.vocab, ensure_ascii=False)}

    def state_dict(self) -> dict[str, Any]:
        return {"vocab": self.vocab}
