"""The training step as a CUDA graph: the same five steps, launched as one graph on the GPU.

A small recurrent model's training step is a few hundred tiny kernels (every time step of the
forward and backward pass, the loss, the optimizer); on a GPU, launching them costs far more than
running them. A CUDA graph records the kernels of one step once and replays them with a single
launch (PyTorch's "whole network capture"). On an H200 (scripts/gpu_check.py): QRSU easy 3.1 ->
0.15 ms a step (20x), QRSU moderate 12.7x, echo 16x, adding T=100 6x, the LSTM 512 language model
1.9x (its kernels do real work).

    graphed = GraphedTrainStep(engine.train_step, optimizer)
    state, sums, norm = graphed(batch, start)    # eager for the first steps of a shape, then replayed

What a graph needs, and how it is met here:
* fixed shapes and addresses: one graph per batch shape (QRSU's trimmed lengths give a few); the
  batch and the carried state are copied into the graph's own input tensors before a replay, and
  its outputs (state, sums, norm) are copied out;
* no host synchronisation inside the step: tasks score without `.item()` or boolean indexing
  (a batch with a mask, echo's first chunks, runs eagerly), the gradient norm stays on the GPU;
* a capturable optimizer (`capturable=True`, set by `make_optimizer` when graphs are on);
* a learning rate that the graph does not bake in: a schedule that changes it drops the graphs,
  which are captured again at the new rate.
The first `WARMUP` steps of each shape run eagerly on a side stream (real training steps; they
also let cuDNN and the allocator settle), so a graphed run trains on exactly the steps an eager
one would, with the same math (floating-point results may differ in the last bits).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional

import torch

from rnnexp.tasks.base import Batch

WARMUP = 3  # eager steps of a shape before it is captured (PyTorch's examples use 3)

Step = Callable[[Batch, Any], tuple[Any, dict[str, torch.Tensor], torch.Tensor]]


@dataclass
class _Captured:
    graph: "torch.cuda.CUDAGraph"
    batch: Batch                 # the graph's own input tensors
    start: Any                   # its input state (None: the step starts from zeros)
    outputs: tuple[Any, dict[str, torch.Tensor], torch.Tensor]


class GraphedTrainStep:
    def __init__(self, step: Step, optimizer: torch.optim.Optimizer):
        self.step, self.optimizer = step, optimizer
        self.graphs: dict[tuple, Optional[_Captured]] = {}  # None: this shape runs eagerly (capture failed)
        self.seen: dict[tuple, int] = {}
        self.lrs = self._lrs()
        self.side = torch.cuda.Stream()

    def __call__(self, batch: Batch, start: Any) -> tuple[Any, dict[str, torch.Tensor], torch.Tensor]:
        if batch.mask is not None:  # boolean selection of the scored steps syncs with the host
            return self.step(batch, start)
        if self._lrs() != self.lrs:  # a schedule changed the rate the graphs were captured with
            self.graphs, self.seen, self.lrs = {}, {}, self._lrs()
        key = (tuple(batch.inputs.shape), batch.inputs.dtype, tuple(batch.targets.shape), start is None)
        if key in self.graphs:
            captured = self.graphs[key]
            return self.step(batch, start) if captured is None else self._replay(captured, batch, start)
        self.seen[key] = self.seen.get(key, 0) + 1
        if self.seen[key] <= WARMUP:
            return self._on_side_stream(batch, start)
        captured = self._capture(batch, start)
        self.graphs[key] = captured
        return self.step(batch, start) if captured is None else self._replay(captured, batch, start)

    def _lrs(self) -> list[float]:
        return [float(group["lr"]) for group in self.optimizer.param_groups]

    def _on_side_stream(self, batch: Batch, start: Any) -> Any:
        self.side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(self.side):
            out = self.step(batch, start)
        torch.cuda.current_stream().wait_stream(self.side)
        return out

    def _capture(self, batch: Batch, start: Any) -> Optional[_Captured]:
        """Record one step (nothing runs: the caller replays it right away on this batch)."""
        static = Batch(batch.inputs.clone(), batch.targets.clone(), None, batch.reset)
        static_start = _clone(start)
        graph = torch.cuda.CUDAGraph()
        self.optimizer.zero_grad(set_to_none=True)  # the graph allocates its own gradients
        try:
            with torch.cuda.graph(graph):
                outputs = self.step(static, static_start)
        except RuntimeError:  # something in the step cannot be captured: run it eagerly
            torch.cuda.synchronize()
            return None
        return _Captured(graph, static, static_start, outputs)

    def _replay(self, captured: _Captured, batch: Batch, start: Any) -> Any:
        captured.batch.inputs.copy_(batch.inputs, non_blocking=True)
        captured.batch.targets.copy_(batch.targets, non_blocking=True)
        if start is not None:
            _copy(captured.start, start)
        captured.graph.replay()
        state, sums, norm = captured.outputs
        # The outputs are the graph's own tensors, overwritten by its next replay: hand out copies.
        return _clone(state), {k: v.clone() for k, v in sums.items()}, norm.clone()


def _clone(state: Any) -> Any:
    if state is None:
        return None
    if isinstance(state, tuple):
        return tuple(s.clone() for s in state)
    return state.clone()


def _copy(into: Any, source: Any) -> None:
    if isinstance(into, tuple):
        for a, b in zip(into, source):
            a.copy_(b)
    else:
        into.copy_(source)


def graphs_wanted(setting: str, device: torch.device, model: Optional[torch.nn.Module] = None) -> tuple[bool, str]:
    """(use graphs, why) for train.cuda_graph: `auto` uses graphs on a CUDA device, `off` never.
    Not for a model with parametrized weights (model.weight_drop): cuDNN re-flattens such weights
    into a new buffer at every forward pass, moving the parameters' storage, which a replayed
    graph cannot follow."""
    if device.type != "cuda":
        return False, ""
    if setting != "auto":
        return False, "eager (train.cuda_graph=off)"
    if model is not None and any(torch.nn.utils.parametrize.is_parametrized(m) for m in model.modules()):
        return False, "eager (model.weight_drop: cuDNN moves DropConnect weights every step, a graph cannot)"
    return True, "a CUDA graph per batch shape (eager for masked batches)"
