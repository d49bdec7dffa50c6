"""Character language model: predict the next character of a text; bits per character.

The text (see rnnexp.tasks.corpus) is split 90/10 into contiguous train and validation parts (nanoGPT's
convention). Training cuts the train part into `batch_size` parallel streams and runs truncated
BPTT over chunks of `chunk_length` characters with the state carried across chunks (see
rnnexp.tasks.streams); each epoch starts the streams at a fresh random offset. Validation runs the
whole validation part the same way, so val/loss is the per-character loss in nats; val/bpc is
that / ln 2.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any, Iterator, Optional

from rnnexp.lazy import torch  # on first use: config checks need no torch
from rnnexp.tasks.corpus import load_corpus
from rnnexp.errors import ConfigError, DataError, require
from rnnexp.tasks.scoring import mean_metrics
from rnnexp.tasks.streams import chunk_streams, split_into_streams
from rnnexp.tasks.base import Batch, Example, Task, epoch_generator, num_batches


@dataclass
class CharLMConfig:
    name: str
    corpus: str
    chunk_length: int
    val_fraction: float
    test_fraction: float
    eval_streams: int
    sample_length: int
    sample_temperature: float
    label: str

    def validate(self) -> None:
        require(self.chunk_length >= 1, "task.chunk_length", self.chunk_length, "use an integer >= 1")
        require(0 < self.val_fraction < 1, "task.val_fraction", self.val_fraction, "use 0 < fraction < 1")
        require(0 < self.test_fraction < 1 - self.val_fraction, "task.test_fraction", self.test_fraction,
                f"use 0 < fraction < {1 - self.val_fraction:g} (1 - task.val_fraction)")
        require(self.eval_streams >= 1, "task.eval_streams", self.eval_streams, "use an integer >= 1")
        require(self.sample_length >= 0, "task.sample_length", self.sample_length, "use >= 0 (0 = no samples)")
        require(self.sample_temperature > 0, "task.sample_temperature", self.sample_temperature, "use > 0")


def split_text(text: str, val_fraction: float, test_fraction: float) -> tuple[str, str, str]:
    """Contiguous train / validation / test parts, in that order."""
    n_val, n_test = int(len(text) * val_fraction), int(len(text) * test_fraction)
    val_start = len(text) - n_val - n_test
    return text[:val_start], text[val_start:val_start + n_val], text[val_start + n_val:]


class CharLMTask(Task):
    name = "charlm"
    Config = CharLMConfig
    unit = "chars"
    streaming = True
    token_inputs = True
    objective = ("loss", "min")

    @classmethod
    def validate_with(cls, task_cfg: CharLMConfig, model_cfg: Any, train_cfg: Any) -> None:
        """Read and size-check the corpus before anything starts."""
        text = load_corpus(task_cfg.corpus)
        train, val, test = split_text(text, task_cfg.val_fraction, task_cfg.test_fraction)
        need_train = train_cfg.batch_size * (task_cfg.chunk_length + 1)
        if len(train) < need_train or min(len(val), len(test)) < 2 * task_cfg.eval_streams:
            raise DataError(
                f"task.corpus={task_cfg.corpus} has {len(text):,} characters, too short for one batch of chunks "
                f"(train.batch_size x (task.chunk_length + 1) = {need_train:,} training characters and "
                f"{2 * task_cfg.eval_streams} each for validation and test); use a longer text or lower "
                f"train.batch_size / task.chunk_length / task.eval_streams")

    def __init__(self, cfg: CharLMConfig, batch_size: int, seed: int, vocab: str | None = None):
        self.cfg, self.batch_size, self.seed = cfg, batch_size, seed
        text = load_corpus(cfg.corpus)
        self.corpus = {"sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(), "characters": len(text)}
        self._encode(text, vocab if vocab is not None else "".join(sorted(set(text))))

    def _encode(self, text: str, vocab: str) -> None:
        """The corpus as ids in `vocab` (its own characters, or a source run's: `inherit`)."""
        cfg, self.vocab = self.cfg, vocab
        index = {ch: i for i, ch in enumerate(self.vocab)}
        train, val, test = split_text(text, cfg.val_fraction, cfg.test_fraction)
        self.val_text = val
        self.train_ids = torch.tensor([index[ch] for ch in train], dtype=torch.long)
        self.heldout_ids = {"val": torch.tensor([index[ch] for ch in val], dtype=torch.long),
                            "test": torch.tensor([index[ch] for ch in test], dtype=torch.long)}
        self.input_size, self.vocab_size, self.num_classes = 0, len(self.vocab), len(self.vocab)
        self._eval_streams = {split: split_into_streams(ids, cfg.eval_streams) for split, ids in self.heldout_ids.items()}

    def inherit(self, state: dict[str, Any]) -> None:
        """A warm start keeps the source model's vocabulary: this corpus is read in it, and a
        character it does not have is an error that lists them."""
        vocab = state.get("vocab")
        if not vocab or vocab == self.vocab:
            return
        text = load_corpus(self.cfg.corpus)
        missing = sorted(set(text) - set(vocab))
        if missing:
            shown = "".join(missing[:40]).replace("\n", "\\n")
            raise DataError(f"task.corpus={self.cfg.corpus} has {len(missing)} character(s) the source run's vocabulary "
                            f"lacks: {shown!r}; train.init_from keeps that vocabulary: remove them from the text, or "
                            f"start without train.init_from")
        self._encode(text, vocab)

    def train_batches(self, epoch: int) -> Iterator[Batch]:
        # A fresh offset per epoch, so chunk boundaries fall at new places in the text.
        offset = int(torch.randint(0, self.cfg.chunk_length, (1,), generator=epoch_generator(self.seed, epoch)))
        streams = split_into_streams(self.train_ids[offset:], self.batch_size)
        return chunk_streams(streams[:, :-1], streams[:, 1:], self.cfg.chunk_length)

    def train_batch_count(self) -> int:
        return num_batches(len(self.train_ids) // self.batch_size - 1, self.cfg.chunk_length)

    def eval_batches(self, split: str) -> Iterator[Batch]:
        streams = self._eval_streams[split]
        return chunk_streams(streams[:, :-1], streams[:, 1:], self.cfg.chunk_length)

    def metrics(self, sums: dict[str, float]) -> dict[str, float]:
        metrics = mean_metrics(sums)
        loss = metrics["loss"]
        return {**metrics, "bpc": loss / math.log(2), "perplexity": math.exp(min(loss, 50.0))}

    def baseline(self) -> dict[str, float]:
        """A model that knows only the vocabulary: every character equally likely."""
        return {"loss": math.log(self.vocab_size), "bpc": math.log2(self.vocab_size)}

    def class_label(self, index: int) -> str:
        return self.vocab[index].replace("\n", "⏎")

    def max_lag(self) -> int:
        return self.cfg.chunk_length  # what truncated BPTT can learn across

    def sample(self, model: torch.nn.Module, device: torch.device, seed: int) -> Optional[str]:
        """A text sample for the TensorBoard text tab (none when task.sample_length=0)."""
        if not self.cfg.sample_length:
            return None
        from rnnexp.models.generate import generate_text

        return generate_text(model, self.vocab, "", self.cfg.sample_length, self.cfg.sample_temperature,
                             seed=seed, device=device)

    def example(self, text: Optional[str] = None) -> Example:
        text = self.val_text[:200] if text is None else text
        missing = sorted(set(text) - set(self.vocab))
        if not text or missing:
            raise ConfigError(f"example={text!r} has characters outside the run's vocabulary: {''.join(missing)!r}; "
                              f"use characters from vocab.json in the run directory")
        ids = torch.tensor([[self.vocab.index(ch) for ch in text]])
        return Example(Batch(ids[:, :-1], ids[:, 1:]), list(text[:-1]))

    def describe(self) -> str:
        val, test = (len(self.heldout_ids[split]) for split in ("val", "test"))
        return (f"charlm on {self.cfg.corpus}: {len(self.train_ids):,} train / {val:,} val / {test:,} test characters, "
                f"vocabulary {self.vocab_size}, {self.batch_size} streams x chunks of {self.cfg.chunk_length}")

    def data_report(self, epochs: int) -> dict[str, Any]:
        """The corpus as trained on (hashed when the task was built): its name or path, the sha256 of
        its UTF-8 text, and the parts' sizes."""
        return {"corpus": self.cfg.corpus, **self.corpus, "split": "contiguous: train, validation, test",
                "parts": {"train": len(self.train_ids), **{k: len(v) for k, v in self.heldout_ids.items()}}}

    def artifacts(self) -> dict[str, str]:
        return {"vocab.json": json.dumps(self.vocab, ensure_ascii=False)}

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "vocab": self.vocab}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        if state.get("vocab") not in (None, self.vocab):
            raise DataError(f"task.corpus={self.cfg.corpus} has another vocabulary than the checkpoint's; resume "
                            f"with the corpus the run was trained on")
