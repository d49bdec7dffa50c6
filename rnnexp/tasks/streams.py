"""Parallel streams cut into chunks: the data side of truncated backpropagation through time.

A streaming task holds `batch_size` long sequences side by side (one per row). The model sees
one chunk of `chunk_length` steps at a time; the training loop carries the hidden state from the
end of one chunk into the next (detached, see `models.carry_hidden_state`), so memory spans
chunks while gradients stop at their boundaries. `Batch.reset` marks where a fresh state starts:
the first chunk of a series, or every chunk when state carrying is switched off (the ablation).
Used by the echo task and the character language model.
"""

from __future__ import annotations

from typing import Iterator, Optional

from rnnexp.lazy import torch  # on first use: config checks need no torch
from rnnexp.tasks.base import Batch


def split_into_streams(sequence: torch.Tensor, num_streams: int) -> torch.Tensor:
    """A long 1-D sequence -> (num_streams, length) of consecutive, equal pieces (the tail that
    does not divide evenly is dropped). Row i continues where row i-1 would have gone on."""
    length = sequence.shape[0] // num_streams
    return sequence[: num_streams * length].reshape(num_streams, length)


def chunk_streams(inputs: torch.Tensor, targets: torch.Tensor, chunk_length: int,
                  mask: Optional[torch.Tensor] = None, carry_state: bool = True) -> Iterator[Batch]:
    """Cut (B, L, ...) streams into consecutive chunks along time (the last may be shorter). A
    chunk whose steps are all scored gets no mask (the same loss, and no boolean selection, which
    would stop a CUDA graph from recording the step)."""
    for index, start in enumerate(range(0, targets.shape[1], chunk_length)):
        stop = start + chunk_length
        chunk_mask = None if mask is None else mask[:, start:stop]
        if chunk_mask is not None and bool(chunk_mask.all()):
            chunk_mask = None
        yield Batch(inputs[:, start:stop], targets[:, start:stop], chunk_mask, reset=index == 0 or not carry_state)

