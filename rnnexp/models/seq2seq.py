"""The seq2seq family: `model=seq2seq`, an encoder and a decoder of one cell, with or without attention.

    rnnexp task=reverse model=seq2seq                                 (attention: additive)
    rnnexp task=reverse model=seq2seq model.attention=none            (the bottleneck)
    rnnexp task=reverse model=seq2seq model.attention=none model.reverse_source=true
    rnnexp -m experiment=attention_vs_length                          (the sweep the lecture leaves open)

The encoder reads the source; its final state starts the decoder, which writes the answer symbol
by symbol (the lecture's "sequence -> vector -> sequence"). With attention every step of the
decoder also looks back at every encoder output. The network is in `rnnexp.models.seq2seq_net`;
this module holds what checking a config needs, without torch: the keys, the parameter count,
the memory estimate. It runs tasks whose answer is a sequence (`Task.decodes`: task=reverse).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from rnnexp.errors import ConfigError, require, require_choice
from rnnexp.models.family import ModelFamily
from rnnexp.models.recurrent import GATE_BLOCKS

ATTENTION = ("none", "additive", "dot")


@dataclass
class Seq2SeqConfig:
    family: str
    cell: str                 # rnn (tanh) | lstm | gru, for the encoder and the decoder
    hidden_size: int
    num_layers: int
    embedding_size: Optional[int]  # of the source and output symbols; null: hidden_size
    attention: str            # none | additive | dot
    reverse_source: bool      # read the source backwards (Sutskever et al. 2014)
    param_budget: Optional[int]
    label: str

    def validate(self) -> None:
        require_choice("model.cell", self.cell, GATE_BLOCKS)
        require(self.hidden_size >= 1, "model.hidden_size", self.hidden_size, "use an integer >= 1")
        require(self.num_layers >= 1, "model.num_layers", self.num_layers, "use an integer >= 1")
        require_choice("model.attention", self.attention, ATTENTION)
        if self.embedding_size is not None:
            require(self.embedding_size >= 1, "model.embedding_size", self.embedding_size, "use >= 1 or null")
        if self.param_budget is not None:
            require(self.param_budget >= 100, "model.param_budget", self.param_budget, "use an integer >= 100 or null")


def parameter_count(cell: str, input_size: int, vocab_size: int, num_classes: int, hidden: int, layers: int,
                    embedding: Optional[int], attention: str) -> int:
    """Closed-form parameter count of `Seq2SeqModel`."""
    gates, embedding = GATE_BLOCKS[cell], embedding or hidden

    def rnn(first_in: int) -> int:
        return sum(gates * hidden * ((first_in if layer == 0 else hidden) + hidden + 2) for layer in range(layers))

    source = vocab_size * embedding if vocab_size > 0 else 0
    encoder = rnn(embedding if vocab_size > 0 else input_size)
    decoder = (num_classes + 1) * embedding + rnn(embedding)
    attend = 0 if attention == "none" else 2 * hidden * hidden + hidden + (2 * hidden * hidden + hidden
                                                                            if attention == "additive" else 0)
    return source + encoder + decoder + attend + hidden * num_classes + num_classes


class Seq2Seq(ModelFamily):
    name = "seq2seq"
    Config = Seq2SeqConfig
    decoder = True
    size_keys = ("hidden_size", "num_layers")

    @classmethod
    def validate_with(cls, cfg: Seq2SeqConfig, task_cls: Any) -> None:
        if not task_cls.decodes:
            from rnnexp.tasks.base import task_class, task_names

            writers = "|".join(name for name in task_names() if task_class(name).decodes)
            raise ConfigError(f"model=seq2seq writes its answer as a sequence, and task={task_cls.name} asks for "
                              f"{'one answer' if not task_cls.streaming else 'an output at every step'}; use it "
                              f"with task={writers}, or model=lstm|gru|rnn for task={task_cls.name}")

    def memory_bytes(self) -> int:
        # The two recurrent stacks alone, 4 float32 copies (weights, gradients, two optimizer moments).
        h, layers = self.cfg.hidden_size, self.cfg.num_layers
        return 2 * 4 * 4 * GATE_BLOCKS[self.cfg.cell] * h * (h + 2) * (2 * layers - 1)

    def parameter_count(self, task: Any, size: dict[str, int]) -> int:
        c = self.cfg
        return parameter_count(c.cell, task.input_size, task.vocab_size, task.num_classes, size["hidden_size"],
                               c.num_layers, c.embedding_size, c.attention)

    def build(self, task: Any, size: dict[str, int]) -> Any:
        from rnnexp.models.seq2seq_net import Seq2SeqModel

        c = self.cfg
        return Seq2SeqModel(c.cell, task.input_size, task.vocab_size, task.num_classes, size["hidden_size"],
                            c.num_layers, c.embedding_size, c.attention, c.reverse_source)

    def describe(self, size: dict[str, int], params: int) -> str:
        c = self.cfg
        budget = f" (model.param_budget={c.param_budget})" if c.param_budget else ""
        attention = "no attention" if c.attention == "none" else f"{c.attention} attention"
        source = ", source reversed" if c.reverse_source else ""
        return (f"seq2seq {c.cell} encoder-decoder, hidden {size['hidden_size']}{budget} x {c.num_layers} layer(s), "
                f"{attention}{source}: {params:,} parameters")

    def hparams(self, size: dict[str, int]) -> dict[str, Any]:
        return {"cell": self.cfg.cell, "hidden_size": size["hidden_size"], "num_layers": self.cfg.num_layers,
                "attention": self.cfg.attention, "reverse_source": self.cfg.reverse_source}
