"""Seeds trained together: G loops in lockstep around one packed model (rnnexp.engine.packed_seeds).

    for each epoch:
        for each batch index:
            every live seed's batch -> one packed step (the five steps, once)
        validation: one packed pass over the shared validation set (every seed's is the same),
        then each seed's own epoch end: best model, target, early stop, divergence

Each seed keeps an `Engine` of its own (rnnexp.engine.loop): its task (its own training data), its
loop state, its callbacks (TensorBoard, checkpoints, results) and a model of its own size that the
packed weights are copied into at every epoch end, so its best model, pictures and checkpoints are
a single run's. A seed that reaches its target (or its epochs) stops and reports at once; the
packed model is then built again from the seeds still training (`_repack`: their weights and
optimizer moments move over as they are), so the others no longer pay for its block. A seed whose
weights, loss or gradient become non-finite is dropped the same way, the step is taken again
without it (an infinity in one block turns every other seed's products with its zero weights into
NaN), and it ends as diverged; the others go on. What the adaptive optimizers compute is per entry,
so the others' steps are their own. The packed model always holds exactly the seeds still
training, in the group's order: a group resumed from its checkpoints is built as the uninterrupted
one was at that point, so it goes on bit for bit.

Not bit for bit a single run: the larger products round differently (tests/test_packing.py
measures it: `DEVIATION`). `train.pack_seeds=off` runs seeds one by one, bit for bit.
"""

from __future__ import annotations

import copy
import time
from typing import Any, Callable, Sequence

import torch

from rnnexp.engine.callbacks import Callback
from rnnexp.engine.loop import Engine, Sums, make_optimizer
from rnnexp.engine.packed_seeds import PackedSeeds, SeedRows
from rnnexp.errors import DivergedError, Interrupted
from rnnexp.models.packed import PackedRecurrent

#: The bound on the deviation from the single runs (same initial weights, same data) that
#: tests/test_packing.py asserts for every epoch, over 14 epochs of QRSU easy with 3 seeds of each
#: cell. Measured there: validation loss within 1.2e-7 (LSTM), 1.5e-7 (GRU), 5.2e-5 (ReLU RNN), accuracy
#: equal (another BLAS may round an argmax tie the other way: 2 of 1,000 sequences are allowed).
DEVIATION = {"val/loss": 1e-4, "val/accuracy": 0.002}


class PackedGroup(PackedSeeds):
    """The seeds' epochs in lockstep, each seed reporting through its own callbacks; `on_done`
    is called once per seed when it stops (finished, or with its DivergedError)."""

    # -- the loop -------------------------------------------------------------------------------
    def fit(self, callbacks: Sequence[Callback], stop_requested: Callable[[], int] = lambda: 0) -> None:
        """Train every live seed until each has finished, diverged, or a stop is requested."""
        positions = {(e.state.epoch, e.state.batch, e.state.global_step) for e in self._live_engines()}
        if len(positions) > 1:
            from rnnexp.errors import RunDirError

            raise RunDirError(f"the seeds of this packed group stopped at different positions {sorted(positions)}; "
                              f"resume them one by one with train.pack_seeds=off, or start the sweep again")
        self.stop_requested = stop_requested
        for g in self.live:
            engine = self.engines[g]
            engine.stop_requested = stop_requested
            engine._clock = time.perf_counter() - engine.state.seconds
            callbacks[g].on_fit_start(engine)
        while self.live:
            self._train_epoch(callbacks)
            live = self.live
            if not live:
                break
            for g in self._non_finite_blocks(live):  # (before validation: an infinity would spread)
                self._diverged(g, f"its weights became non-finite in epoch {self.engines[g].state.epoch}")  # type: ignore[union-attr]
            live = self.live
            if not live:
                break
            vals = self.evaluate("val", live)
            for g in live:
                engine = self.engines[g]
                self.sync_out(g)
                try:
                    metrics = engine._end_epoch(vals[g])
                except DivergedError as err:
                    self.freeze(g)
                    self.on_done(g, err)
                    continue
                callbacks[g].on_epoch_end(engine, metrics)
                if engine.finished:  # (its own model holds its weights now; its block only costs)
                    self.freeze(g)
                    callbacks[g].on_fit_end(engine)
                    self.on_done(g, None)
            self._align_checkpoints(callbacks)
            self._check_stop(callbacks)

    def _live_engines(self) -> list[Engine]:
        return [self.engines[g] for g in self.live]  # type: ignore[misc]

    def _train_epoch(self, callbacks: Sequence[Callback]) -> None:
        """One epoch of every live seed, in lockstep. Each seed's sums are a row of one (G, keys)
        tensor on the device; they reach each seed's state at its logging intervals and the end."""
        engines = {g: self.engines[g] for g in self.live}
        first = next(iter(engines.values()))
        epoch, skip = first.state.epoch, first.state.batch
        for e in engines.values():
            e.model.train()
            e._epoch_clock, e._counted_before = time.perf_counter(), e.state.sums.get("count", 0.0)
        sums, intervals = SeedRows(len(self.engines), self.device), SeedRows(len(self.engines), self.device)
        norms = torch.zeros(len(self.engines), dtype=torch.float64, device=self.device)
        for g, e in engines.items():
            sums.set(g, e.state.sums)
            intervals.set(g, e.state.interval)
            norms[g] = e.state.grad_norm
        streams = {g: e._batches(epoch, skip) for g, e in engines.items()}
        while engines:
            items = {g: next(streams[g], None) for g in engines}
            if any(item is None for item in items.values()):
                break  # (every seed's epoch has as many batches: one task config)
            index = next(iter(items.values()))[0]  # type: ignore[index]
            batches = {g: item[1].to(self.device) for g, item in items.items()}  # type: ignore[index]
            starts = {g: engines[g].state.carried for g, b in batches.items() if not b.reset}
            stepped = self.step(batches, starts)
            for g in [g for g in engines if stepped is None or g not in stepped.seeds]:
                engines.pop(g)  # (diverged in this step)
            if stepped is None:
                break
            rows = torch.tensor(stepped.seeds, device=self.device)
            sums.add(rows, stepped.keys, stepped.sums)
            intervals.add(rows, stepped.keys, stepped.sums)
            norms.index_add_(0, rows, stepped.norms.double())
            for g in list(engines):
                e, s = engines[g], engines[g].state
                s.carried = stepped.carried.get(g)
                s.batch, s.global_step = index + 1, s.global_step + 1
                try:
                    if s.reference_loss is None:
                        first_sums = dict(zip(stepped.keys, stepped.sums[stepped.seeds.index(g)].tolist()))
                        if first_sums.get("count", 1) > 0:
                            e.divergence.first_step(s, e.task.metrics(first_sums)["loss"])
                    if s.global_step % self.cfg.log_every_steps == 0:
                        e._log_interval(callbacks[g], Sums(self.device, intervals.dict(g)))
                        intervals.clear(g)
                except DivergedError as err:
                    self.freeze(g)
                    engines.pop(g)
                    self.on_done(g, err)
            if any(e._out_of_time() for e in engines.values()):
                for e in engines.values():
                    e.state.carried = None
                break
            if self.stop_requested():
                for g, e in engines.items():
                    e.state.sums, e.state.interval, e.state.grad_norm = sums.dict(g), intervals.dict(g), float(norms[g])
                self._check_stop(callbacks)
        for g, e in engines.items():
            s = e.state
            s.sums, s.interval, s.grad_norm = sums.dict(g), intervals.dict(g), float(norms[g])
            if s.sums.get("count", 0.0) > e._counted_before:
                e._speed = (s.sums["count"] - e._counted_before) / max(1e-9, time.perf_counter() - e._epoch_clock)

    def _align_checkpoints(self, callbacks: Sequence[Callback]) -> None:
        """A group resumes exactly only from checkpoints of one position: where one live seed's
        checkpoint was written this epoch, every live seed's is."""
        from rnnexp.engine.checkpoint import Checkpoints

        keepers = {g: [c for c in getattr(callbacks[g], "callbacks", [callbacks[g]]) if isinstance(c, Checkpoints)]
                   for g in self.live}
        positions = {g: (self.engines[g].state.epoch, self.engines[g].state.global_step) for g in self.live}  # type: ignore[union-attr]
        if any(c.saved_step == positions[g] for g, cs in keepers.items() for c in cs):
            for g, cs in keepers.items():
                for c in cs:
                    c.save(self.engines[g])

    def _check_stop(self, callbacks: Sequence[Callback]) -> None:
        signum = self.stop_requested()
        if signum:
            for g in self.live:
                engine = self.engines[g]
                engine.state.seconds = time.perf_counter() - engine._clock  # type: ignore[union-attr]
                self.sync_out(g)
                callbacks[g].on_interrupt(engine)
            raise Interrupted(signum)


# -- whether packing pays ------------------------------------------------------------------------
def probe(engine: Engine, seeds: int, pack: Callable[[list[Any]], Any] = PackedRecurrent, steps: int = 5,
          rounds: int = 3) -> dict[str, Any]:
    """Time training steps of one seed's model and of `seeds` seeds packed, on copies (the run's
    own model and optimizer are not touched), on epoch 1's first batch, in this process's threads
    (a seed's: the packed model trains on them too); each the fastest of `rounds` rounds of `steps`
    steps. Returns the milliseconds of each and the speed-up per seed (above 1: packing is faster)."""
    batch = next(iter(engine.task.train_batches(1))).to(engine.device)
    single = copy.deepcopy(engine.model)
    single_engine = copy.copy(engine)
    single_engine.model, single_engine.params = single, list(single.parameters())
    single_engine.optimizer = make_optimizer(engine.cfg, single_engine.params)
    group = PackedGroup([single_engine] * seeds, engine.cfg, engine.device, pack)

    def sync() -> None:
        if engine.device.type == "cuda":
            torch.cuda.synchronize(engine.device)

    def timed(run: Callable[[], Any]) -> float:
        run()  # (the first step allocates)
        best = float("inf")
        for _ in range(rounds):
            sync()
            begin = time.perf_counter()
            for _ in range(steps):
                run()
            sync()
            best = min(best, (time.perf_counter() - begin) / steps * 1000)
        return best

    single_ms = timed(lambda: single_engine.train_step(batch, None))
    packed_ms = timed(lambda: group.step({g: batch for g in range(seeds)}, {}))
    return {"seeds": seeds, "single_ms": round(single_ms, 3), "packed_ms": round(packed_ms, 3),
            "speedup": round(seeds * single_ms / packed_ms, 2)}
