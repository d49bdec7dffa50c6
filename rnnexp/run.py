"""One run, start to end: validated config -> task, model, threads -> fit -> results.json.

`run_experiment` is what the CLI's Hydra task function calls, and what tests call in-process
with a config composed by Hydra's compose API. It returns the value a sweeper optimises.
A run with `train.resume=<run dir>` continues that run from its checkpoint, in its directory.
"""

from __future__ import annotations

import random
import signal
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from rnnexp.engine import checkpoint as ckpt
from rnnexp.config import RunConfig, load_run_config
from rnnexp.errors import DivergedError, RnnexpError
from rnnexp.files import write_json
from rnnexp.models.recurrent import build_model, count_parameters
from rnnexp.report.results import RESULTS, completed_results, hparams, summary_rows
from rnnexp.report.runlog import RunLog, log, make_console, route_console_logging
from rnnexp.tasks import build_task
from rnnexp.engine.threads import apply_threads, choose_threads
from rnnexp.engine.loop import Interrupted, LoopState, fit, make_optimizer, make_scheduler

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def pick_device(setting: str) -> torch.device:
    """`auto` picks CUDA when present (an unavailable `cuda` was already refused by validation)."""
    if setting == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(setting)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@contextmanager
def stop_on_signals() -> Iterator[list[int]]:
    """Ctrl-C / SIGTERM set a flag the loop checks after each step (it then checkpoints and stops).
    The first signal puts the old handler back, so a second Ctrl-C stops a stuck run at once."""
    received: list[int] = []
    previous: dict[int, Any] = {}

    def handler(signum: int, frame: Any) -> None:
        received.append(signum)
        signal.signal(signum, previous[signum])

    try:
        for sig in STOP_SIGNALS:
            previous[sig] = signal.signal(sig, handler)
    except ValueError:  # not the main thread: leave the signals alone
        previous = {}
    try:
        yield received
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def run_experiment(cfg: DictConfig, run_dir: Path, parallel_jobs: int = 1, in_sweep: bool = False) -> float:
    """Run one experiment into `run_dir`; return the objective (see `Task.objective`)."""
    run_dir = Path(run_dir)
    started = time.time()
    results: dict[str, Any] = {"status": "starting", "run_dir": str(run_dir)}
    try:
        run = load_run_config(cfg)
        return _run(run, cfg, run_dir, parallel_jobs, in_sweep, results, started)
    except Interrupted as stop:
        stop.run_dir = str(run_dir)
        results.update(status="interrupted", error=f"stopped by signal {stop.signum}; resume with "
                                                   f"train.resume={run_dir}")
        raise
    except RnnexpError as err:
        results.update(status="diverged" if isinstance(err, DivergedError) else "failed", error=str(err))
        raise
    except BaseException as err:
        results.update(status="failed", error=f"{type(err).__name__}: {err}")
        raise
    finally:
        results.setdefault("wall_seconds", round(time.time() - started, 3))
        results.setdefault("epochs_run", len(results.get("history", [])))  # epochs finished before it stopped
        # A resume refused before it started must not overwrite the earlier run's results.
        refused_resume = results.get("task") is None and OmegaConf.select(cfg, "train.resume") is not None
        if results["status"] != "completed" and run_dir.is_dir() and not refused_resume:
            write_json(run_dir / RESULTS, results)


def _run(run: RunConfig, cfg: DictConfig, run_dir: Path, parallel_jobs: int, in_sweep: bool,
         results: dict[str, Any], started: float) -> float:
    payload = ckpt.check_resume(run) if run.train.resume else None
    device = pick_device(run.train.device)
    seed_everything(run.train.seed)
    task = build_task(run.task, run.train.batch_size, run.train.seed)
    model = build_model(run.model, task).to(device)
    params, hidden = count_parameters(model), model.rnn.hidden_size
    threads, why = choose_threads(run.train.threads, params, device, parallel_jobs)
    apply_threads(threads)
    optimizer = make_optimizer(run.train, model.parameters())
    scheduler = make_scheduler(run.train, optimizer)
    loop = LoopState()
    if payload is not None:
        loop = ckpt.restore(payload, model, optimizer, scheduler, run.train, device)
    for name, text in task.artifacts().items():
        (run_dir / name).write_text(text, encoding="utf-8")

    console = make_console()
    mode = {"bar": "bar", "lines": "lines"}.get(run.train.progress, "")
    mode = mode or ("quiet" if in_sweep else "bar" if console.is_terminal else "lines")
    route_console_logging(console, mode)
    log_run = RunLog(run_dir, mode, console, unit=task.unit, resume_from=loop if payload else None)
    shape = ckpt.model_shape(run)
    results.update(status="running", task=run.task.name, cell=run.model.cell, hidden_size=hidden,
                   parameters=params, threads=threads, device=str(device), history=loop.history)
    best_loss = min((h["val/loss"] for h in loop.history), default=float("inf"))

    def after_epoch(epoch: int) -> None:
        """Keep the best model (lowest validation loss); log a sample where the task makes one."""
        nonlocal best_loss
        if hasattr(task, "sample") and getattr(run.task, "sample_length", 0):
            log_run.text("samples", "```\n" + task.sample(model, device, seed=epoch) + "\n```", epoch)
            model.train()
        if loop.history[-1]["val/loss"] < best_loss:
            best_loss = loop.history[-1]["val/loss"]
            ckpt.save_best(run_dir, model, epoch, shape, task.state_dict(), OmegaConf.to_container(cfg, resolve=True))

    budget = f" (model.param_budget={run.model.param_budget})" if run.model.param_budget else ""
    lines = [f"run directory: {run_dir}", f"task: {task.describe()}",
             f"model: {run.model.cell} hidden {hidden}{budget} x {run.model.num_layers} layer(s): {params:,} parameters",
             f"training: {run.train.optimizer} lr {run.train.lr:g}, batch {run.train.batch_size}, "
             f"up to {run.train.epochs} epochs, seed {run.train.seed}",
             f"device: {device}; threads: {threads} ({why})"]
    if payload is not None:
        lines.append(f"resuming at epoch {loop.epoch}, batch {loop.batch} (step {loop.global_step})")
    batches = task.train_batch_count()
    batches = min(batches, run.train.batches_per_epoch) if run.train.batches_per_epoch else batches
    try:
        log_run.begin(lines, OmegaConf.to_yaml(cfg), total_steps=run.train.epochs * batches,
                      done_steps=(loop.epoch - 1) * batches + loop.batch)
        with stop_on_signals() as received:
            fit(task, model, run.train, device, log_run, optimizer, scheduler, loop,
                save_checkpoint=lambda state: ckpt.save_checkpoint(run_dir, model, optimizer, scheduler, state,
                                                                   shape, run.train),
                stop_requested=lambda: received[0] if received else 0, epoch_hook=after_epoch)
    except BaseException:
        log_run.close()
        raise

    results.update(completed_results(run, loop, task.objective))
    results["wall_seconds"] = round(time.time() - started, 3)
    write_json(run_dir / RESULTS, results)
    log_run.finish(f"{run.task.label} / {run.model.cell}", summary_rows(run, results, task.unit, str(run_dir)),
                   hparams(run, hidden), {k.replace("/", "_"): v for k, v in results["final"].items()},
                   results["epochs_run"])
    log_run.close()
    objective = results["objective"]
    log.info(f"result: {run.task.label} {run.model.cell} best {objective['name']}={objective['value']:.4f} "
             f"final val/accuracy={results['final']['val/accuracy']:.4f} epochs={results['epochs_run']} "
             f"target_epoch={loop.target_epoch} train_seconds={loop.seconds:.1f} ({results['stopped_by']}); {run_dir}")
    return float(objective["value"])
