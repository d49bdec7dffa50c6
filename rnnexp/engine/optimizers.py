"""The optimizers, without the second of start-up that `torch._dynamo` costs.

torch's optimizer classes import `torch._dynamo` the first time any of their methods runs
(`add_param_group` in the constructor, `step`, `zero_grad`, `state_dict`: each is wrapped in
`torch._disable_dynamo`, which imports it to tell the compiler to keep out). That import took
0.9-1.45 s of a 5.5 s main job that trains for 0.5-0.9 s (issue 20; `scripts/bench_time_to_answer.py`).
rnnexp never compiles, so nothing needs the wrappers: the classes below are torch's own, with the
methods those wrappers hold (their `__wrapped__`), so the state, the update, the checkpoint format
(`state_dict`), ReduceLROnPlateau (it sees a `torch.optim.Optimizer`) and the capturable variant
that a CUDA graph records stay exactly torch's.
"""

from __future__ import annotations

from typing import Any, Iterable

import torch
from torch import nn
from torch.optim import Optimizer


def _plain(method: Any) -> Any:
    """The function a `torch._disable_dynamo` (or `_use_grad_for_differentiable`) wrapper holds."""
    return getattr(method, "__wrapped__", method)


class WithoutDynamo:
    """Mixed into a torch optimizer class before it (`TORCH`): its methods without the compiler wrappers."""

    TORCH: type[Optimizer]

    add_param_group = _plain(Optimizer.add_param_group)
    zero_grad = _plain(Optimizer.zero_grad)
    state_dict = _plain(Optimizer.state_dict)
    load_state_dict = _plain(Optimizer.load_state_dict)

    def step(self, closure: Any = None) -> Any:
        # What torch's wrapper does, less the compiler's graph breaks: the update runs without
        # autograd (a differentiable optimizer is none of rnnexp's).
        with torch.no_grad():
            return _plain(self.TORCH.step)(self, closure)


class RMSprop(WithoutDynamo, torch.optim.RMSprop):
    TORCH = torch.optim.RMSprop


class Adam(WithoutDynamo, torch.optim.Adam):
    TORCH = torch.optim.Adam


class SGD(WithoutDynamo, torch.optim.SGD):
    TORCH = torch.optim.SGD


def make_optimizer(name: str, lr: float, momentum: float, weight_decay: float, params: Iterable[nn.Parameter],
                   capturable: bool = False) -> Optimizer:
    """The optimizer, in torch's fastest implementation for the device: on a GPU `capturable`
    (step counts stay on the GPU, so a CUDA graph can record the step); on a CPU the multi-tensor
    (foreach) kernels, and Adam's fused one (QRSU easy: 0.66 ms a step against 0.75, fewer calls
    from Python). The math is the same."""
    params = list(params)
    if capturable:
        fast: dict[str, Any] = {"capturable": True}
    elif name == "adam" and all(p.device.type == "cpu" for p in params):
        fast = {"fused": True}
    else:
        fast = {"foreach": True}
    if name == "adam":
        try:
            return Adam(params, lr=lr, weight_decay=weight_decay, **fast)
        except RuntimeError:  # torch < 2.4 has no fused Adam for the CPU
            return Adam(params, lr=lr, weight_decay=weight_decay, foreach=True)
    if name == "sgd":
        return SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay,
                   **{k: v for k, v in fast.items() if k != "capturable"})
    return RMSprop(params, lr=lr, momentum=momentum, weight_decay=weight_decay, **fast)
