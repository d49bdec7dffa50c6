"""Reading an example the user types (`example=...` of rnnexp-inspect) in a task's own alphabet;
a symbol outside it is a one-line ConfigError that shows a valid example."""

from __future__ import annotations

from rnnexp.errors import ConfigError
from rnnexp.lazy import torch  # on first use: config checks need no torch


def parse_bits(text: str, example: str = "0110100111") -> torch.Tensor:
    """"0110" -> the (T,) bits as a long tensor."""
    if not text or set(text) - {"0", "1"}:
        raise ConfigError(f"example={text!r} is not a bit string; use 0s and 1s, e.g. example={example}")
    return torch.tensor([int(ch) for ch in text])
