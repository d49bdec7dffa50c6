"""train.precision: the autocast context of every forward pass (training, validation, test), and
which layers it actually runs in bf16 (the start line says so)."""

from __future__ import annotations

import contextlib
from typing import Any, ContextManager

import torch
from torch import nn

LAYERS = {"encoder": "embedding", "rnn": "recurrent", "head": "output"}


def autocast(precision: str, device: torch.device) -> ContextManager[Any]:
    """bf16 autocast (train.precision=bf16: matrix products in bfloat16; losses, weights, the
    optimizer and the carried state in float32), or nothing."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def bf16_layers(model: nn.Module, inputs: torch.Tensor, device: torch.device) -> str:
    """Which of the model's layers compute in bf16 under autocast, found by running `inputs` once
    and looking at what each layer returns (autocast leaves some alone: the embedding is a lookup).
    In eval mode and without gradients: the look draws no random numbers, so a resumed run's
    restored RNG state is left as it was."""
    dtypes: dict[str, torch.dtype] = {}
    hooks = [module.register_forward_hook(
        lambda m, i, out, name=name: dtypes.__setitem__(name, (out[0] if isinstance(out, tuple) else out).dtype))
        for key, module in model.named_children()
        if (name := LAYERS.get(key)) and not isinstance(module, nn.Identity)]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), autocast("bf16", device):
            model(inputs.to(device))
    finally:
        model.train(was_training)
        for hook in hooks:
            hook.remove()
    cell = getattr(model, "cell", None)
    named = {name: f"{name} ({cell})" if name == "recurrent" and cell else name for name in dtypes}
    low = [named[name] for name, dtype in dtypes.items() if dtype == torch.bfloat16]
    high = [named[name] for name, dtype in dtypes.items() if dtype != torch.bfloat16]
    return "in bf16: " + (", ".join(low) or "nothing") + ("; in float32: " + ", ".join(high) if high else "")
