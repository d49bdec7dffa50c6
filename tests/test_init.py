"""model.init: which slices of PyTorch's packed recurrent parameters each initialisation writes."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from rnnexp.errors import ConfigError
from rnnexp.models.init import INITS, apply_init, check_init

HIDDEN, INPUTS, LAYERS = 5, 3, 2
LAYER_TYPES = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}
KEEP, LSTM_INPUT = 1, 0  # gate index of LSTM f / GRU z, and of the LSTM input gate i


def make_layer(cell: str, seed: int = 0, **kwargs) -> nn.RNNBase:
    torch.manual_seed(seed)  # PyTorch's default init is then the same every time
    return LAYER_TYPES[cell](INPUTS, HIDDEN, num_layers=LAYERS, batch_first=True, **kwargs)


def snapshot(rnn: nn.RNNBase) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in rnn.named_parameters()}


def gate(vector: torch.Tensor, index: int) -> torch.Tensor:
    return vector[index * HIDDEN:(index + 1) * HIDDEN]


def assert_untouched_except(rnn: nn.RNNBase, before: dict[str, torch.Tensor],
                            changed: dict[str, set[int]]) -> None:
    """Every parameter equals its clone, except the gate rows listed per parameter kind."""
    params = dict(rnn.named_parameters())
    assert params.keys() == before.keys()
    for name, value in params.items():
        kind = name.rsplit("_l", 1)[0]  # bias_ih_l1 -> bias_ih
        rows = changed.get(kind, set())
        for index in range(value.shape[0] // HIDDEN):
            if index not in rows:
                assert torch.equal(gate(value, index), gate(before[name], index)), (name, index)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_forget_bias_sets_the_keep_gate_on_every_layer_and_nothing_else(cell):
    rnn = make_layer(cell)
    before = snapshot(rnn)
    apply_init(rnn, cell, "forget_bias", forget_bias=1.7)
    for layer in range(LAYERS):
        assert torch.equal(gate(getattr(rnn, f"bias_ih_l{layer}"), KEEP), torch.full((HIDDEN,), 1.7))
        assert torch.equal(gate(getattr(rnn, f"bias_hh_l{layer}"), KEEP), torch.zeros(HIDDEN))
    assert_untouched_except(rnn, before, {"bias_ih": {KEEP}, "bias_hh": {KEEP}})


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_forget_bias_default_value_is_one(cell):
    rnn = make_layer(cell)
    apply_init(rnn, cell, "forget_bias")
    assert torch.equal(gate(rnn.bias_ih_l1, KEEP), torch.ones(HIDDEN))


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_default_changes_nothing(cell):
    rnn = make_layer(cell)
    before = snapshot(rnn)
    apply_init(rnn, cell, "default")
    assert_untouched_except(rnn, before, {})


def test_chrono_lstm_forget_bias_is_log_uniform_and_input_bias_its_negative():
    rnn, tmax = make_layer("lstm"), 50
    before = snapshot(rnn)
    apply_init(rnn, "lstm", "chrono", chrono_tmax=tmax)
    forget_biases = []
    for layer in range(LAYERS):
        bias_ih, bias_hh = getattr(rnn, f"bias_ih_l{layer}"), getattr(rnn, f"bias_hh_l{layer}")
        b_f = gate(bias_ih, KEEP)
        assert b_f.min() >= 0 and b_f.max() <= math.log(tmax - 1)
        assert b_f.std() > 0.1  # drawn per unit, not one constant
        assert torch.equal(gate(bias_ih, LSTM_INPUT), -b_f)
        assert torch.equal(gate(bias_hh, KEEP), torch.zeros(HIDDEN))
        assert torch.equal(gate(bias_hh, LSTM_INPUT), torch.zeros(HIDDEN))
        forget_biases.append(b_f.clone())
    assert not torch.equal(*forget_biases)  # each layer has its own draw
    assert_untouched_except(rnn, before, {"bias_ih": {LSTM_INPUT, KEEP}, "bias_hh": {LSTM_INPUT, KEEP}})


def test_chrono_gru_sets_only_the_update_gate():
    rnn, tmax = make_layer("gru"), 50
    before = snapshot(rnn)
    apply_init(rnn, "gru", "chrono", chrono_tmax=tmax)
    for layer in range(LAYERS):
        b_z = gate(getattr(rnn, f"bias_ih_l{layer}"), KEEP)
        assert b_z.min() >= 0 and b_z.max() <= math.log(tmax - 1) and b_z.std() > 0.1
        # z keeps the state (h' = (1 - z) n + z h): 1 / (1 - sigmoid(b_z)) is the drawn lag in [2, tmax]
        lags = 1 / (1 - torch.sigmoid(b_z))
        assert lags.min() >= 2 - 1e-4 and lags.max() <= tmax + 1e-3
        assert torch.equal(gate(getattr(rnn, f"bias_hh_l{layer}"), KEEP), torch.zeros(HIDDEN))
    assert_untouched_except(rnn, before, {"bias_ih": {KEEP}, "bias_hh": {KEEP}})


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_chrono_draw_is_reproducible(cell):
    def chrono_bias(layer_seed: int, generator_seed: int | None) -> torch.Tensor:
        rnn = make_layer(cell, seed=layer_seed)
        if generator_seed is None:
            torch.manual_seed(11)
            apply_init(rnn, cell, "chrono", chrono_tmax=20)
        else:
            generator = torch.Generator().manual_seed(generator_seed)
            apply_init(rnn, cell, "chrono", chrono_tmax=20, generator=generator)
        return torch.cat([gate(rnn.bias_ih_l0, KEEP), gate(rnn.bias_ih_l1, KEEP)])

    assert torch.equal(chrono_bias(0, 7), chrono_bias(1, 7))  # the generator alone decides the draw
    assert not torch.equal(chrono_bias(0, 7), chrono_bias(0, 8))
    assert torch.equal(chrono_bias(0, None), chrono_bias(1, None))  # the seeded global RNG, else


def test_chrono_needs_a_tmax_of_at_least_two():
    for tmax in (None, 1.5, float("nan")):
        with pytest.raises(ConfigError, match="model.chrono_tmax"):
            apply_init(make_layer("lstm"), "lstm", "chrono", chrono_tmax=tmax)
    rnn = make_layer("lstm")
    apply_init(rnn, "lstm", "chrono", chrono_tmax=2)  # U[1, 1]: every lag 2, f = i = 0.5
    assert torch.equal(gate(rnn.bias_ih_l1, KEEP), torch.zeros(HIDDEN))


def test_identity_is_the_irnn_on_every_layer():
    rnn = make_layer("rnn", nonlinearity="relu")
    default_ih = rnn.weight_ih_l0.detach().clone()
    apply_init(rnn, "rnn", "identity", generator=torch.Generator().manual_seed(3))
    for layer in range(LAYERS):
        assert torch.equal(getattr(rnn, f"weight_hh_l{layer}"), torch.eye(HIDDEN))
        assert torch.equal(getattr(rnn, f"bias_ih_l{layer}"), torch.zeros(HIDDEN))
        assert torch.equal(getattr(rnn, f"bias_hh_l{layer}"), torch.zeros(HIDDEN))
        weight_ih = getattr(rnn, f"weight_ih_l{layer}")  # Le et al.: N(0, 0.001^2)
        assert 0 < weight_ih.abs().max() < 0.005 and 0.0003 < weight_ih.std() < 0.003
    assert not torch.equal(rnn.weight_ih_l0, default_ih)
    again = make_layer("rnn", seed=5, nonlinearity="relu")
    apply_init(again, "rnn", "identity", generator=torch.Generator().manual_seed(3))
    assert torch.equal(again.weight_ih_l1, rnn.weight_ih_l1)


@pytest.mark.parametrize("cell, init, nonlinearity, names", [
    ("lstm", "identity", "tanh", ["model.cell=lstm", "model=rnn", "model.nonlinearity=relu"]),
    ("gru", "identity", "relu", ["model.cell=gru", "model=rnn"]),
    ("rnn", "identity", "tanh", ["model.cell=rnn", "model.nonlinearity=relu"]),
    ("rnn", "forget_bias", "relu", ["model.cell=rnn", "model=lstm"]),
    ("rnn", "chrono", "tanh", ["model.cell=rnn", "model=gru"]),
    ("lstm", "xavier", "tanh", ["default, forget_bias, chrono, identity"]),
])
def test_check_init_refuses_what_does_not_apply_in_one_line(cell, init, nonlinearity, names):
    with pytest.raises(ConfigError) as error:
        check_init(cell, init, nonlinearity)
    message = str(error.value)
    assert "\n" not in message
    assert f"model.init={init}" in message or f"model.init={init!r}" in message
    for name in names:
        assert name in message


def test_check_init_accepts_what_applies():
    for cell, nonlinearity in [("rnn", "relu"), ("rnn", "tanh"), ("lstm", "tanh"), ("gru", "tanh")]:
        check_init(cell, "default", nonlinearity)
    for cell in ("lstm", "gru"):
        for init in ("forget_bias", "chrono"):
            check_init(cell, init, "tanh")
    check_init("rnn", "identity", "relu")
    assert INITS == ("default", "forget_bias", "chrono", "identity")


def test_apply_init_refuses_a_combination_that_does_not_apply():
    with pytest.raises(ConfigError, match="model.nonlinearity=relu"):
        apply_init(make_layer("rnn", nonlinearity="tanh"), "rnn", "identity")


def cell_retention(forget_bias: float | None, steps: int = 30) -> float:
    """|c_T| left of a pulse after `steps` zero inputs, relative to |c_1| (the no-pulse run subtracted)."""
    torch.manual_seed(0)
    lstm = nn.LSTM(1, 2, batch_first=True)
    if forget_bias is not None:
        apply_init(lstm, "lstm", "forget_bias", forget_bias=forget_bias)
    pulse = torch.zeros(1, steps + 1, 1)
    pulse[0, 0, 0] = 3.0
    with torch.no_grad():
        cell = {length: lstm(pulse[:, :length])[1][1] - lstm(torch.zeros(1, length, 1))[1][1]
                for length in (1, steps + 1)}
    return float(cell[steps + 1].norm() / cell[1].norm())


def test_a_large_forget_bias_keeps_the_cell_state():
    default, kept = cell_retention(None), cell_retention(6.0)
    assert default < 1e-3  # the default forget gate is ~0.5: the pulse is gone after 30 steps
    assert kept > 0.5  # sigmoid(6) ~ 0.9975 per step
