"""Recurrent models: an encoder, a fused torch recurrent layer, a linear head.

    inputs (B, T, features) or token ids (B, T)
      -> encoder: identity for one-hot/bit features, nn.Embedding for token ids
      -> rnn: nn.RNN (ReLU or tanh), nn.LSTM or nn.GRU, chosen by name in `CELLS`
      -> head: nn.Linear(hidden, classes), applied at every step
    returns (logits (B, T, classes), final hidden state)

The hidden state is whatever torch's layer uses (a tensor, or an (h, c) tuple for the LSTM);
`carry_hidden_state` detaches either form so a streaming task can carry it to the next chunk.
"""

from __future__ import annotations

from typing import Any, Optional, Union

import torch
from torch import nn

from rnnexp.errors import ConfigError
from rnnexp.models.cells import GATE_BLOCKS

State = Union[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]

# name -> (torch layer, gate blocks per weight matrix). The names and their gate blocks live in
# rnnexp.models.cells, which the config check reads without importing torch.
_LAYERS: dict[str, type[nn.RNNBase]] = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}
CELLS: dict[str, tuple[type[nn.RNNBase], int]] = {name: (_LAYERS[name], gates) for name, gates in GATE_BLOCKS.items()}


def make_recurrent_layer(cell: str, input_size: int, hidden_size: int, num_layers: int = 1,
                         dropout: float = 0.0, nonlinearity: str = "relu") -> nn.RNNBase:
    """The fused torch layer for `cell`; an unknown name is rejected with the valid ones."""
    if cell not in CELLS:
        raise ConfigError(f"model.cell={cell!r} is unknown; choose one of {', '.join(CELLS)}")
    layer_cls, _ = CELLS[cell]
    kwargs: dict[str, Any] = dict(input_size=input_size, hidden_size=hidden_size, num_layers=num_layers,
                                  dropout=dropout if num_layers > 1 else 0.0, batch_first=True)
    if cell == "rnn":
        kwargs["nonlinearity"] = nonlinearity
    return layer_cls(**kwargs)


class RecurrentModel(nn.Module):
    def __init__(self, cell: str, input_size: int, num_classes: int, hidden_size: int,
                 num_layers: int = 1, dropout: float = 0.0, nonlinearity: str = "relu",
                 vocab_size: int = 0, embedding_size: Optional[int] = None):
        super().__init__()
        self.cell = cell
        if vocab_size > 0:
            embedding_size = embedding_size or hidden_size
            self.encoder: nn.Module = nn.Embedding(vocab_size, embedding_size)
            input_size = embedding_size
        else:
            self.encoder = nn.Identity()
        self.rnn = make_recurrent_layer(cell, input_size, hidden_size, num_layers, dropout, nonlinearity)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(hidden_size, num_classes)

    def forward(self, inputs: torch.Tensor, state: Optional[State] = None) -> tuple[torch.Tensor, State]:
        hidden, state = self.rnn(self.encoder(inputs), state)
        return self.head(self.drop(hidden)), state


def carry_hidden_state(state: Optional[State]) -> Optional[State]:
    """The state to start the next chunk from: same values, no gradient history.

    Truncated BPTT: without the detach, backward() would run through every earlier chunk (and
    fail, since their graphs are freed). The state still carries the memory forward; only the
    gradient stops at the chunk boundary. Not in place, so it works for the LSTM's (h, c) tuple.
    """
    if state is None:
        return None
    if isinstance(state, tuple):
        return tuple(s.detach() for s in state)  # type: ignore[return-value]
    return state.detach()
