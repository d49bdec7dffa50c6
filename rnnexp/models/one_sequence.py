"""A plain recurrent model behind the decoder protocol (rnnexp.tasks.decoding), in the form of
Zaremba & Sutskever 2014 ("Learning to Execute"): one sequence model reads the source, then the
start token and the answer's symbols, and its outputs at the answer's positions are the answer.

Token ids: the source's own, then the answer symbols from `program_tokens` on (answer symbol k is
token program_tokens + k, the start symbol, id num_classes, comes last): a task using it gives the
model that many token ids (`Task.vocab_size`). Each row's answer starts right after its own source
(sources padded on the right), so padding never comes between them; what a recurrent model reads
after the answer cannot change its outputs before.
"""

from __future__ import annotations

from typing import Any, Optional

import torch
from torch import nn


class OneSequence(nn.Module):
    """A plain recurrent model as Learning to Execute used it, behind the decoder protocol: it reads
    each program, then the start token and the answer's characters (teacher forcing: the true ones;
    in greedy decoding its own), and its outputs at the answer's positions are the answer."""

    reads_decoder_inputs = True

    def __init__(self, model: Any, program_tokens: int):
        super().__init__()
        self.model, self.program_tokens = model, program_tokens

    def forward(self, inputs: torch.Tensor, state: Any = None, decoder_inputs: Optional[torch.Tensor] = None,
                source_lengths: Optional[torch.Tensor] = None) -> tuple[torch.Tensor, Any]:
        steps = decoder_inputs.shape[1]  # type: ignore[union-attr]
        lengths = source_lengths if source_lengths is not None else torch.full((inputs.shape[0],), inputs.shape[1])
        lengths = lengths.to(inputs.device)
        sequence = one_sequence(inputs, decoder_inputs, lengths, self.program_tokens)  # type: ignore[arg-type]
        outputs, state = self.model(sequence, state)
        at = (lengths.unsqueeze(1) + torch.arange(steps, device=inputs.device)).unsqueeze(-1)
        return outputs.gather(1, at.expand(-1, -1, outputs.shape[-1])), state


def one_sequence(inputs: torch.Tensor, decoder_inputs: torch.Tensor, lengths: torch.Tensor,
                 program_tokens: int) -> torch.Tensor:
    """(B, S) sources padded on the right and (B, T) decoder inputs -> (B, S + T) token ids: each
    row's source, then at once its answer's tokens (the start token and the answer's symbols but
    the last, from `program_tokens` on), then the padding."""
    batch, steps = inputs.shape[0], decoder_inputs.shape[1]
    position = torch.arange(inputs.shape[1] + steps, device=inputs.device).unsqueeze(0)
    offset = position - lengths.to(inputs.device).unsqueeze(1)  # >= 0: the answer's part
    answer_tokens = decoder_inputs + program_tokens
    return torch.where(offset < 0, torch.cat([inputs, inputs[:, :1].expand(batch, steps)], dim=1),
                       answer_tokens.gather(1, offset.clamp(0, steps - 1)))
