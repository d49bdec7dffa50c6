"""Seeds packed into one network: G recurrent models of one config as one block-diagonal model.

    G models (hidden H, inputs I, classes C)  ->  one nn.LSTM/GRU/RNN of hidden G*H reading G*I
                                                  features, one nn.Linear(G*H, G*C)

Seed g's units are the g-th block of H in every gate; its inputs the g-th block of I features, its
outputs the g-th block of C. Every weight that would connect two seeds is zero, and stays zero: the
trainer (rnnexp.engine.packed) zeroes its gradient before every step. So each seed computes what it
would alone, up to the rounding of larger matrix products, and one fused kernel runs G small models
at once: for the lecture's hidden-4 models a step costs the interpreter and kernel launches, not the
arithmetic, and G seeds cost little more than one (issue 20; BENCHMARKS.md "Seed packing").

`owner[name]` says, for every entry of a packed parameter, which seed it belongs to (G: none, a
weight between seeds); `pack_into`/`unpack` move one seed's tensors (weights, optimizer moments)
in and out of the packed layout, so each seed keeps checkpoints and best models in the single-run
format.
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import nn

from rnnexp.models.family import State
from rnnexp.models.recurrent import GATE_BLOCKS
from rnnexp.models.recurrent_net import RecurrentModel, make_recurrent_layer


class PackedRecurrent(nn.Module):
    """`models[g]` (RecurrentModels of one config) as block g of one network."""

    def __init__(self, models: Sequence[RecurrentModel]):
        super().__init__()
        first = models[0]
        self.seeds, self.cell = len(models), first.cell
        G, H, I = self.seeds, first.rnn.hidden_size, first.rnn.input_size
        self.hidden_size, self.input_size, self.num_classes = H, I, first.head.out_features
        nonlinearity = getattr(first.rnn, "nonlinearity", "tanh")
        self.rnn = make_recurrent_layer(first.cell, G * I, G * H, first.rnn.num_layers, 0.0, nonlinearity)
        self.head = nn.Linear(G * H, G * self.num_classes)
        self.names = [name for name, _ in first.named_parameters()]
        own = dict(self.named_parameters())
        if sorted(own) != sorted(self.names):  # (an encoder with weights, a tied head: not packable)
            raise ValueError(f"cannot pack {sorted(self.names)} into {sorted(own)}")
        #: name -> (G, entries of one seed's tensor): where seed g's entries sit in the flat packed tensor
        self.index = {name: self._index(name, dict(first.named_parameters())[name].shape) for name in self.names}
        self.owner = {}
        for name in self.names:
            owner = torch.full((own[name].numel(),), G, dtype=torch.long)
            for g in range(G):
                owner[self.index[name][g]] = g
            self.owner[name] = owner.view(own[name].shape)
        with torch.no_grad():
            for p in self.parameters():
                p.zero_()
            for g, model in enumerate(models):
                for name, value in model.named_parameters():
                    self.pack_into(name, g, own[name].data, value.data)

    def _index(self, name: str, shape: torch.Size) -> torch.Tensor:
        """(G, numel) flat indices of each seed's entries of packed parameter `name`."""
        G, H, C = self.seeds, self.hidden_size, self.num_classes
        gates = GATE_BLOCKS[self.cell]
        if name.startswith("head."):
            rows = [g * C + torch.arange(C) for g in range(G)]
            width = H
        else:  # rnn.weight_ih_l{k}, rnn.weight_hh_l{k}, rnn.bias_*: `gates` blocks of H rows
            rows = [torch.cat([b * G * H + g * H + torch.arange(H) for b in range(gates)]) for g in range(G)]
            width = self.input_size if name.startswith("rnn.weight_ih_l0") else H
        if len(shape) == 1:
            return torch.stack(rows)
        columns = G * width
        return torch.stack([(r.view(-1, 1) * columns + g * width + torch.arange(width).view(1, -1)).reshape(-1)
                            for g, r in enumerate(rows)])

    def pack_into(self, name: str, g: int, packed: torch.Tensor, value: torch.Tensor) -> None:
        """Write seed g's `value` (shaped like its own parameter `name`) into `packed` (shaped like
        the packed one): a weight, or an optimizer's moment of it."""
        packed.view(-1)[self.index[name][g].to(packed.device)] = value.reshape(-1).to(packed.dtype)

    def unpack(self, name: str, g: int, packed: torch.Tensor, shape: torch.Size) -> torch.Tensor:
        """Seed g's entries of `packed` (parameter `name`, or a moment of it), in its own shape."""
        return packed.reshape(-1)[self.index[name][g].to(packed.device)].view(shape).clone()

    def forward(self, inputs: torch.Tensor, state: Optional[State] = None) -> tuple[torch.Tensor, State]:
        """(B, T, G*I) -> ((B, T, G*C), state); seed g's inputs and outputs are its own blocks."""
        hidden, state = self.rnn(inputs, state)
        return self.head(hidden), state

    # -- hidden states: (layers, B, G*H), seed g's block of H on the last axis ----------------
    def pack_states(self, states: Sequence[Optional[State]], batch: int, device: torch.device) -> Optional[State]:
        """One packed state from each seed's own (None: zeros); None when every seed starts from zeros."""
        if all(s is None for s in states):
            return None
        shape = (self.rnn.num_layers, batch, self.hidden_size)
        parts = 2 if self.cell == "lstm" else 1

        def part(s: Optional[State], k: int) -> torch.Tensor:
            if s is None:
                return torch.zeros(shape, device=device)
            return s[k] if isinstance(s, tuple) else s

        packed = tuple(torch.cat([part(s, k) for s in states], dim=-1) for k in range(parts))
        return packed if parts == 2 else packed[0]

    def unpack_state(self, state: Optional[State], g: int) -> Optional[State]:
        if state is None:
            return None
        H = self.hidden_size
        if isinstance(state, tuple):
            return tuple(s[..., g * H:(g + 1) * H] for s in state)  # type: ignore[return-value]
        return state[..., g * H:(g + 1) * H]
