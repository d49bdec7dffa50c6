"""Decoding owned by the task: how a model that writes an output sequence is evaluated.

In training a decoder reads the true previous output at every step (teacher forcing: the batch's
`decoder_inputs`, the targets shifted right behind a start symbol). In validation and test it
must read its own previous output instead, as it will when used: `greedy_decode` feeds back the
most likely symbol, step by step. A task with decoder inputs returns it from `Task.predict`, and
scores the result with `exact_match` (a sequence counts only when every symbol is right) next to
the per-symbol accuracy.

The model protocol: `model(inputs, state, decoder_inputs=ids)` -> (outputs (B, T_out, C), state),
where outputs[:, t] is the prediction of symbol t after reading decoder_inputs[:, :t + 1].
"""

from __future__ import annotations

from typing import Any

from rnnexp.lazy import torch  # on first use: config checks need no torch


def greedy_decode(model: Any, batch: Any, state: Any = None) -> tuple[torch.Tensor, Any]:
    """The outputs (B, T_out, C) of `model` on `batch` when it reads its own previous argmax
    instead of the true previous symbol; the first decoder input (the start symbol) is the
    batch's own. Recomputes the prefix at every step: any model works, and only evaluation pays."""
    steps = batch.decoder_inputs.shape[1]
    prefix = batch.decoder_inputs[:, :1]
    for t in range(steps):
        outputs, final = model(batch.inputs, state, decoder_inputs=prefix)
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
