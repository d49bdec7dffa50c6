"""A packed group: the jobs of a sweep that differ only in `train.seed` (and in when they stop),
trained as one model.

    rnnexp -m task=qrsu model=lstm train.seed=1,2,3        (train.pack_seeds=auto packs them where a
                                                            probe at the start measured it faster)

The launcher (rnnexp.sweep.launcher) groups the jobs and hands a group here. Each seed is prepared
as a single run would be (`rnnexp.run.prepare`: its directory, task, model, engine, TensorBoard,
checkpoints, results.json); `rnnexp.engine.packed.PackedGroup` then trains them together, and each
seed reports the moment it is done: finished (its test, results and result line) or diverged.
Returns one outcome per job: its objective, or the exception it ended with.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Union

from omegaconf import DictConfig

from rnnexp.engine.callbacks import Callbacks
from rnnexp.engine.packed import DEVIATION, PackedGroup
from rnnexp.engine.signals import stop_on_signals
from rnnexp.errors import DivergedError, Interrupted, RnnexpError
from rnnexp.files import write_json
from rnnexp.models.build import count_parameters
from rnnexp.report import console as con
from rnnexp.report.results import RESULTS
from rnnexp.sweep.jobs import SweepState
from rnnexp.run import _UNFINISHED, Prepared, earlier_results, finish_deferred, out_of_memory, prepare

Outcome = Union[float, BaseException]


@dataclass
class Job:
    cfg: DictConfig        # the job's config (task, model, train)
    hydra: DictConfig      # the whole config Hydra ran it with (its choices name the run's settings)
    run_dir: Path
    overrides: list[str]


def run_packed(jobs: list[Optional[Job]], resume: str, probe: Optional[dict[str, Any]] = None,
               parallel_jobs: int = 1) -> list[Outcome]:
    """Train `jobs` (one setting, several seeds) as one packed model; `resume` is the sweep's command
    (a seed's checkpoint names it: the group resumes only as a group). None in `jobs`: a member of
    the group that is not trained now (its place in the group's record is kept). `parallel_jobs`: units of the sweep running at once (threads, pictures)."""
    from hydra.core.hydra_config import HydraConfig

    finish_deferred(wait=False)
    started = time.time()
    group = {"dirs": [None if job is None else job.run_dir.name for job in jobs], "resume": resume}
    outcomes: list[Optional[Outcome]] = [None] * len(jobs)
    results: list[dict[str, Any]] = [{"status": "starting", "run_dir": str(job.run_dir) if job else ""} for job in jobs]
    had = [job is not None and earlier_results(job.run_dir) for job in jobs]
    prepared: list[Optional[Prepared]] = []
    with stop_on_signals() as stop_requested:  # (a Ctrl-C while the group starts stops it after its first step)
        for g, job in enumerate(jobs):
            ready = None
            if job is not None:
                HydraConfig.instance().set_config(job.hydra)
                try:  # (pictures: the first seed that trains)
                    ready = prepare(job.cfg, job.run_dir, job.overrides, parallel_jobs, True, results[g], started,
                                    pictures=not any(prepared), packed_with=group)
                except Exception as err:  # (this seed fails; the others train)
                    _ended(results[g], err, job.run_dir, had[g], started)
                    outcomes[g] = err
                if ready is None and outcomes[g] is None:  # a sweep resumed: this seed had finished
                    outcomes[g] = float((results[g].get("objective") or {}).get("value", float("nan")))
            if ready is not None:
                results[g].update(packed_with=[d for d in group["dirs"] if d is not None],
                                  packing={"group": group["dirs"], "probe": probe,
                                           "deviation_from_single_runs": DEVIATION, "measured_by": "tests/test_packing.py"})
            prepared.append(ready)
        live = [g for g, p in enumerate(prepared) if p is not None]
        if live:
            _train(prepared, live, results, outcomes, had, started, resume, probe, stop_requested)
    return [RuntimeError("the packed group ended without a result for this seed") if o is None and job is not None
            else o for o, job in zip(outcomes, jobs)]  # type: ignore[misc]


def _train(prepared: list[Optional[Prepared]], live: list[int], results: list[dict[str, Any]],
           outcomes: list[Optional[Outcome]], had: list[bool], started: float, resume: str,
           probe: Optional[dict[str, Any]], stop_requested: Any) -> None:
    first = prepared[live[0]]
    assert first is not None
    con.log.info(f"packed: {', '.join(str(prepared[g].run_dir.name) for g in live)} train as one model"  # type: ignore[union-attr]
                 + (f" (probe: {probe['speedup']:g}x faster than one by one)" if probe else ""))
    trainer = PackedGroup([p.engine if p else None for p in prepared], first.run.train, first.engine.device,
                          first.family.packed)
    # (the threads a seed alone would train on, as `prepare` set them: two threads for a packed
    # model of many parameters lost 1.5x beside the drawing process, which then takes the other core)
    con.log.info(f"packed model: {count_parameters(trainer.net):,} parameters (zeros between seeds included); "
                 f"threads: {first.results['threads']}")

    def done(g: int, error: Optional[BaseException]) -> None:
        """Seed g is done: it reports now, whatever the others still do (an error in its report
        fails it alone, as a job alone would)."""
        ready = prepared[g]
        assert ready is not None
        try:
            ready.after_fit()
            if error is None:
                ready.complete(ready.engine.test())
                outcomes[g] = float(results[g]["objective"]["value"])
            else:
                _ended(results[g], error, ready.run_dir, had[g], started)
                outcomes[g] = error
                if isinstance(error, DivergedError):
                    con.log.warning(f"diverged: {ready.run_dir.name}: {error}")
        except Exception as err:
            _ended(results[g], err, ready.run_dir, had[g], started)
            outcomes[g] = err
        finally:
            _UNFINISHED.append((ready.insight, ready.tensorboard))
            finish_deferred(wait=False)

    trainer.on_done = done
    callbacks = [Callbacks(p.callbacks) if p else Callbacks([]) for p in prepared]
    try:
        trainer.fit(callbacks, lambda: stop_requested() or SweepState.stop_signal)
    except BaseException as err:
        if isinstance(err, MemoryError) or type(err).__name__ == "OutOfMemoryError":
            err = out_of_memory(err)
        for g in trainer.live:
            ready = prepared[g]
            assert ready is not None
            ready.after_fit()
            if isinstance(err, Interrupted):
                results[g].update(status="interrupted", error=f"stopped by signal {err.signum}", resume=resume)
            _ended(results[g], err, ready.run_dir, had[g], started)
            outcomes[g] = err
            _UNFINISHED.append((ready.insight, ready.tensorboard))
        if not isinstance(err, Exception):
            raise  # (a stop ends the sweep; an error fails these jobs, and the sweep goes on)
    finally:
        finish_deferred(wait=False)


def _ended(results: dict[str, Any], error: BaseException, run_dir: Path, had_results: bool, started: float) -> None:
    """results.json of a seed that did not complete (as `rnnexp.run.run_experiment` writes it)."""
    if results.get("status") != "interrupted":
        status = "diverged" if isinstance(error, DivergedError) else "failed"
        message = str(error) if isinstance(error, RnnexpError) else f"{type(error).__name__}: {error}"
        results.update(status=status, error=message)
    results.setdefault("wall_seconds", round(time.time() - started, 3))
    results.setdefault("epochs_run", len(results.get("history", [])))
    if ("task" in results or not had_results) and run_dir.is_dir():
        write_json(run_dir / RESULTS, results)
