"""The training loop: the five steps, evaluation, model selection, early stopping. No I/O.

    for each epoch:
        for each batch (a chunk of parallel streams, or independent sequences):
            outputs, state = task.forward(model, batch, state)   1. forward
            loss = task.score(outputs, batch).loss     2. loss
            optimizer.zero_grad()                      3. zero_grad
            loss.backward()                            4. backward
            optimizer.step()                           5. step
        evaluate on the validation set: keep the best model (the task's objective), stop at the
        target accuracy, step the learning-rate schedule
    (after fit: `test()` evaluates the best model once on the test set)

The loop knows tasks through `Task` only (batches, `score`, `metrics`), never branches on the
task or the cell type (the carried state is whatever torch's layer returns), and writes
nothing: TensorBoard, the console, checkpoints, figures and curricula are callbacks
(`rnnexp.engine.callbacks`). Metric sums stay on the device and reach the host once per
logging interval and once per epoch (no `.item()` per step; a streaming task's masked selection
of scored steps may still synchronise on a GPU).
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import Any, Callable, ContextManager, Iterable, Iterator, Optional

import torch
from torch import nn

from rnnexp.config import TrainConfig
from rnnexp.engine.callbacks import Callback
from rnnexp.engine.cuda_graph import GraphedTrainStep, graphs_wanted
from rnnexp.engine import optimizers
from rnnexp.engine.divergence import DivergenceRule, check_finite
from rnnexp.engine.precision import autocast
from rnnexp.errors import Interrupted
from rnnexp.models.family import State, carry_hidden_state
from rnnexp.tasks.base import Batch, Task

PROGRESS_EVERY_S = 5.0  # a long epoch still shows progress (a line in a log file at least this often)


@dataclass
class LoopState:
    """Everything the loop needs to continue exactly where it stopped (saved in checkpoints)."""

    epoch: int = 1                   # the epoch in progress (or next to run)
    batch: int = 0                   # batches of `epoch` already trained
    global_step: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    target_epoch: Optional[int] = None
    best_epoch: Optional[int] = None  # the epoch of the best validation objective so far
    best_value: Optional[float] = None
    best_loss: Optional[float] = None  # its validation loss (breaks ties)
    seconds: float = 0.0             # training time (evaluation included), over restarts
    sums: dict[str, float] = field(default_factory=dict)  # this epoch's training sums so far
    interval: dict[str, float] = field(default_factory=dict)  # sums since the last step-level log
    grad_norm: float = 0.0           # this epoch's summed gradient norms (before clipping)
    carried: Optional[State] = None  # the hidden state carried into the next chunk
    reference_loss: Optional[float] = None  # what divergence is judged against (engine.divergence)
    divergence: dict[str, float] = field(default_factory=dict)  # the largest loss / reference ratios so far


def make_optimizer(cfg: TrainConfig, params: Iterable[nn.Parameter], capturable: bool = False) -> torch.optim.Optimizer:
    """torch's optimizer for `train.optimizer`, its fastest kernels for the device, without the
    import of torch._dynamo that its classes cost at start-up (rnnexp.engine.optimizers)."""
    return optimizers.make_optimizer(cfg.optimizer, cfg.lr, cfg.momentum, cfg.weight_decay, params, capturable)


def make_scheduler(cfg: TrainConfig, optimizer: torch.optim.Optimizer) -> Optional[Any]:
    if cfg.lr_schedule == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=cfg.lr_factor, patience=cfg.lr_patience)
    return None


class Sums:
    """Metric sums added up on the device in float64 (so counts and resumes stay exact): one
    vector, one add per step (a task returns the same keys for every batch)."""

    def __init__(self, device: torch.device, start: Optional[dict[str, float]] = None):
        self.device = device
        self.keys: list[str] = list(start or {})
        self.total: Optional[torch.Tensor] = (
            torch.tensor([start[k] for k in self.keys], dtype=torch.float64, device=device) if start else None)

    @staticmethod
    def stack(sums: dict[str, torch.Tensor]) -> tuple[list[str], torch.Tensor]:
        """A batch's sums as (keys, one float64 vector): made once a step, added to every Sums."""
        return list(sums), torch.stack([v.detach() for v in sums.values()]).to(torch.float64)

    def add(self, sums: dict[str, torch.Tensor]) -> None:
        self.add_stacked(*self.stack(sums))

    def add_stacked(self, keys: list[str], vector: torch.Tensor) -> None:
        if self.total is None:
            self.keys, self.total = keys, vector.clone()  # its own: the same vector goes to every Sums
        elif keys == self.keys:
            self.total += vector
        else:  # a batch with other keys: merge by name (never in the tasks here; kept correct anyway)
            merged = self.to_host()
            for key, value in zip(keys, vector.tolist()):
                merged[key] = merged.get(key, 0.0) + value
            self.__init__(self.device, merged)  # type: ignore[misc]

    def to_host(self) -> dict[str, float]:
        """One host sync for all the sums."""
        return {} if self.total is None else dict(zip(self.keys, self.total.tolist()))


class Engine:
    """One model trained on one task; `fit` runs the loop, `test` reports on the test set."""

    def __init__(self, task: Task, model: nn.Module, cfg: TrainConfig, device: torch.device, cuda_graph: bool = True):
        """`cuda_graph`: whether the model's family can run its step as a CUDA graph (ModelFamily)."""
        self.task, self.model, self.cfg, self.device = task, model, cfg, device
        self.params = list(model.parameters())
        graphed, self.step_kind = graphs_wanted(cfg.cuda_graph, device, model)
        if graphed and not cuda_graph:
            graphed, self.step_kind = False, "eager (this model family has no CUDA-graph step)"
        self.optimizer = make_optimizer(cfg, self.params, capturable=graphed)
        self._no_norm = torch.zeros((), device=device)
        # The step the loop runs: `train_step` itself, or on a GPU the same step as a CUDA graph.
        self.step = GraphedTrainStep(self.train_step, self.optimizer) if graphed else self.train_step
        self.scheduler = make_scheduler(cfg, self.optimizer)
        self.divergence = DivergenceRule(cfg.divergence_factor, task.baseline())
        self.state = LoopState()
        self.best_model: Optional[dict[str, torch.Tensor]] = None  # weights of the best epoch, in memory
        self.stop_requested: Callable[[], int] = lambda: 0
        self.finished = False  # set when the epoch just ended is the last one
        self._speed = 0.0      # scored targets per second of the last epoch's training
        objective, direction = task.objective
        self.objective_key, self.maximise = f"val/{objective}", direction == "max"

    # -- the loop ----------------------------------------------------------------------------
    def fit(self, callbacks: Callback, stop_requested: Callable[[], int] = lambda: 0) -> LoopState:
        """Train from `self.state` (fresh or resumed) until the epochs, the target or the time run out."""
        s, self.stop_requested = self.state, stop_requested
        self._clock = time.perf_counter() - s.seconds
        callbacks.on_fit_start(self)
        while s.epoch <= self.cfg.epochs and not self.finished:
            self._train_epoch(callbacks)
            try:
                val = self.evaluate("val")
            except _StopDuringValidation:
                self._check_stop(callbacks)  # checkpoint at the end of training, then Interrupted
                raise
            metrics = self._end_epoch(val)
            callbacks.on_epoch_end(self, metrics)
            if not self.finished:  # the last epoch is done: a stop now changes nothing
                self._check_stop(callbacks)
        callbacks.on_fit_end(self)
        return s

    def _train_epoch(self, callbacks: Callback) -> None:
        s, every = self.state, self.cfg.log_every_steps
        self.model.train()
        self._epoch_clock, counted_before = time.perf_counter(), s.sums.get("count", 0.0)
        epoch_sums, interval = Sums(self.device, s.sums), Sums(self.device, s.interval)
        grad_norm = torch.tensor(s.grad_norm, dtype=torch.float64, device=self.device)
        last_progress = time.perf_counter()
        for index, batch in self._batches(s.epoch, skip=s.batch):
            batch = batch.to(self.device)
            s.carried, sums, norm = self.step(batch, None if batch.reset else s.carried)
            stacked = Sums.stack(sums)
            if s.reference_loss is None:  # the initial model's loss on the first batch that scores something
                first = dict(zip(stacked[0], stacked[1].tolist()))  # (one host sync per step until then)
                if first.get("count", 1) > 0:
                    self.divergence.first_step(s, self.task.metrics(first)["loss"])
            epoch_sums.add_stacked(*stacked)
            interval.add_stacked(*stacked)
            grad_norm += norm
            s.batch, s.global_step = index + 1, s.global_step + 1
            if s.global_step % every == 0:  # fixed steps, so a resumed run logs the same points
                self._log_interval(callbacks, interval)
                interval = Sums(self.device)
            if time.perf_counter() - last_progress >= PROGRESS_EVERY_S:
                callbacks.on_progress(self)  # no metrics: no host sync
                last_progress = time.perf_counter()
            if self._out_of_time():
                # The epoch ends early: the next one starts at its own place in the data, which
                # this state does not lead into.
                s.carried = None
                break
            if self.stop_requested():
                s.sums, s.interval, s.grad_norm = epoch_sums.to_host(), interval.to_host(), float(grad_norm)
                self._check_stop(callbacks)
        s.sums, s.interval, s.grad_norm = epoch_sums.to_host(), interval.to_host(), float(grad_norm)
        if s.sums.get("count", 0.0) > counted_before:  # not when a resumed epoch only had to be validated
            self._speed = (s.sums["count"] - counted_before) / max(1e-9, time.perf_counter() - self._epoch_clock)

    def train_step(self, batch: Batch, start: Optional[State]) -> tuple[Optional[State], dict[str, torch.Tensor], torch.Tensor]:
        """The five steps on one batch, from hidden state `start` (None: zeros). Returns the state
        to carry into the next chunk, the batch's metric sums and the gradient norm before clipping."""
        with self._precision():
            outputs, state = self.task.forward(self.model, batch, start)     # 1. forward
            score = self.task.score(outputs, batch)                          # 2. loss
        norm = self._no_norm
        if score.loss is not None:  # a chunk may score nothing (echo: before the first delay)
            self.optimizer.zero_grad(set_to_none=True)                       # 3. zero_grad
            score.loss.backward()                                            # 4. backward
            norm = self._clip_gradients()
            self.optimizer.step()                                            # 5. step
        # Truncated BPTT: the next chunk starts from this state's values, but gradients stop
        # here (the graph of this chunk is freed after backward).
        return carry_hidden_state(state), score.sums, norm

    def _precision(self) -> ContextManager[Any]:
        return autocast(self.cfg.precision, self.device)

    def _clip_gradients(self) -> torch.Tensor:
        """The gradient norm before clipping (clipping to train.grad_clip when set): one foreach
        kernel for all the parameters, no host sync."""
        if self.cfg.grad_clip is not None:
            return nn.utils.clip_grad_norm_(self.params, self.cfg.grad_clip, foreach=True)
        grads = [p.grad for p in self.params if p.grad is not None]
        if hasattr(nn.utils, "get_total_norm"):  # torch >= 2.6
            return nn.utils.get_total_norm(grads, foreach=True)
        return torch.linalg.vector_norm(torch.stack([g.norm() for g in grads]))

    def _log_interval(self, callbacks: Callback, interval: Sums) -> None:
        metrics = self.task.metrics(interval.to_host())
        step = self.state.global_step
        where = f"epoch {self.state.epoch}, steps {max(1, step - self.cfg.log_every_steps + 1)}-{step}"
        self.divergence.interval(self.state, metrics["loss"], where)
        callbacks.on_log(self, {"train/step_loss": metrics["loss"], "train/step_accuracy": metrics["accuracy"]})

    def _end_epoch(self, val: dict[str, float]) -> dict[str, float]:
        """Epoch metrics; the best model, the target, the schedule; advance to the next epoch."""
        s = self.state
        check_finite(val["val/loss"], "validation loss", f"epoch {s.epoch}")
        s.seconds = time.perf_counter() - self._clock
        train = {f"train/{k}": v for k, v in self.task.metrics(s.sums).items()}
        if s.sums.get("count", 0.0) > 0:  # (an epoch that scored nothing has no mean to judge)
            self.divergence.epoch(s, train["train/loss"])
        batches = max(1, s.batch)
        metrics = {"epoch": s.epoch, **train, **val, "train/lr": self.optimizer.param_groups[0]["lr"],
                   "train/grad_norm": s.grad_norm / batches, "train/weight_norm": self._weight_norm(),
                   "train/targets_per_second": self._speed, "seconds": round(s.seconds, 3)}
        if self._improves(val):
            s.best_epoch, s.best_value, s.best_loss = s.epoch, val[self.objective_key], val["val/loss"]
            self.best_model = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        reached = self.cfg.target_accuracy is not None and val["val/accuracy"] >= self.cfg.target_accuracy
        if reached and s.target_epoch is None:
            s.target_epoch = s.epoch
        if self.scheduler is not None:
            self.scheduler.step(val["val/loss"])
        s.history.append(metrics)
        self.finished = reached or self._out_of_time() or s.epoch >= self.cfg.epochs
        s.epoch, s.batch, s.sums, s.grad_norm = s.epoch + 1, 0, {}, 0.0
        # (s.carried stays: a new pass starts from zeros by itself (Batch.reset), and an epoch that
        # is a window into a pass, train.batches_per_epoch, goes on from where the last one stopped)
        return metrics

    def _improves(self, val: dict[str, float]) -> bool:
        """A better validation objective than the best so far; on a tie (accuracy often reaches
        1.0 and stays), a lower validation loss."""
        s, value = self.state, val[self.objective_key]
        if s.best_value is None:
            return True
        if value != s.best_value:
            return value > s.best_value if self.maximise else value < s.best_value
        return s.best_loss is not None and val["val/loss"] < s.best_loss

    def _weight_norm(self) -> float:
        with torch.no_grad():
            return float(torch.linalg.vector_norm(torch.stack([p.norm() for p in self.model.parameters()])))

    def _batches(self, epoch: int, skip: int) -> Iterator[tuple[int, Batch]]:
        """Epoch `epoch`'s batches from position `skip` on (resuming mid-epoch: the data is
        regenerated, the done part skipped). With train.batches_per_epoch = N an epoch is a window
        of N batches that goes on through the task's data: epoch 1 is the first N batches of the
        first pass over it, epoch 2 the next N, and a new pass (fresh data) starts where one runs
        out; a long corpus is read through, not its first N chunks again and again."""
        limit = self.cfg.batches_per_epoch
        if limit is None:
            for index, batch in enumerate(self.task.epoch_batches(epoch)):
                if index >= skip:
                    yield index, batch
            return
        passes, offset = divmod((epoch - 1) * limit, self.task.train_batch_count())
        index = 0
        while True:
            for position, batch in enumerate(self.task.epoch_batches(passes + 1)):
                if position < offset:
                    continue
                if index >= skip:
                    yield index, batch
                index += 1
                if index == limit:
                    return
            passes, offset = passes + 1, 0

    def _out_of_time(self) -> bool:
        limit = self.cfg.time_limit_minutes
        return limit is not None and time.perf_counter() - self._clock >= limit * 60

    def _check_stop(self, callbacks: Callback) -> None:
        signum = self.stop_requested()
        if signum:
            self.state.seconds = time.perf_counter() - self._clock
            callbacks.on_interrupt(self)
            raise Interrupted(signum)

    # -- evaluation --------------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self, split: str, model: Optional[nn.Module] = None) -> dict[str, float]:
        """Metrics of `model` (default: the one in training) on a fixed split, as `split/name`, in
        the precision it trains in (a bf16 model is selected and reported as it runs)."""
        model = model or self.model
        was_training = model.training
        model.eval()
        sums, state = Sums(self.device), None
        try:
            for batch in self.task.eval_batches(split):
                batch = batch.to(self.device)
                with self._precision():
                    outputs, state = self.task.predict(model, batch, None if batch.reset else state)
                    sums.add(self.task.score(outputs, batch).sums)
                state = carry_hidden_state(state)  # float32 between chunks, as in training
                if split == "val" and self.stop_requested():
                    raise _StopDuringValidation
        finally:
            model.train(was_training)
        return {f"{split}/{k}": v for k, v in self.task.metrics(sums.to_host()).items()}

    def test(self) -> dict[str, float]:
        """The best model (by the validation objective) on the test set, evaluated once."""
        model = self.model
        if self.best_model is not None:
            model = copy.deepcopy(self.model)
            model.load_state_dict(self.best_model)
        return self.evaluate("test", model)


class _StopDuringValidation(Exception):
    """Validation stops early on a signal; `fit` turns it into a checkpoint and `Interrupted`."""
