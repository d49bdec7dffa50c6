"""Building the model for a task from the `model` config: its size (or a parameter budget) and its
initialisation (rnnexp.models.init). The check that it fits in this machine's memory runs with the
config's validation, before torch is imported: rnnexp.models.cells.check_fits_in_memory."""

from __future__ import annotations

from typing import Any, Optional

from torch import nn

from rnnexp.models.cells import GATE_BLOCKS
from rnnexp.models.init import apply_init
from rnnexp.models.recurrent import RecurrentModel


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def parameter_count(cell: str, input_size: int, num_classes: int, hidden_size: int,
                    num_layers: int = 1, vocab_size: int = 0, embedding_size: Optional[int] = None,
                    tie_weights: bool = False) -> int:
    """Closed-form `count_parameters` of `RecurrentModel` (used to size a model to a budget); a
    matrix the embedding and the output layer share counts once."""
    gates = GATE_BLOCKS[cell]
    if vocab_size > 0:
        embedding_size = embedding_size or hidden_size
        total, layer_in = vocab_size * embedding_size, embedding_size
    else:
        total, layer_in = 0, input_size
    for _ in range(num_layers):
        total += gates * hidden_size * (layer_in + hidden_size + 2)
        layer_in = hidden_size
    head = 0 if tie_weights else hidden_size * num_classes
    return total + head + num_classes


def hidden_size_for_budget(budget: int, cell: str, input_size: int, num_classes: int,
                           num_layers: int = 1, vocab_size: int = 0, embedding_size: Optional[int] = None,
                           tie_weights: bool = False) -> int:
    """The hidden size whose parameter count is closest to `budget` (the count grows with h)."""
    def count(h: int) -> int:
        return parameter_count(cell, input_size, num_classes, h, num_layers, vocab_size, embedding_size, tie_weights)

    h = 1
    while count(h + 1) <= budget:
        h += 1
    return h + 1 if abs(count(h + 1) - budget) < abs(count(h) - budget) else h


def hidden_size(model_cfg: Any, task: Any) -> int:
    if model_cfg.param_budget is None:
        return model_cfg.hidden_size
    return hidden_size_for_budget(model_cfg.param_budget, model_cfg.cell, task.input_size, task.num_classes,
                                  model_cfg.num_layers, task.vocab_size, model_cfg.embedding_size, model_cfg.tie_weights)


def build_model(model_cfg: Any, task: Any) -> RecurrentModel:
    """The model for `task` from the validated `model` config, initialised as `model.init` says."""
    model = RecurrentModel(model_cfg.cell, task.input_size, task.num_classes, hidden_size(model_cfg, task),
                           model_cfg.num_layers, model_cfg.dropout, model_cfg.nonlinearity,
                           task.vocab_size, model_cfg.embedding_size, model_cfg.input_dropout,
                           model_cfg.weight_drop, model_cfg.tie_weights)
    tmax = model_cfg.chrono_tmax if model_cfg.chrono_tmax is not None else task.max_lag()
    apply_init(model.rnn, model_cfg.cell, model_cfg.init, forget_bias=model_cfg.forget_bias, chrono_tmax=tmax)
    model.apply_weight_drop()
    return model
