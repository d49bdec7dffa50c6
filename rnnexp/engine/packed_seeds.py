"""G seeds as one packed model (rnnexp.models.packed), one optimizer, one step for all of them.

    seed g's batch -> block g of the inputs (right-padded to the longest)      1. forward (once)
    seed g's loss from block g of the outputs; their sum                       2. loss
    zero_grad, backward                                                        3., 4.
    each seed's gradient norm and clip, from its own entries only; the
    weights between seeds get no gradient                                      5. step (once)

`PackedSeeds` holds the packed model and moves each seed's weights and optimizer moments in and out
of it (`sync_out`: a seed's own model, checkpoints and best model are a single run's), takes the
step, evaluates every seed in one pass over the shared held-out sets, and rebuilds the model when a
seed leaves (`freeze`). The epoch loop around it is `rnnexp.engine.packed.PackedGroup`.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

import torch
from torch.nn import functional as F

from rnnexp.engine.loop import Engine, make_optimizer
from rnnexp.errors import DivergedError
from rnnexp.models.family import carry_hidden_state
from rnnexp.models.packed import PackedRecurrent
from rnnexp.tasks.base import Batch

_ADVICE = "lower train.lr, set train.grad_clip (e.g. 1.0), or try train.optimizer=adam"


class PackedSeeds:
    """`engines[g]`: seed g's engine (None: a seed that is already done). Seeds are known by g;
    `blocks` says which seed each block of the packed model holds. `PackedGroup`
    (rnnexp.engine.packed) trains them epoch by epoch."""

    def __init__(self, engines: Sequence[Optional[Engine]], cfg: Any, device: torch.device,
                 pack: Callable[[list[Any]], Any] = PackedRecurrent):
        """`pack`: the model family's `packed` (G models -> one network)."""
        self.engines, self.cfg, self.device, self.pack = list(engines), cfg, device, pack
        self.active = [e is not None for e in engines]
        first = next(e for e in engines if e is not None)
        self.streaming = first.task.streaming  # (a state is carried from batch to batch)
        #: Called once per seed when it is done: (seed, None) finished, (seed, DivergedError) diverged.
        self.on_done: Callable[[int, Optional[BaseException]], None] = lambda g, err: None
        self.stop_requested: Callable[[], int] = lambda: 0
        self._build()

    @property
    def live(self) -> list[int]:
        return [g for g, on in enumerate(self.active) if on]

    def _build(self) -> None:
        """The packed model and its optimizer from the live seeds' own models and optimizer moments."""
        self.blocks = self.live
        self.block = {g: b for b, g in enumerate(self.blocks)}
        self.net = self.pack([self.engines[g].model for g in self.blocks]).to(self.device)  # type: ignore[union-attr]
        self.params = dict(self.net.named_parameters())
        self.owner = {name: o.to(self.device) for name, o in self.net.owner.items()}
        self.optimizer = make_optimizer(self.cfg, list(self.params.values()))
        self.classes, self.inputs = self.net.num_classes, self.net.input_size
        for index, name in enumerate(self.net.names):  # (a fresh run's optimizers have no moments yet)
            packed = self.params[name]
            state: dict[str, Any] = {}
            for g in self.blocks:
                engine = self.engines[g]
                own = list(engine.model.parameters())[index]  # type: ignore[union-attr]
                for key, value in engine.optimizer.state.get(own, {}).items():  # type: ignore[union-attr]
                    if torch.is_tensor(value) and value.shape == own.shape:
                        target = state.setdefault(key, torch.zeros_like(packed))
                        self.net.pack_into(name, self.block[g], target, value.to(self.device))
                    else:
                        state.setdefault(key, value.clone() if torch.is_tensor(value) else value)
            if state:
                self.optimizer.state[packed] = state

    def sync_out(self, g: int) -> None:
        """Seed g's weights and optimizer moments into its own engine (its best model, checkpoints,
        pictures and weight norm are then a single run's)."""
        engine, block = self.engines[g], self.block[g]
        assert engine is not None
        with torch.no_grad():
            for name, own in engine.model.named_parameters():
                own.copy_(self.net.unpack(name, block, self.params[name].data, own.shape))
                packed_state = self.optimizer.state.get(self.params[name], {})
                engine.optimizer.state[own] = {
                    key: (self.net.unpack(name, block, value, own.shape) if torch.is_tensor(value) and value.shape == self.params[name].shape
                          else value.clone() if torch.is_tensor(value) else value)
                    for key, value in packed_state.items()}

    def freeze(self, g: int) -> None:
        """Seed g trains no more: the packed model is built again without it."""
        self.active[g] = False
        if self.engines[g] is not None:
            self.engines[g].state.carried = None  # type: ignore[union-attr]
        self._repack()

    def _repack(self) -> None:
        for g in self.live:
            self.sync_out(g)
        if self.live:
            self._build()

    # -- one packed step -----------------------------------------------------------------------
    def _inputs(self, batches: dict[int, Batch]) -> torch.Tensor:
        """Each seed's inputs in its block, right-padded to the longest (a seed's outputs at its own
        steps never depend on later steps). Every block is a live seed's: the model holds no other."""
        steps = max(b.inputs.shape[1] for b in batches.values())
        parts = [batches[g].inputs for g in self.blocks]
        return torch.cat([x if x.shape[1] == steps else F.pad(x, (0, 0, 0, steps - x.shape[1])) for x in parts], -1)

    def _outputs(self, outputs: torch.Tensor, g: int, batch: Batch) -> torch.Tensor:
        block = self.block[g]
        return outputs[:, :batch.inputs.shape[1], block * self.classes:(block + 1) * self.classes]

    def _scores(self, outputs: torch.Tensor, batches: dict[int, Batch]) -> tuple[Optional[torch.Tensor], torch.Tensor, list[str], torch.Tensor]:
        """(the summed loss to train on, each seed's loss for the finite check, the sums' keys,
        the (seeds, keys) sums): all seeds at once where the task can (`Task.score_seeds`)."""
        seeds = list(batches)
        B, T, _ = outputs.shape
        per_seed = outputs.view(B, T, self.net.seeds, self.classes).permute(2, 0, 1, 3)
        task = self.engines[seeds[0]].task  # type: ignore[union-attr]
        scored = task.score_seeds(per_seed[[self.block[g] for g in seeds]], [batches[g] for g in seeds])
        if scored is not None:
            losses, keys, sums = scored
            return losses.sum(), losses.detach(), keys, sums.to(torch.float64)
        scores = [self.engines[g].task.score(self._outputs(outputs, g, batches[g]), batches[g]) for g in seeds]  # type: ignore[union-attr]
        keys = list(scores[0].sums)
        sums = torch.stack([torch.stack([s.sums[k].detach() for k in keys]) for s in scores]).to(torch.float64)
        losses = [s.loss for s in scores if s.loss is not None]
        total = torch.stack(losses).sum() if losses else None
        return total, (torch.stack(losses).detach() if losses else sums[:, 0]), keys, sums

    def step(self, batches: dict[int, Batch], starts: dict[int, Any]) -> Optional[Stepped]:
        """The five steps for every live seed at once: forward, loss, zero_grad, backward, step.
        A seed whose weights, loss or gradient turn non-finite is frozen as diverged and the step
        taken again without it. None when no seed is left."""
        while True:
            x = self._inputs(batches)
            state = self.net.pack_states([starts.get(g) for g in self.blocks], x.shape[0], self.device)
            outputs, state = self.net(x, state)                                          # 1. forward
            total, losses, keys, sums = self._scores(outputs, batches)                   # 2. loss
            self.optimizer.zero_grad(set_to_none=True)                                   # 3. zero_grad
            if total is not None:
                total.backward()                                                         # 4. backward
            squares = torch.zeros(self.net.seeds + 1, device=self.device, dtype=torch.float64)
            for name, p in self.params.items():  # each block's squared gradient norm (the last: between seeds)
                if p.grad is not None:
                    squares.index_add_(0, self.owner[name].view(-1), p.grad.detach().view(-1).double().square())
            if bool(torch.isfinite(torch.cat([squares, losses.double()])).all()):  # (one host sync a step)
                break
            for g in self._culprits(batches, starts):
                self._diverged(g, f"the training loss or its gradient became non-finite at epoch "
                                  f"{self.engines[g].state.epoch}, step {self.engines[g].state.global_step + 1}")  # type: ignore[union-attr]
                batches.pop(g)
                starts.pop(g, None)
            if not batches:
                return None
        seeds = list(batches)
        index = torch.tensor([self.block[g] for g in seeds], device=self.device)
        norms = squares.sqrt()
        coefficient = torch.zeros_like(norms)  # (the weights between seeds: 0)
        if self.cfg.grad_clip is not None:  # as clip_grad_norm_, but each seed by its own norm
            coefficient[index] = (self.cfg.grad_clip / (norms[index] + 1e-6)).clamp(max=1.0)
        else:
            coefficient[index] = 1.0
        with torch.no_grad():
            for name, p in self.params.items():
                if p.grad is not None:
                    p.grad.mul_(coefficient.to(p.dtype)[self.owner[name]])
        self.optimizer.step()                                                            # 5. step
        carried = ({g: _own(carry_hidden_state(self.net.unpack_state(state, self.block[g]))) for g in seeds}
                   if self.streaming else {})
        return Stepped(seeds, keys, sums, norms[index], carried)

    def _culprits(self, batches: dict[int, Batch], starts: dict[int, Any]) -> list[int]:
        """The seeds whose own weights, or own step alone, are non-finite (the others may only
        have caught it from them in the packed products); all of them if none is found alone."""
        culprits = []
        for g, batch in batches.items():
            bad = bool(self._non_finite_blocks([g]))
            if not bad:
                engine = self.engines[g]
                alone = copy.deepcopy(engine.model)  # type: ignore[union-attr]
                with torch.no_grad():
                    for name, own in alone.named_parameters():
                        own.copy_(self.net.unpack(name, self.block[g], self.params[name].data, own.shape))
                outputs, _ = alone(batch.inputs, starts.get(g))
                loss = engine.task.score(outputs, batch).loss  # type: ignore[union-attr]
                if loss is not None:
                    loss.backward()
                    bad = not bool(torch.isfinite(loss)) or any(
                        p.grad is not None and not bool(torch.isfinite(p.grad).all()) for p in alone.parameters())
            if bad:
                culprits.append(g)
        return culprits or list(batches)

    def _diverged(self, g: int, message: str) -> None:
        self.freeze(g)
        self.on_done(g, DivergedError(f"{message}; {_ADVICE}"))

    def _non_finite_blocks(self, seeds: Sequence[int]) -> list[int]:
        return [g for g in seeds
                if any(not bool(torch.isfinite(p.data[self.owner[n] == self.block[g]]).all()) for n, p in self.params.items())]

    # -- evaluation -----------------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self, split: str, seeds: Sequence[int]) -> dict[int, dict[str, float]]:
        """Each seed's metrics on the fixed split `split`, from one packed pass: the held-out sets
        do not depend on the seed, so every block reads the same batch."""
        first = self.engines[seeds[0]]
        assert first is not None
        self.net.eval()
        totals = SeedRows(len(self.engines), self.device)
        rows = torch.tensor(list(seeds), device=self.device)
        state = None
        try:
            for batch in first.task.eval_batches(split):
                batch = batch.to(self.device)
                outputs, state = self.net(batch.inputs.repeat(1, 1, self.net.seeds), None if batch.reset else state)
                _, _, keys, sums = self._scores(outputs, {g: batch for g in seeds})
                totals.add(rows, keys, sums)
                state = carry_hidden_state(state)
        finally:
            self.net.train()
        metrics = {g: {f"{split}/{k}": v for k, v in first.task.metrics(totals.dict(g)).items()} for g in seeds}
        for g in seeds:
            if not all(math.isfinite(v) for v in metrics[g].values()):
                # A non-finite activation of one seed (its weights finite, its state exploding) turns
                # every block's products with its zero weights into NaN: each such seed alone.
                self.sync_out(g)
                metrics[g] = self.engines[g].evaluate(split)  # type: ignore[union-attr]
        return metrics


def _own(state: Any) -> Any:
    """A seed's carried state in storage of its own (a checkpoint of a view would save every block)."""
    return tuple(s.clone() for s in state) if isinstance(state, tuple) else state.clone()


@dataclass
class Stepped:
    """What one packed step gives the seeds it trained: their rows of metric sums (keys order),
    their gradient norms before clipping, and (streaming tasks) the states they carry on."""

    seeds: list[int]
    keys: list[str]
    sums: torch.Tensor
    norms: torch.Tensor
    carried: dict[int, Any]


class SeedRows:
    """Each seed's metric sums as a row of one float64 (seeds, keys) tensor on the device."""

    def __init__(self, seeds: int, device: torch.device):
        self.seeds, self.device = seeds, device
        self.keys: list[str] = []
        self.values: Optional[torch.Tensor] = None
        self.pending: dict[int, dict[str, float]] = {}  # (a resumed epoch's sums, before the keys are known)

    def set(self, g: int, start: dict[str, float]) -> None:
        if start:
            self.pending[g] = dict(start)

    def add(self, rows: torch.Tensor, keys: list[str], sums: torch.Tensor) -> None:
        if self.values is None:
            self.keys = list(keys)
            self.values = torch.zeros(self.seeds, len(keys), dtype=torch.float64, device=self.device)
            for g, start in self.pending.items():
                self.values[g] = torch.tensor([start.get(k, 0.0) for k in keys], dtype=torch.float64)
        self.values.index_add_(0, rows, sums)

    def dict(self, g: int) -> dict[str, float]:
        if self.values is None:
            return dict(self.pending.get(g, {}))
        return dict(zip(self.keys, self.values[g].tolist()))

    def clear(self, g: int) -> None:
        self.pending.pop(g, None)
        if self.values is not None:
            self.values[g] = 0.0
