"""train.precision: the autocast context of every forward pass (training, validation, test), and
what it actually runs in bf16 (the start line says so).

Under CPU autocast torch runs nn.LSTM as one bf16 kernel, and nn.RNN and nn.GRU step by step with
their matrix products in bf16 and the state (what the layer returns) in float32; the embedding is
a lookup. So the look below goes by the dtype of each layer's matrix products, not of its
output (by the output, the GRU seemed to stay float32 on a CPU: it does not).
"""

from __future__ import annotations

import contextlib
from typing import Any, ContextManager, Optional

import torch
from torch import nn

#: aten ops that are a layer's matrix products (names contain one of these)
PRODUCTS = ("mm", "addmm", "bmm", "linear", "rnn", "lstm", "gru")


def autocast(precision: str, device: torch.device) -> ContextManager[Any]:
    """bf16 autocast (train.precision=bf16: matrix products in bfloat16; losses, weights, the
    optimizer and the carried state in float32), or nothing."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def bf16_layers(model: nn.Module, inputs: Any, device: torch.device) -> str:
    """Which of the model's layers compute their matrix products in bf16 under autocast, found by
    running `inputs` once (a tensor, or a callable that runs the model: an encoder-decoder reads
    decoder inputs too) and recording the dtypes of the products each layer dispatches. In eval
    mode and without gradients: the look draws no random numbers, so a resumed run's restored RNG
    state is left as it was."""
    from torch.utils._python_dispatch import TorchDispatchMode

    current: list[Optional[str]] = [None]
    seen: dict[str, set[torch.dtype]] = {}

    class Products(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
            name = func.overloadpacket.__name__
            if current[0] is not None and any(p in name for p in PRODUCTS):
                seen[current[0]].update(a.dtype for a in args[:2] if isinstance(a, torch.Tensor) and a.is_floating_point())
            return func(*args, **(kwargs or {}))

    # The model's top-level layers with weights, by the names the model gives them (`layer_labels`,
    # e.g. the recurrent model's {"rnn": "recurrent (gru)"}), else by their attribute names.
    labels = getattr(model, "layer_labels", {})
    hooks = []
    for key, module in model.named_children():
        if next(module.parameters(), None) is not None:
            name = labels.get(key, key)
            seen[name] = set()
            hooks.append(module.register_forward_pre_hook(lambda m, i, name=name: current.__setitem__(0, name)))
            hooks.append(module.register_forward_hook(lambda m, i, o: current.__setitem__(0, None)))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), autocast("bf16", device), Products():
            inputs(model) if callable(inputs) else model(inputs.to(device))
    finally:
        model.train(was_training)
        for hook in hooks:
            hook.remove()
    low = [n for n, dtypes in seen.items() if dtypes == {torch.bfloat16}]
    high = [n for n, dtypes in seen.items() if dtypes and dtypes != {torch.bfloat16}]
    lookups = [n for n, dtypes in seen.items() if not dtypes]
    return "; ".join(["matrix products in bf16: " + (", ".join(low) or "none")]
                     + (["in float32: " + ", ".join(high)] if high else [])
                     + ([f"{name}: a lookup" for name in lookups]))
