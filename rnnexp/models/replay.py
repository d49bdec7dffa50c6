"""A step-by-step replay of a `RecurrentModel` with its own weights: every hidden (and cell) state
and every gate at every step, which torch's fused layers do not return (they give the last state).

Only for the few examples that are looked at (figures of the hidden state), never in training:
a Python loop over time is slow, the fused kernel is not. The replay computes what the model does
in eval mode (no dropout anywhere) and leaves the model's mode, weights and gradients untouched.

PyTorch's gate layouts (rows of weight_ih_l{k} / weight_hh_l{k}, biases alike):

    rnn   h' = act(W_ih x + b_ih + W_hh h + b_hh)                   act: relu or tanh
    lstm  i, f, g, o:  i = sig(.), f = sig(.), g = tanh(.), o = sig(.)
          c' = f * c + i * g,   h' = o * tanh(c')
    gru   r, z, n:     r = sig(W_ir x + b_ir + W_hr h + b_hr), z likewise,
          n = tanh(W_in x + b_in + r * (W_hn h + b_hn)),   h' = (1 - z) * n + z * h
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Union

import torch
import torch.nn.functional as F
from torch import nn

State = Union[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]

from rnnexp.models.gates import GATE_NAMES


@dataclass
class LayerReplay:
    h: torch.Tensor                              # (B, T, H) hidden state after reading step t
    c: Optional[torch.Tensor] = None             # (B, T, H) LSTM cell state, else None
    gates: dict[str, torch.Tensor] = field(default_factory=dict)  # name -> (B, T, H), post-activation
    steps: list[torch.Tensor] = field(default_factory=list)       # the T tensors (B, H) h is stacked
    #                                              from: take gradients with respect to these


@dataclass
class Replay:
    cell: str                     # "rnn", "lstm" or "gru"
    layers: list[LayerReplay]     # bottom to top
    outputs: torch.Tensor         # (B, T, C): model.head at every step (no dropout)
    state: State                  # the final state, in torch's format ((L, B, H) or (h, c))

    @property
    def last(self) -> LayerReplay:
        return self.layers[-1]


def _weight(rnn: nn.RNNBase, name: str) -> torch.Tensor:
    """The weight itself, not a DropConnect sample of it (model.weight_drop): the replay shows
    the network, and draws no random numbers."""
    if nn.utils.parametrize.is_parametrized(rnn, name):
        return getattr(rnn.parametrizations, name).original
    return getattr(rnn, name)


def _cell_name(rnn: nn.RNNBase) -> str:
    if isinstance(rnn, nn.LSTM):
        return "lstm"
    if isinstance(rnn, nn.GRU):
        return "gru"
    if isinstance(rnn, nn.RNN):
        return "rnn"
    raise TypeError(f"cannot replay {type(rnn).__name__}")


def _initial(rnn: nn.RNNBase, cell: str, state: Optional[State], batch: int,
             like: torch.Tensor) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
    """(h0, c0) as (L, B, H) tensors: zeros where no state is given."""
    shape = (rnn.num_layers, batch, rnn.hidden_size)
    if state is None:
        h0 = like.new_zeros(shape)
        return h0, (like.new_zeros(shape) if cell == "lstm" else None)
    if cell == "lstm":
        h0, c0 = state  # type: ignore[misc]
        return h0.to(like), c0.to(like)
    if isinstance(state, tuple):
        raise TypeError(f"a {cell} state is one tensor, got a tuple")
    return state.to(like), None


def replay(model: nn.Module, inputs: torch.Tensor, state: Optional[State] = None,
           requires_grad: bool = False) -> Replay:
    """Run `model` (a `RecurrentModel`: encoder -> rnn -> head) one step at a time with its own
    weights. `inputs` as the model takes them ((B, T, F) features or (B, T) token ids), `state` as
    torch's layer takes it. The graph is kept when grad mode is on; `requires_grad=True` also makes
    the initial state a leaf that needs a gradient, so that every step's h has a gradient path
    even when the weights are frozen (see `gradients_through_time`)."""
    rnn: nn.RNNBase = model.rnn  # type: ignore[assignment]
    cell = _cell_name(rnn)
    if rnn.bidirectional or getattr(rnn, "proj_size", 0):
        raise NotImplementedError("replay covers unidirectional layers without projections")
    weight = rnn.weight_ih_l0
    device, dtype = weight.device, weight.dtype
    x = model.encoder(inputs.to(device))
    if not rnn.batch_first:
        x = x.transpose(0, 1)
    x = x.to(dtype)
    batch, steps = x.shape[0], x.shape[1]
    h0s, c0s = _initial(rnn, cell, state, batch, weight)
    if requires_grad:
        h0s = h0s.detach().clone().requires_grad_(True)
        c0s = None if c0s is None else c0s.detach().clone().requires_grad_(True)
    act: Callable[[torch.Tensor], torch.Tensor] = torch.relu
    if cell == "rnn" and rnn.nonlinearity == "tanh":
        act = torch.tanh

    layers: list[LayerReplay] = []
    finals_h, finals_c = [], []
    layer_in = x
    for k in range(rnn.num_layers):
        w_ih, w_hh = getattr(rnn, f"weight_ih_l{k}"), _weight(rnn, f"weight_hh_l{k}")
        b_ih = getattr(rnn, f"bias_ih_l{k}") if rnn.bias else None
        b_hh = getattr(rnn, f"bias_hh_l{k}") if rnn.bias else None
        xw = F.linear(layer_in, w_ih, b_ih)  # (B, T, G*H): the input part of every step at once
        h = h0s[k]
        c = None if c0s is None else c0s[k]
        hs: list[torch.Tensor] = []
        cs: list[torch.Tensor] = []
        gates: dict[str, list[torch.Tensor]] = {name: [] for name in GATE_NAMES[cell]}
        for t in range(steps):
            hw = F.linear(h, w_hh, b_hh)
            if cell == "rnn":
                h = act(xw[:, t] + hw)
            elif cell == "lstm":
                pre_i, pre_f, pre_g, pre_o = (xw[:, t] + hw).chunk(4, dim=-1)
                i, f, g, o = torch.sigmoid(pre_i), torch.sigmoid(pre_f), torch.tanh(pre_g), torch.sigmoid(pre_o)
                c = f * c + i * g
                h = o * torch.tanh(c)
                cs.append(c)
                for name, value in zip("ifgo", (i, f, g, o)):
                    gates[name].append(value)
            else:
                x_r, x_z, x_n = xw[:, t].chunk(3, dim=-1)
                h_r, h_z, h_n = hw.chunk(3, dim=-1)
                r = torch.sigmoid(x_r + h_r)
                z = torch.sigmoid(x_z + h_z)
                n = torch.tanh(x_n + r * h_n)
                h = (1 - z) * n + z * h
                for name, value in zip("rzn", (r, z, n)):
                    gates[name].append(value)
            hs.append(h)
        stacked = torch.stack(hs, dim=1)
        layers.append(LayerReplay(h=stacked, c=torch.stack(cs, dim=1) if cs else None,
                                  gates={name: torch.stack(v, dim=1) for name, v in gates.items()},
                                  steps=hs))
        finals_h.append(h)
        if c is not None:
            finals_c.append(c)
        layer_in = stacked  # no dropout between layers: eval mode
    outputs = model.head(layers[-1].h)
    final: State = torch.stack(finals_h)
    if cell == "lstm":
        final = (final, torch.stack(finals_c))
    return Replay(cell=cell, layers=layers, outputs=outputs, state=final)


def _loss_of(scorer: Any, outputs: torch.Tensor, batch: Any) -> Optional[torch.Tensor]:
    result = scorer.score(outputs, batch) if hasattr(scorer, "score") else scorer(outputs, batch)
    return getattr(result, "loss", result)


def replay_with_gradients(model: nn.Module, task_or_score_fn: Any, example: Any,
                          state: Optional[State] = None) -> tuple[Replay, torch.Tensor]:
    """The replay of `example` (its graph kept) and (T,) the norm of d loss / d h_t of the last
    layer for every step t; see `gradients_through_time`."""
    batch = getattr(example, "batch", example)
    with torch.enable_grad():
        rep = replay(model, batch.inputs, state, requires_grad=True)
        steps = rep.last.steps
        device = rep.outputs.device
        scored = batch.to(device) if hasattr(batch, "to") else batch
        loss = _loss_of(task_or_score_fn, rep.outputs, scored)
        if loss is None or not loss.requires_grad:
            return rep, torch.zeros(len(steps))
        grads = torch.autograd.grad(loss, steps, allow_unused=True)
    norms = torch.stack([torch.zeros((), device=device) if g is None else g.detach().norm() for g in grads])
    return rep, norms.cpu()


def gradients_through_time(model: nn.Module, task_or_score_fn: Any, example: Any,
                           state: Optional[State] = None) -> torch.Tensor:
    """(T,) the norm of d loss / d h_t of the last layer for every step t, on the replayed model.

    d loss / d h_t is the total derivative: through the readout at t and through every later
    step. loss = `task.score(outputs, example.batch).loss` (or a callable (outputs, batch) ->
    Score or loss tensor); `example` is an `Example` or a `Batch`. Nothing is written into the
    model's `.grad`s (torch.autograd.grad), the model's mode is kept. All zeros when the example
    scores nothing."""
    return replay_with_gradients(model, task_or_score_fn, example, state)[1]
