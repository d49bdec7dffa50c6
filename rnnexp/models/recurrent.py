"""The recurrent family: `model=rnn|lstm|gru`, one fused torch layer of the chosen cell.

    rnnexp task=qrsu model=lstm
    rnnexp task=qrsu model=rnn model.init=identity model.hidden_size=64

The network itself (encoder -> torch's nn.RNN/LSTM/GRU -> linear head) is in
`rnnexp.models.recurrent_net`; this module holds what checking a config needs, without torch: the
keys, the cells and their gate blocks, the parameter count and the memory estimate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from rnnexp.errors import ConfigError, require, require_choice
from rnnexp.models.family import ModelFamily

# cell -> gate blocks per weight matrix. An RNN has one block; a GRU three (reset, update,
# candidate); an LSTM four (input, forget, cell, output): hence the 4x weights.
GATE_BLOCKS: dict[str, int] = {"rnn": 1, "gru": 3, "lstm": 4}


@dataclass
class RecurrentConfig:
    family: str
    cell: str
    hidden_size: int
    num_layers: int
    dropout: float
    input_dropout: float
    weight_drop: float
    tie_weights: bool
    embedding_size: Optional[int]
    param_budget: Optional[int]
    init: str
    forget_bias: float
    chrono_tmax: Optional[float]
    label: str
    nonlinearity: Optional[str] = None  # model=rnn only (relu, the lecture's, or tanh); gated cells have their own

    def validate(self) -> None:
        require_choice("model.cell", self.cell, GATE_BLOCKS)  # the model factory's names
        require(self.hidden_size >= 1, "model.hidden_size", self.hidden_size, "use an integer >= 1")
        require(self.num_layers >= 1, "model.num_layers", self.num_layers, "use an integer >= 1")
        require(0.0 <= self.dropout < 1.0, "model.dropout", self.dropout, "use 0 <= dropout < 1")
        require(0.0 <= self.input_dropout < 1.0, "model.input_dropout", self.input_dropout, "use 0 <= dropout < 1")
        require(0.0 <= self.weight_drop < 1.0, "model.weight_drop", self.weight_drop, "use 0 <= dropout < 1")
        if self.tie_weights and self.embedding_size not in (None, self.hidden_size):
            raise ConfigError(f"model.tie_weights shares the embedding with the output layer, so model.embedding_size "
                              f"must equal model.hidden_size ({self.embedding_size} != {self.hidden_size}); "
                              f"set model.embedding_size=null or model.tie_weights=false")
        if self.cell == "rnn":
            require_choice("model.nonlinearity", self.nonlinearity, ("relu", "tanh"))
        elif self.nonlinearity is not None:
            raise ConfigError(f"model.nonlinearity={self.nonlinearity} applies to model.cell=rnn only (an {self.cell} "
                              f"has its own gate nonlinearities); remove it, or use model=rnn")
        if self.embedding_size is not None:
            require(self.embedding_size >= 1, "model.embedding_size", self.embedding_size, "use >= 1 or null")
        if self.param_budget is not None:
            require(self.param_budget >= 10, "model.param_budget", self.param_budget, "use an integer >= 10 or null")
        from rnnexp.models.init import check_init

        check_init(self.cell, self.init, self.nonlinearity)
        if self.chrono_tmax is not None:
            require(self.chrono_tmax >= 2, "model.chrono_tmax", self.chrono_tmax, "use a time range >= 2 steps, or null (the task's longest lag)")


def parameter_count(cell: str, input_size: int, num_classes: int, hidden_size: int,
                    num_layers: int = 1, vocab_size: int = 0, embedding_size: Optional[int] = None,
                    tie_weights: bool = False) -> int:
    """Closed-form parameter count of `RecurrentModel`; a matrix the embedding and the output
    layer share counts once."""
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


class Recurrent(ModelFamily):
    name = "recurrent"
    Config = RecurrentConfig
    cuda_graph = True
    replay = True
    pack_seeds = True
    reads_one_sequence = True
    size_keys = ("hidden_size", "num_layers")

    def pack_refusal(self, task_cls: Any) -> Optional[str]:
        """Why this config's seeds cannot train packed (rnnexp.models.packed), or None: a dropout
        mask would differ from a single run's, an embedding reads each seed's own tokens."""
        c = self.cfg
        if task_cls.token_inputs:
            return f"task={task_cls.name} reads token ids (embeddings are not packed)"
        for key in ("dropout", "input_dropout", "weight_drop"):
            if getattr(c, key):
                return f"model.{key}={getattr(c, key)} (dropout masks are not packed)"
        return None

    @classmethod
    def validate_with(cls, cfg: RecurrentConfig, task_cls: Any) -> None:
        if cfg.tie_weights and not task_cls.token_inputs:
            raise ConfigError(f"model.tie_weights needs a task with token inputs and outputs (charlm), not "
                              f"task={task_cls.name}; use model.tie_weights=false")

    def packed(self, models: list[Any]) -> Any:
        from rnnexp.models.packed import PackedRecurrent

        return PackedRecurrent(models)

    def memory_bytes(self) -> int:
        # A lower bound without the task: the recurrent layers alone (layers above the first read
        # h inputs), in 4 float32 copies (weights, gradients, two optimizer moments).
        h, layers = self.cfg.hidden_size, self.cfg.num_layers
        return 4 * 4 * GATE_BLOCKS[self.cfg.cell] * h * (h + 2) * (2 * layers - 1)

    def parameter_count(self, task: Any, size: dict[str, int]) -> int:
        c = self.cfg
        return parameter_count(c.cell, task.input_size, task.num_classes, size["hidden_size"], c.num_layers,
                               task.vocab_size, c.embedding_size, c.tie_weights)

    def build(self, task: Any, size: dict[str, int]) -> Any:
        """The network for `task`, initialised as `model.init` says (rnnexp.models.init)."""
        from rnnexp.models.init import apply_init
        from rnnexp.models.recurrent_net import RecurrentModel

        c = self.cfg
        model = RecurrentModel(c.cell, task.input_size, task.num_classes, size["hidden_size"], c.num_layers,
                               c.dropout, c.nonlinearity, task.vocab_size, c.embedding_size, c.input_dropout,
                               c.weight_drop, c.tie_weights)
        tmax = c.chrono_tmax if c.chrono_tmax is not None else task.max_lag()
        apply_init(model.rnn, c.cell, c.init, forget_bias=c.forget_bias, chrono_tmax=tmax)
        model.apply_weight_drop()
        return model

    def describe(self, size: dict[str, int], params: int) -> str:
        c = self.cfg
        budget = f" (model.param_budget={c.param_budget})" if c.param_budget else ""
        init = "" if c.init == "default" else f", init {c.init}"
        return f"{c.cell} hidden {size['hidden_size']}{budget} x {c.num_layers} layer(s){init}: {params:,} parameters"

    def hparams(self, size: dict[str, int]) -> dict[str, Any]:
        return {"cell": self.cfg.cell, "hidden_size": size["hidden_size"], "init": self.cfg.init,
                "num_layers": self.cfg.num_layers}
