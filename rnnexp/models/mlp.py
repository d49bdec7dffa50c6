"""A time-blind model family: an MLP over the last `model.window` steps (`model=mlp`).

    rnnexp task=echo task.delay=3 model=mlp                 (solved: the bit 3 steps back is in view)
    rnnexp task=echo task.delay=12 model=mlp                (chance: it is not, and nothing remembers it)
    rnnexp task=parity task.length=10 model=mlp model.window=null   (null: the task's whole sequence)

At every step the network sees the inputs of that step and the `window - 1` before it, flattened
into one vector, and nothing else: it has no state that carries information forward, so what it
cannot see it cannot know. It is the probe for "does this task need memory?" (Bengio et al. 2003
used the same shape, a window over the last n words, as a language model). Across the chunks of a
stream the window reaches back into the previous chunk: the last `window - 1` inputs are the state
it carries, so a stream is seen the same whatever its chunk length.

    inputs (B, T, features) or token ids (B, T) -> nn.Embedding
      -> windows (B, T, window x features): step t sees steps t - window + 1 .. t (zeros before the start)
      -> num_layers x (Linear -> ReLU -> dropout) -> Linear head, at every step
    returns (outputs (B, T, classes), the last window - 1 inputs)

This module imports torch only where it builds the network (a family module must import without
it: checking a config never waits for torch).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from rnnexp.errors import ConfigError, require
from rnnexp.models.family import ModelFamily, size_for_budget


@dataclass
class MLPConfig:
    family: str
    window: Optional[int]          # steps seen at once; null: the task's longest sequence (task.max_length)
    hidden_size: int
    num_layers: int                # hidden layers
    dropout: float
    embedding_size: Optional[int]  # token inputs (charlm): null = hidden_size
    param_budget: Optional[int]    # an integer: choose hidden_size to get as close to this many parameters
    label: str

    def validate(self) -> None:
        if self.window is not None:
            require(self.window >= 1, "model.window", self.window, "use an integer >= 1, or null (the whole sequence)")
        require(self.hidden_size >= 1, "model.hidden_size", self.hidden_size, "use an integer >= 1")
        require(self.num_layers >= 1, "model.num_layers", self.num_layers, "use an integer >= 1")
        require(0.0 <= self.dropout < 1.0, "model.dropout", self.dropout, "use 0 <= dropout < 1")
        if self.embedding_size is not None:
            require(self.embedding_size >= 1, "model.embedding_size", self.embedding_size, "use >= 1 or null")
        if self.param_budget is not None:
            require(self.param_budget >= 10, "model.param_budget", self.param_budget, "use an integer >= 10 or null")


class MLP(ModelFamily):
    name = "mlp"
    Config = MLPConfig
    size_keys = ("hidden_size", "num_layers")

    @classmethod
    def validate_with(cls, cfg: MLPConfig, task_cls: Any) -> None:
        if cfg.window is None and task_cls.streaming:
            raise ConfigError(f"model.window=null sees the task's whole sequence, and task={task_cls.name} is a "
                              f"stream without one; set model.window (e.g. model.window=10)")

    def memory_bytes(self) -> int:
        # A lower bound without the task (one feature per step): the layers, in 4 float32 copies.
        h, layers, window = self.cfg.hidden_size, self.cfg.num_layers, self.cfg.window or 1
        return 4 * 4 * (window * h + h + (layers - 1) * h * (h + 1))

    def _window(self, task: Any) -> int:
        if self.cfg.window is not None:
            return self.cfg.window
        if task.max_length() is None:
            raise ConfigError(f"model.window=null sees the task's whole sequence, and task={task.name} gives no "
                              f"longest sequence; set model.window (e.g. model.window=10)")
        return int(task.max_length())

    def _features(self, task: Any) -> int:
        return (self.cfg.embedding_size or self.cfg.hidden_size) if task.vocab_size else task.input_size

    def parameter_count(self, task: Any, size: dict[str, int]) -> int:
        h, f = size["hidden_size"], self._features(task)
        embedding = task.vocab_size * f if task.vocab_size else 0
        return (embedding + size["window"] * f * h + h + (self.cfg.num_layers - 1) * (h * h + h)
                + h * task.num_classes + task.num_classes)

    def size(self, task: Any) -> dict[str, int]:
        window = self._window(task)
        if self.cfg.param_budget is None:
            return {"window": window, "hidden_size": self.cfg.hidden_size}
        hidden = size_for_budget(self.cfg.param_budget,
                                 lambda h: self.parameter_count(task, {"window": window, "hidden_size": h}))
        return {"window": window, "hidden_size": hidden}

    def build(self, task: Any, size: dict[str, int]) -> Any:
        return _network()(self._features(task), task.vocab_size, task.num_classes, size["window"],
                          size["hidden_size"], self.cfg.num_layers, self.cfg.dropout)

    def describe(self, size: dict[str, int], params: int) -> str:
        budget = f" (model.param_budget={self.cfg.param_budget})" if self.cfg.param_budget else ""
        return (f"mlp over the last {size['window']} steps, hidden {size['hidden_size']}{budget} x "
                f"{self.cfg.num_layers} layer(s): {params:,} parameters")

    def hparams(self, size: dict[str, int]) -> dict[str, Any]:
        return {"window": size["window"], "hidden_size": size["hidden_size"], "num_layers": self.cfg.num_layers}


_NETWORK: Optional[type] = None


def _network() -> type:
    """The nn.Module class, defined on first use (here torch is imported)."""
    global _NETWORK
    if _NETWORK is not None:
        return _NETWORK
    import torch
    from torch import nn

    class WindowMLP(nn.Module):
        def __init__(self, features: int, vocab_size: int, num_classes: int, window: int, hidden_size: int,
                     num_layers: int, dropout: float):
            super().__init__()
            self.window, self.features = window, features
            self.embed = nn.Embedding(vocab_size, features) if vocab_size else None
            layers: list[nn.Module] = []
            width = window * features
            for _ in range(num_layers):
                layers += [nn.Linear(width, hidden_size), nn.ReLU()] + ([nn.Dropout(dropout)] if dropout else [])
                width = hidden_size
            self.body = nn.Sequential(*layers)
            self.head = nn.Linear(hidden_size, num_classes)
            self.layer_labels = {"embed": "embedding", "body": "hidden layers", "head": "output"}  # (the start line)

        def forward(self, inputs: torch.Tensor, state: Optional[torch.Tensor] = None) -> tuple[torch.Tensor, torch.Tensor]:
            x = self.embed(inputs) if self.embed is not None else inputs.float()
            batch, steps = x.shape[:2]
            if state is None:  # before the start: zeros, as a padded sequence would have
                state = x.new_zeros(batch, self.window - 1, self.features)
            seen = torch.cat([state.to(x.dtype), x], dim=1)                    # (B, window - 1 + T, F)
            windows = seen.unfold(1, self.window, 1).transpose(2, 3)           # (B, T, window, F)
            hidden = self.body(windows.reshape(batch, steps, self.window * self.features))
            return self.head(hidden), seen[:, seen.shape[1] - (self.window - 1):]

    _NETWORK = WindowMLP
    return _NETWORK
