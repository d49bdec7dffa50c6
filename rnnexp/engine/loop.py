"""The training loop: the five steps, evaluation, early stopping, checkpoints.

    for each epoch:
        for each batch (a chunk of parallel streams, or independent sequences):
            outputs, state = model(inputs, state)      1. forward
            loss = cross_entropy(readout)              2. loss
            optimizer.zero_grad()                      3. zero_grad
            loss.backward()                            4. backward
            optimizer.step()                           5. step
        evaluate on the fixed validation set; log; checkpoint; stop at the target accuracy

The loop knows tasks only through `Task` (batches, readout) and never branches on the model
type: the carried state is whatever torch's layer returns.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Optional

import torch
import torch.nn.functional as F
from torch import nn

from rnnexp.config import TrainConfig
from rnnexp.errors import DivergedError
from rnnexp.models.recurrent import State, carry_hidden_state
from rnnexp.report.runlog import RunLog
from rnnexp.tasks.base import Batch, Task


class Interrupted(BaseException):
    """Raised inside the loop when a stop was requested (Ctrl-C, SIGTERM) and a checkpoint was written.
    A BaseException, like KeyboardInterrupt, so that it stops a whole sweep, not just one job."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum
        self.run_dir = ""


@dataclass
class Totals:
    """Running sums over an epoch: mean loss per scored target, accuracy."""

    loss_sum: float = 0.0
    correct: int = 0
    count: int = 0

    def add(self, loss: torch.Tensor, logits: torch.Tensor, targets: torch.Tensor) -> None:
        n = targets.numel()
        if n == 0:
            return
        self.loss_sum += float(loss) * n
        self.correct += int((logits.argmax(-1) == targets).sum())
        self.count += n

    @property
    def loss(self) -> float:
        return self.loss_sum / max(1, self.count)

    @property
    def accuracy(self) -> float:
        return self.correct / max(1, self.count)


@dataclass
class LoopState:
    """Everything the loop needs to continue exactly where it stopped (saved in checkpoints)."""

    epoch: int = 1                 # the epoch in progress (or next to run)
    batch: int = 0                 # batches of `epoch` already done
    global_step: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    target_epoch: Optional[int] = None
    seconds: float = 0.0
    totals: Totals = field(default_factory=Totals)
    carried: Optional[State] = None  # the hidden state carried into the next chunk


def make_optimizer(cfg: TrainConfig, params: Iterator[nn.Parameter]) -> torch.optim.Optimizer:
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    return torch.optim.RMSprop(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


def make_scheduler(cfg: TrainConfig, optimizer: torch.optim.Optimizer) -> Optional[Any]:
    if cfg.lr_schedule == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=cfg.lr_factor, patience=cfg.lr_patience)
    return None


def forward_scored(task: Task, model: nn.Module, batch: Batch, state: Optional[State]):
    """Forward one batch from `state` (reset at a series start); the scored loss, logits, targets
    and the detached state to carry into the next chunk."""
    if batch.reset:
        state = None
    outputs, state = model(batch.inputs, state)
    logits, targets = task.readout(outputs, batch)
    # A chunk may score nothing (echo: the first chunk when delay >= chunk_length): loss None.
    loss = F.cross_entropy(logits, targets) if targets.numel() else None
    return loss, logits, targets, carry_hidden_state(state)


@torch.no_grad()
def evaluate(task: Task, model: nn.Module, device: torch.device) -> Totals:
    model.eval()
    totals, state = Totals(), None
    for batch in task.val_batches():
        loss, logits, targets, state = forward_scored(task, model, batch.to(device), state)
        if loss is not None:
            totals.add(loss, logits, targets)
    return totals


def check_finite(value: float, what: str, where: str) -> None:
    if not math.isfinite(value):
        raise DivergedError(f"the {what} became {value} at {where}; lower train.lr, set train.grad_clip "
                            f"(e.g. 1.0), or try train.optimizer=adam")


def rate(count: int, since: float) -> float:
    return count / max(1e-9, time.perf_counter() - since)


def epoch_batches(task: Task, epoch: int, limit: Optional[int], skip: int) -> Iterator[tuple[int, Batch]]:
    for index, batch in enumerate(task.train_batches(epoch)):
        if limit is not None and index >= limit:
            return
        if index >= skip:  # resuming mid-epoch: the data is regenerated, the done part skipped
            yield index, batch


def fit(task: Task, model: nn.Module, cfg: TrainConfig, device: torch.device, log: RunLog,
        optimizer: torch.optim.Optimizer, scheduler: Optional[Any], loop: LoopState,
        save_checkpoint: Callable[[LoopState], None], stop_requested: Callable[[], int],
        epoch_hook: Optional[Callable[[int], None]] = None) -> LoopState:
    """Train from `loop` (fresh or resumed) until the epochs run out or the target is reached."""
    started = time.perf_counter() - loop.seconds
    budget = None if cfg.time_limit_minutes is None else cfg.time_limit_minutes * 60

    def out_of_time() -> bool:
        return budget is not None and time.perf_counter() - started >= budget

    while loop.epoch <= cfg.epochs:
        model.train()
        epoch_started, counted_before = time.perf_counter(), loop.totals.count
        for index, batch in epoch_batches(task, loop.epoch, cfg.batches_per_epoch, loop.batch):
            loss, logits, targets, loop.carried = forward_scored(                # 1. forward
                task, model, batch.to(device), loop.carried)                    # 2. loss
            if loss is not None:
                check_finite(loss.item(), "loss", f"epoch {loop.epoch}, step {index + 1}")
                optimizer.zero_grad(set_to_none=True)                            # 3. zero_grad
                loss.backward()                                                  # 4. backward
                if cfg.grad_clip is not None:
                    nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                optimizer.step()                                                 # 5. step
                loop.totals.add(loss.detach(), logits.detach(), targets)
            loop.batch, loop.global_step = index + 1, loop.global_step + 1
            log.step(loop.global_step, float("nan") if loss is None else loss.item(), loop.totals.accuracy,
                     rate(loop.totals.count - counted_before, epoch_started))
            if out_of_time():
                break
            signum = stop_requested()
            if signum:
                loop.seconds = time.perf_counter() - started
                save_checkpoint(loop)
                raise Interrupted(signum)

        speed = rate(loop.totals.count - counted_before, epoch_started)
        val = evaluate(task, model, device)
        check_finite(val.loss, "validation loss", f"epoch {loop.epoch}")
        loop.seconds = time.perf_counter() - started
        metrics = {"epoch": loop.epoch, "train/loss": loop.totals.loss, "train/accuracy": loop.totals.accuracy,
                   "val/loss": val.loss, "val/accuracy": val.accuracy,
                   "train/targets_per_second": speed, "lr": optimizer.param_groups[0]["lr"],
                   "seconds": round(loop.seconds, 3)}
        metrics.update(task.extra_metrics(val.loss, val.accuracy))
        loop.history.append(metrics)
        log.epoch(loop.epoch, cfg.epochs, metrics)
        if epoch_hook is not None:
            epoch_hook(loop.epoch)
        if scheduler is not None:
            scheduler.step(val.loss)
        reached = cfg.target_accuracy is not None and val.accuracy >= cfg.target_accuracy
        if reached and loop.target_epoch is None:
            loop.target_epoch = loop.epoch
        finished_epoch = loop.epoch
        loop.epoch, loop.batch, loop.totals = loop.epoch + 1, 0, Totals()
        loop.carried = None  # each epoch starts a fresh series
        last = reached or out_of_time() or loop.epoch > cfg.epochs
        if last or (cfg.checkpoint_every and finished_epoch % cfg.checkpoint_every == 0):
            save_checkpoint(loop)
        if last:
            break
    return loop
