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
* fixed shapes and addresses: one graph per batch shape. A batch of sequences padded on the right
  (QRSU) is padded further, to a multiple of 16 steps (of 1/16 to 1/8 of its length when longer),
  which changes no score (each answer is read at its sequence's own last step): 37 lengths in 20
  epochs of QRSU nightmare become 3 (6 shapes with the epoch's shorter last batch). At most
  MAX_GRAPHS are captured (each holds its own memory pool); other shapes run eagerly. The batch
  and the carried state are copied into the graph's own input tensors before a replay, and its
  outputs (state, sums, norm) are copied out;
* no host synchronisation inside the step: tasks score without `.item()` or boolean indexing
  (a batch with a mask, echo's first chunks, runs eagerly), the gradient norm stays on the GPU;
* a capturable optimizer (`capturable=True`, set by `make_optimizer` when graphs are on);
* optimizer settings that the graph does not bake in: a change of any of them (a schedule's
  learning rate, or momentum, betas, weight decay set by hand) drops the graphs, which are captured
  again with the new settings;
* no cuDNN dropout between layers (a multi-layer model with dropout): torch rebuilds cuDNN's
  dropout state after a CUDA reseed, which a graph captured earlier would not follow; such a model
  stays eager until scripts/gpu_check.py has shown it equal to eager on a GPU.
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
BUCKET = 16  # right-padded batches are padded to a multiple of this many steps (or more, when long)
MAX_GRAPHS = 8  # graphs (and memory pools) a run captures at most

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
        self.graphs: dict[tuple, Optional[_Captured]] = {}  # None: this shape runs eagerly
        self.seen: dict[tuple, int] = {}
        self.settings = optimizer_settings(optimizer)
        self.side = torch.cuda.Stream()

    def __call__(self, batch: Batch, start: Any) -> tuple[Any, dict[str, torch.Tensor], torch.Tensor]:
        if batch.mask is not None:  # boolean selection of the scored steps syncs with the host
            return self.step(batch, start)
        if (settings := optimizer_settings(self.optimizer)) != self.settings:  # e.g. a schedule's new rate
            self.graphs, self.seen, self.settings = {}, {}, settings
        batch = pad_to_bucket(batch)
        key = graph_key(batch, start)
        if key in self.graphs:
            captured = self.graphs[key]
            return self.step(batch, start) if captured is None else self._replay(captured, batch, start)
        self.seen[key] = self.seen.get(key, 0) + 1
        if self.seen[key] <= WARMUP:
            return self._on_side_stream(batch, start)
        full = sum(g is not None for g in self.graphs.values()) >= MAX_GRAPHS
        captured = None if full else self._capture(batch, start)
        self.graphs[key] = captured
        return self.step(batch, start) if captured is None else self._replay(captured, batch, start)

    def _on_side_stream(self, batch: Batch, start: Any) -> Any:
        self.side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(self.side):
            out = self.step(batch, start)
        torch.cuda.current_stream().wait_stream(self.side)
        return out

    def _capture(self, batch: Batch, start: Any) -> Optional[_Captured]:
        """Record one step (nothing runs: the caller replays it right away on this batch)."""
        static = Batch(batch.inputs.clone(), batch.targets.clone(), None, batch.reset,
                       None if batch.lengths is None else batch.lengths.clone(), batch.left_padded)
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
        if batch.lengths is not None:
            captured.batch.lengths.copy_(batch.lengths, non_blocking=True)  # type: ignore[union-attr]
        if start is not None:
            _copy(captured.start, start)
        captured.graph.replay()
        state, sums, norm = captured.outputs
        # The outputs are the graph's own tensors, overwritten by its next replay: hand out copies.
        return _clone(state), {k: v.clone() for k, v in sums.items()}, norm.clone()


def graph_key(batch: Batch, start: Any) -> tuple:
    """What one captured graph serves: the batch's shapes and dtype, whether it starts from zeros,
    and whether it carries lengths and on which side it is padded (they decide where each answer is
    read: a mixing curriculum's epoch holds batches of one shape with lengths and without)."""
    return (tuple(batch.inputs.shape), batch.inputs.dtype, tuple(batch.targets.shape), start is None,
            batch.lengths is not None, batch.left_padded)


def optimizer_settings(optimizer: torch.optim.Optimizer) -> list[dict[str, Any]]:
    """Every setting of every parameter group (lr, momentum, betas, weight decay, ...): what a
    captured step has baked in."""
    return [{k: v for k, v in group.items() if k != "params" and not torch.is_tensor(v)}
            for group in optimizer.param_groups]


def pad_to_bucket(batch: Batch) -> Batch:
    """A many-to-one batch padded on the right, padded further to a multiple of BUCKET steps, or of
    the power of two between 1/16 and 1/8 of its length when that is larger (zeros; the answers are
    still read at each sequence's own last step). Other batches as they are."""
    if batch.lengths is None or batch.left_padded or batch.targets.dim() != 1:
        return batch
    steps = batch.inputs.shape[1]
    extra = -steps % max(BUCKET, 2 ** (steps.bit_length() - 4))
    if not extra:
        return batch
    pad = (0, 0, 0, extra) if batch.inputs.dim() == 3 else (0, extra)
    return Batch(torch.nn.functional.pad(batch.inputs, pad), batch.targets, batch.mask, batch.reset,
                 batch.lengths, batch.left_padded)


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
    layers = [m for m in (model.modules() if model is not None else []) if isinstance(m, torch.nn.RNNBase)]
    if any(m.num_layers > 1 and m.dropout > 0 for m in layers):
        return False, ("eager (model.dropout between layers: cuDNN's dropout state is rebuilt after a CUDA reseed, "
                       "which a captured graph would not follow)")
    return True, "a CUDA graph per batch shape (eager for masked batches)"
