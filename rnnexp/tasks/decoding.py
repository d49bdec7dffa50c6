"""Decoding owned by the task: how a model that writes an output sequence is evaluated.

In training a decoder reads the true previous output at every step (teacher forcing: the batch's
`decoder_inputs`, the targets shifted right behind a start symbol). In validation and test it
must read its own previous output instead, as it will when used: `greedy_decode` feeds back the
most likely symbol, step by step. A task with decoder inputs returns it from `Task.predict`, and
scores the result with `exact_match` (a sequence counts only when every symbol is right) next to
the per-symbol accuracy.

The model protocol: `model(inputs, state, decoder_inputs=ids, source_lengths=lengths)` ->
(outputs (B, T_out, C), state), where outputs[:, t] is the prediction of symbol t after reading
decoder_inputs[:, :t + 1] and `source_lengths` (B,) (or None) each source's own length, padded on
the right. The start symbol is the id `num_classes` (one past the output symbols): a decoder
embeds num_classes + 1 symbols. A model with a `greedy(inputs, start, steps, source_lengths)`
method decodes in one pass (an encoder-decoder encodes once and steps its decoder); any other is
decoded by recomputing its prefix.
"""

from __future__ import annotations

import math
from typing import Any, Optional

from rnnexp.lazy import torch  # on first use: config checks need no torch


def greedy_decode(model: Any, batch: Any, state: Any = None) -> tuple[torch.Tensor, Any]:
    """The outputs (B, T_out, C) of `model` on `batch` when it reads its own previous argmax
    instead of the true previous symbol; the first decoder input (the start symbol) is the
    batch's own. Recomputes the prefix at every step: any model works, and only evaluation pays."""
    steps = batch.decoder_inputs.shape[1]
    prefix = batch.decoder_inputs[:, :1]
    if hasattr(model, "greedy"):
        return model.greedy(batch.inputs, prefix, steps, source_lengths=batch.lengths)
    for t in range(steps):
        outputs, final = model(batch.inputs, state, decoder_inputs=prefix, source_lengths=batch.lengths)
        if t + 1 < steps:
            prefix = torch.cat([prefix, outputs[:, -1:].argmax(-1).to(prefix.dtype)], dim=1)
    return outputs, final


def exact_match(logits: torch.Tensor, targets: torch.Tensor, mask: Any = None) -> dict[str, torch.Tensor]:
    """Sums for the share of sequences right in every scored symbol: `exact` and `sequences`."""
    with torch.no_grad():
        right = logits.argmax(-1) == targets
        if mask is not None:
            right = right | ~mask
        exact = right.all(dim=1).sum().float()
    return {"exact": exact, "sequences": torch.full((), float(targets.shape[0]), device=logits.device)}


def shift_right(targets: torch.Tensor, start: int) -> torch.Tensor:
    """(B, T) targets -> the decoder inputs of teacher forcing: the start symbol, then the targets
    but the last (symbol t is written after reading symbols 0..t-1)."""
    return torch.cat([torch.full_like(targets[:, :1], start), targets[:, :-1]], dim=1)


def after_end(logits: torch.Tensor, end: int) -> torch.Tensor:
    """(B, T) bool: the steps after the first end token a decoder wrote (it said it was done: what
    it writes there is no answer, and is never counted right)."""
    ended = logits.argmax(-1) == end
    return (ended.cumsum(1) - ended.long()) > 0


def sequence_score(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor,
                   finished: Optional[torch.Tensor] = None) -> Any:
    """A written sequence's score: the cross-entropy per scored symbol (mask: the symbols and the
    end token, not the padding after it), sums `loss`, `correct`, `count` per symbol and `exact`,
    `sequences` per whole sequence (exact match); `finished` (B, T): steps never counted right
    (after a greedy decoder's own end token)."""
    from rnnexp.tasks.scoring import Score

    logits = logits.float()
    keep = mask.reshape(-1)
    flat, wanted = logits.reshape(-1, logits.shape[-1])[keep], targets.reshape(-1)[keep]
    summed = torch.nn.functional.cross_entropy(flat, wanted, reduction="sum")
    count = mask.sum().float()
    with torch.no_grad():
        right = flat.argmax(-1) == wanted
        if finished is not None:  # (greedy decoding: nothing after the model's own end token is right)
            right = right & ~finished.reshape(-1)[keep]
        correct = right.sum().float()
    return Score(summed / count.clamp(min=1.0), {"loss": summed.detach(), "correct": correct, "count": count,
                                                 **exact_match(logits, targets, mask)})


def sequence_metrics(sums: dict[str, float]) -> dict[str, float]:
    """`loss` and `accuracy` per scored symbol, `exact_match` per sequence (in evaluation: of greedy decoding)."""
    count = max(1.0, sums.get("count", 0.0))
    return {"loss": sums.get("loss", 0.0) / count, "accuracy": sums.get("correct", 0.0) / count,
            "exact_match": sums.get("exact", 0.0) / max(1.0, sums.get("sequences", 0.0))}


class WritesSequence:
    """What a task whose answer a decoder writes shares (task=reverse, task=decimal): greedy
    decoding in evaluation, the score per symbol and per whole answer (and, as Zaremba & Sutskever
    2014 report it, the teacher-forced accuracy per symbol: `forced_accuracy`), the baseline of a model that
    learned nothing (every symbol equally likely) and the answer as text. Mixed into a `Task`
    before it (`class ReverseTask(WritesSequence, FixedSetTask)`); the task sets `symbol_labels`,
    one label per output class (its last: the end token)."""

    decodes = True
    objective = ("exact_match", "max")
    symbol_labels: list[str]

    def predict(self, model: Any, batch: Any, state: Any) -> tuple[Any, Any]:
        """Greedy decoding's outputs, and beside them the teacher-forced ones (`forced_accuracy`)."""
        greedy, final = greedy_decode(model, batch, state)
        return (greedy, self.forward(model, batch, state)[0]), final  # type: ignore[attr-defined]

    def score(self, outputs: Any, batch: Any) -> Any:
        """Training: the teacher-forced outputs. Evaluation: (greedy, teacher-forced) outputs, scored
        on the greedy ones, with the teacher-forced accuracy per symbol beside (`forced_correct`)."""
        if isinstance(outputs, tuple):
            greedy, forced = outputs
            score = sequence_score(greedy, batch.targets, batch.mask, after_end(greedy, len(self.symbol_labels) - 1))
            with torch.no_grad():
                score.sums["forced_correct"] = ((forced.argmax(-1) == batch.targets) & batch.mask).sum().float()
            return score
        return sequence_score(outputs, batch.targets, batch.mask)

    def metrics(self, sums: dict[str, float]) -> dict[str, float]:
        """In evaluation also `forced_accuracy`; in training `accuracy` is what training ran (teacher-
        forced, or with train.teacher_forcing < 1 partly reading the model's own guesses)."""
        metrics = sequence_metrics(sums)
        if "forced_correct" in sums:
            metrics["forced_accuracy"] = sums["forced_correct"] / max(1.0, sums.get("count", 0.0))
        return metrics

    def baseline(self) -> dict[str, float]:
        classes = len(self.symbol_labels)
        return {"loss": math.log(classes), "accuracy": 1 / classes, "exact_match": 0.0}

    def memoryless_outputs(self, batch: Any) -> torch.Tensor:
        return torch.zeros(*batch.targets.shape, len(self.symbol_labels))

    def class_label(self, index: int) -> str:
        return self.symbol_labels[index]

    def prediction_text(self, outputs: Any, batch: Any) -> str:
        outputs = outputs[0] if isinstance(outputs, tuple) else outputs  # (predict's: the greedy ones)
        n = int(batch.mask[0].sum()) if batch.mask is not None else outputs.shape[1]
        end, separator = self.symbol_labels[-1], getattr(self, "symbol_separator", "")
        written = [self.symbol_labels[int(k)] for k in outputs[0, :n].argmax(-1)]
        written = written[:written.index(end) + 1] if end in written else written  # (as scored: up to its end)
        wanted = [self.symbol_labels[int(k)] for k in batch.targets[0, :n]]
        right = sum(a == b for a, b in zip(written, wanted))
        return f"prediction {separator.join(written)}, target {separator.join(wanted)}; {right} of {n} symbols right"
