"""Initialisations of a fused torch recurrent layer for long time lags (`model.init`).

PyTorch packs a layer's gates into one matrix per layer (`weight_ih_l{k}`, `weight_hh_l{k}`) and
two bias vectors (`bias_ih_l{k}`, `bias_hh_l{k}`) that are always added together. Gate order:
LSTM i, f, g, o; GRU r, z, n; rows [j*h:(j+1)*h] belong to gate j. Every function below writes
only the slices it names, on every layer (and direction), in place.

- `default`: PyTorch's U(-1/sqrt(h), 1/sqrt(h)) for everything; a gate starts half open, so the
  LSTM forgets (or the GRU overwrites) about half its state per step.
- `forget_bias` (lstm, gru): the "keep the state" gate's bias = `forget_bias` (1.0 by default), so
  the memory is kept at the start of training (Gers, Schmidhuber & Cummins 2000, "Learning to
  forget"; Jozefowicz, Zaremba & Sutskever 2015 recommend 1). LSTM: forget gate f. GRU: the
  update gate z, since torch computes h' = (1 - z) * n + z * h, i.e. z keeps the old state.
- `chrono` (lstm, gru): Tallec & Ollivier 2018, "Can recurrent neural networks warp time?"
  (ICLR). A gate of constant value sigmoid(b) keeps a memory for about T = 1 / (1 - sigmoid(b))
  steps, and b = log(T - 1) gives exactly that T; drawing T - 1 ~ U[1, T_max - 1] per unit
  spreads the units' time scales over [2, T_max], the task's lags. LSTM (the paper):
  b_f = log(U[1, T_max - 1]), b_i = -b_f, so f = 1 - 1/T and i = 1/T.
  GRU (derived here, the paper states only the LSTM rule): z plays f's role and 1 - z plays i's,
  so the same b_z = log(U[1, T_max - 1]) gives z = 1 - 1/T and 1 - z = 1/T; there is no
  separate input gate to set, and the reset gate r is left alone.
- `identity` (rnn with relu only: the IRNN of Le, Jaitly & Hinton 2015, "A simple way to
  initialize recurrent networks of rectified linear units"): weight_hh = I and both biases 0, so
  with ReLU the state (and the gradient) is carried unchanged until the inputs change it. The
  input weights are drawn from N(0, 0.001^2), the paper's setting (and Keras' mnist_irnn
  example): with I as recurrence the state sums its inputs over time, and PyTorch's larger
  default input weights would make it grow with the sequence length from the first step.

For the gates the sum bias_ih + bias_hh is what counts: the value goes into bias_ih and the
bias_hh slice is zeroed (setting both would double it).
"""

from __future__ import annotations

import math
from typing import Optional

from rnnexp.errors import ConfigError, require_choice
from rnnexp.lazy import torch  # on first use: config checks need no torch

INITS = ("default", "forget_bias", "chrono", "identity")

GATED_CELLS = ("lstm", "gru")
# Gate index (in PyTorch's packed layout) of the gate that keeps the state: LSTM f, GRU z.
KEEP_GATE = {"lstm": 1, "gru": 1}
LSTM_INPUT_GATE = 0
IRNN_INPUT_WEIGHT_STD = 0.001  # Le, Jaitly & Hinton 2015, section 4


def check_init(cell: str, init: str, nonlinearity: str) -> None:
    """Refuse, as one ConfigError line, an init that does not apply to this cell."""
    require_choice("model.init", init, INITS)
    if init in ("forget_bias", "chrono") and cell not in GATED_CELLS:
        raise ConfigError(f"model.init={init} does not apply to model.cell={cell}: it sets a gate bias "
                          f"and only an lstm or gru has gates; use model=lstm or model=gru, or "
                          f"model.init=identity for a relu rnn")
    if init == "identity" and cell != "rnn":
        raise ConfigError(f"model.init=identity does not apply to model.cell={cell}: it is the IRNN "
                          f"(identity recurrence, Le et al. 2015) for a plain rnn; use model=rnn "
                          f"model.nonlinearity=relu, or model.init=forget_bias or model.init=chrono "
                          f"for the {cell}")
    if init == "identity" and nonlinearity != "relu":
        raise ConfigError(f"model.init=identity on model.cell={cell} needs a ReLU (IRNN, Le et al. "
                          f"2015), not model.nonlinearity={nonlinearity}; use model.nonlinearity=relu")


def apply_init(rnn: torch.nn.RNNBase, cell: str, init: str, *, forget_bias: float = 1.0,
               chrono_tmax: Optional[float] = None,
               generator: Optional[torch.Generator] = None) -> None:
    """Initialise `rnn` (an nn.RNN/LSTM/GRU of `cell`) in place as `init` says (see the module).

    `chrono_tmax` is the longest lag T_max in steps (required by chrono, >= 2). Random draws use
    `generator` if given, else torch's global RNG, so a seeded run is reproducible.
    """
    # torch's layer classes, imported here: check_init (the config check) must not need torch
    from rnnexp.models.recurrent_net import CELLS

    if not isinstance(rnn, CELLS[cell][0] if cell in CELLS else ()):
        raise ValueError(f"cell {cell!r} does not match the layer {type(rnn).__name__}")
    check_init(cell, init, getattr(rnn, "nonlinearity", "tanh"))
    with torch.no_grad():
        if init == "forget_bias":
            set_keep_gate_bias(rnn, cell, forget_bias)
        elif init == "chrono":
            set_chrono_biases(rnn, cell, chrono_tmax, generator)
        elif init == "identity":
            set_identity_recurrence(rnn, generator)


def _gate(vector: torch.Tensor, gate: int, hidden_size: int) -> torch.Tensor:
    """The rows of `gate` in a packed weight or bias (a view: writing it writes the parameter)."""
    return vector[gate * hidden_size:(gate + 1) * hidden_size]


def _empty_for(generator: Optional[torch.Generator], *shape: int) -> torch.Tensor:
    """A float64 tensor to draw into, on the generator's device (CPU for the global RNG)."""
    device = generator.device if generator is not None else torch.device("cpu")
    return torch.empty(*shape, dtype=torch.float64, device=device)


def _layer_biases(rnn: torch.nn.RNNBase) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(bias_ih, bias_hh) of every layer and direction, in layer order."""
    params = dict(rnn.named_parameters())
    return [(params[name], params[name.replace("bias_ih", "bias_hh")])
            for name in params if name.startswith("bias_ih")]


def set_keep_gate_bias(rnn: torch.nn.RNNBase, cell: str, value: float) -> None:
    """LSTM forget gate / GRU update gate: bias_ih slice = value, bias_hh slice = 0."""
    h = rnn.hidden_size
    for bias_ih, bias_hh in _layer_biases(rnn):
        _gate(bias_ih, KEEP_GATE[cell], h).fill_(value)
        _gate(bias_hh, KEEP_GATE[cell], h).zero_()


def set_chrono_biases(rnn: torch.nn.RNNBase, cell: str, tmax: Optional[float],
                      generator: Optional[torch.Generator] = None) -> None:
    """Chrono: keep-gate bias log(U[1, tmax - 1]) per unit; the LSTM's input gate gets its negative."""
    if tmax is None or not math.isfinite(tmax) or tmax < 2:
        raise ConfigError(f"model.init=chrono needs model.chrono_tmax >= 2 (the longest time lag in "
                          f"steps), got {tmax}; set model.chrono_tmax (null takes the task's longest lag)")
    h = rnn.hidden_size
    for bias_ih, bias_hh in _layer_biases(rnn):
        lag_minus_one = _empty_for(generator, h).uniform_(1.0, tmax - 1.0, generator=generator)
        keep_bias = lag_minus_one.log().to(bias_ih)
        _gate(bias_ih, KEEP_GATE[cell], h).copy_(keep_bias)
        _gate(bias_hh, KEEP_GATE[cell], h).zero_()
        if cell == "lstm":
            _gate(bias_ih, LSTM_INPUT_GATE, h).copy_(-keep_bias)
            _gate(bias_hh, LSTM_INPUT_GATE, h).zero_()


def set_identity_recurrence(rnn: torch.nn.RNNBase, generator: Optional[torch.Generator] = None) -> None:
    """IRNN: weight_hh = I, biases 0, weight_ih ~ N(0, 0.001^2), on every layer."""
    for name, param in rnn.named_parameters():
        if name.startswith("weight_hh"):
            param.copy_(torch.eye(*param.shape))
        elif name.startswith("bias"):
            param.zero_()
        elif name.startswith("weight_ih"):
            draw = _empty_for(generator, *param.shape).normal_(0.0, IRNN_INPUT_WEIGHT_STD, generator=generator)
            param.copy_(draw)
