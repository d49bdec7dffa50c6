"""The recurrent family's network (rnnexp.models.recurrent builds it): an encoder, a fused torch recurrent layer, a linear head.

    inputs (B, T, features) or token ids (B, T)
      -> encoder: identity for one-hot/bit features, nn.Embedding for token ids
         (then dropout `input_dropout`)
      -> rnn: nn.RNN (ReLU or tanh), nn.LSTM or nn.GRU, chosen by name in `CELLS`
         (dropout between layers; `weight_drop`: DropConnect on the hidden-to-hidden weights)
      -> head: nn.Linear(hidden, classes), applied at every step (after dropout; with
         `tie_weights` it shares the embedding's weights)
    returns (logits (B, T, classes), final hidden state)

The regularisers for language models are the ones LSTM language-model research found (each off
by default): dropout on the embeddings and outputs (Zaremba et al. 2014), DropConnect on the
recurrent weights (Wan et al. 2013; Merity et al. 2018, AWD-LSTM: it keeps the fused kernel, as
the dropped weights are the same at every time step), and tied input and output embeddings
(Press & Wolf 2017; Inan et al. 2017).

The hidden state is whatever torch's layer uses (a tensor, or an (h, c) tuple for the LSTM);
`carry_hidden_state` (rnnexp.models.family) detaches either form so a streaming task can carry it
to the next chunk.
"""

from __future__ import annotations

from typing import Any, Optional

import torch
from torch import nn

from rnnexp.errors import ConfigError
from rnnexp.models.family import State
from rnnexp.models.recurrent import GATE_BLOCKS

TIED_INIT_RANGE = 0.1  # U(-0.1, 0.1) for a matrix shared by the embedding and the output layer

# name -> (torch layer, gate blocks per weight matrix). The names and their gate blocks live in
# rnnexp.models.recurrent, which the config check reads without importing torch.
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


class DropConnect(nn.Module):
    """A parametrization: the weight with a fresh dropout mask at every forward pass in training
    (torch.nn.utils.parametrize recomputes it on access; the fused RNN picks it up)."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return nn.functional.dropout(weight, self.p, self.training)


class RecurrentModel(nn.Module):
    def __init__(self, cell: str, input_size: int, num_classes: int, hidden_size: int,
                 num_layers: int = 1, dropout: float = 0.0, nonlinearity: str = "relu",
                 vocab_size: int = 0, embedding_size: Optional[int] = None, input_dropout: float = 0.0,
                 weight_drop: float = 0.0, tie_weights: bool = False):
        super().__init__()
        self.cell = cell
        if vocab_size > 0:
            embedding_size = embedding_size or hidden_size
            self.encoder: nn.Module = nn.Embedding(vocab_size, embedding_size)
            input_size = embedding_size
        else:
            self.encoder = nn.Identity()
        self.input_drop = nn.Dropout(input_dropout)
        self.rnn = make_recurrent_layer(cell, input_size, hidden_size, num_layers, dropout, nonlinearity)
        self.weight_drop = weight_drop
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(hidden_size, num_classes)
        # What the start line calls its layers (train.precision=bf16 says which run in bf16).
        self.layer_labels = {"encoder": "embedding", "rnn": f"recurrent ({cell})", "head": "output"}
        if tie_weights:  # (the config check has told the user; this guards direct use)
            if not (vocab_size == num_classes and embedding_size == hidden_size):
                raise ValueError("tie_weights needs vocab_size == num_classes and embedding_size == hidden_size")
            self.head.weight = self.encoder.weight  # type: ignore[union-attr]
            # The shared matrix starts small, as in word_language_model and the AWD-LSTM: with
            # nn.Embedding's N(0, 1) the output layer's logits would have a std of ~3 (a fresh model
            # at 8.75 nats against ln V = 4.56 for 96 characters) instead of ~0.1.
            nn.init.uniform_(self.encoder.weight, -TIED_INIT_RANGE, TIED_INIT_RANGE)

    def apply_weight_drop(self) -> None:
        """DropConnect on every hidden-to-hidden weight matrix (after initialisation, which sets
        the weights themselves)."""
        if self.weight_drop > 0:
            for layer in range(self.rnn.num_layers):
                nn.utils.parametrize.register_parametrization(self.rnn, f"weight_hh_l{layer}", DropConnect(self.weight_drop))

    def forward(self, inputs: torch.Tensor, state: Optional[State] = None) -> tuple[torch.Tensor, State]:
        x = self.encoder(inputs)
        if self.input_drop.p > 0:  # (a dropout of 0 still costs a kernel and its backward)
            x = self.input_drop(x)
        hidden, state = self.rnn(x, state)
        if self.drop.p > 0:
            hidden = self.drop(hidden)
        return self.head(hidden), state

