"""How a task scores a model's outputs: the loss to train on and sums that become metrics.

A task's `score` returns a `Score`: the loss (a scalar tensor with its graph, or None when the
batch scores nothing) and `sums`, 0-dim tensors that the engine adds up on the device over a
logging interval or an epoch (no host sync per step, and no copy from the host either, so a
CUDA graph can record the scoring with the rest of the step). The task's `metrics` turns the added-up
sums (now floats) into named metrics. Two kinds cover the tasks here:

* classification: cross-entropy; sums `loss` (per-target loss x count), `correct`, `count`;
  metrics `loss` (mean per target) and `accuracy`;
* regression: mean squared error; sums `loss` (squared error), `correct` (error below a
  tolerance, the 1997 paper's criterion), `count`; metrics `loss` (the MSE) and `accuracy`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from rnnexp.lazy import F, torch  # on first use: config checks need no torch


@dataclass
class Score:
    loss: Optional[torch.Tensor]       # what backward() runs through; None: nothing scored
    sums: dict[str, torch.Tensor]      # 0-dim tensors, added up over steps by the engine


def nothing_scored(device: torch.device) -> Score:
    zero = torch.zeros((), device=device)
    return Score(None, {"loss": zero, "correct": zero, "count": zero})


def classification(logits: torch.Tensor, targets: torch.Tensor) -> Score:
    """Cross-entropy of (N, C) logits against (N,) class targets."""
    if targets.numel() == 0:
        return nothing_scored(logits.device)
    logits = logits.float()  # under bf16 autocast the loss is still computed in float32
    loss = F.cross_entropy(logits, targets)
    count = torch.full((), float(targets.numel()), device=logits.device)
    with torch.no_grad():
        correct = (logits.argmax(-1) == targets).sum().float()
    return Score(loss, {"loss": loss.detach() * count, "correct": correct, "count": count})


def regression(predictions: torch.Tensor, targets: torch.Tensor, tolerance: float) -> Score:
    """Mean squared error; an answer within `tolerance` of its target counts as correct."""
    if targets.numel() == 0:
        return nothing_scored(predictions.device)
    error = predictions.float().reshape(-1) - targets.reshape(-1).float()  # float32 also under bf16 autocast
    loss = (error ** 2).mean()
    count = torch.full((), float(targets.numel()), device=predictions.device)
    with torch.no_grad():
        correct = (error.abs() < tolerance).sum().float()
    return Score(loss, {"loss": loss.detach() * count, "correct": correct, "count": count})


def mean_metrics(sums: dict[str, float]) -> dict[str, float]:
    """`loss` per scored target and `accuracy` from added-up sums (either kind)."""
    count = max(1.0, sums.get("count", 0.0))
    return {"loss": sums.get("loss", 0.0) / count, "accuracy": sums.get("correct", 0.0) / count}
