"""One run, start to end: validated config -> task, model, threads -> fit -> results.json.

`run_experiment` is what the CLI's Hydra task function calls, and what tests call in-process
with a config composed by Hydra's compose API. It returns the value a sweeper optimises.
"""

from __future__ import annotations

import random
import signal
import time
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any, Iterator, Optional

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from rnnexp import checkpoint as ckpt
from rnnexp.config import RunConfig, load_run_config
from rnnexp.errors import ConfigError, RnnexpError
from rnnexp.files import write_json
from rnnexp.models import build_model, count_parameters
from rnnexp.runlog import RunLog, log, make_console, route_console_logging
from rnnexp.tasks import build_task
from rnnexp.threads import apply_threads, choose_threads
from rnnexp.train import Interrupted, LoopState, fit, make_optimizer, make_scheduler

RESULTS = "results.json"
EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}


def pick_device(setting: str) -> torch.device:
    if setting == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if setting.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"train.device={setting} but CUDA is not available here; use train.device=cpu or auto")
    return torch.device(setting)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@contextmanager
def stop_on_signals() -> Iterator[list[int]]:
    """Ctrl-C / SIGTERM set a flag the loop checks after each step (it then checkpoints and stops)."""
    received: list[int] = []
    previous = {}

    def handler(signum: int, frame: Any) -> None:
        received.append(signum)

    try:
        for sig in EXIT_CODES:
            previous[sig] = signal.signal(sig, handler)
    except ValueError:  # not the main thread: leave the signals alone
        previous = {}
    try:
        yield received
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def model_shape(run: RunConfig, hidden_size: int) -> dict[str, Any]:
    """The keys a checkpoint must agree on to be resumed."""
    shape = {f"task.{k}": v for k, v in asdict(run.task).items() if k not in ("label",)}
    shape.update({"model.cell": run.model.cell, "model.hidden_size": hidden_size,
                  "model.num_layers": run.model.num_layers, "model.embedding_size": run.model.embedding_size,
                  "train.batch_size": run.train.batch_size})
    return shape


def run_experiment(cfg: DictConfig, run_dir: Path, parallel_jobs: int = 1, in_sweep: bool = False) -> float:
    """Run one experiment into `run_dir`; return the objective (see `Task.objective`)."""
    run_dir = Path(run_dir)
    started = time.time()
    results: dict[str, Any] = {"status": "starting", "run_dir": str(run_dir)}
    try:
        run = load_run_config(cfg)
        return _run(run, cfg, run_dir, parallel_jobs, in_sweep, results, started)
    except Interrupted as stop:
        results.update(status="interrupted", error=f"stopped by signal {stop.signum}")
        raise
    except RnnexpError as err:
        results.update(status="diverged" if "loss became" in str(err) else "failed", error=str(err))
        raise
    except BaseException as err:
        results.update(status="failed", error=f"{type(err).__name__}: {err}")
        raise
    finally:
        results.setdefault("wall_seconds", round(time.time() - started, 3))
        if results["status"] != "completed" and run_dir.is_dir():
            write_json(run_dir / RESULTS, results)


def _run(run: RunConfig, cfg: DictConfig, run_dir: Path, parallel_jobs: int, in_sweep: bool,
         results: dict[str, Any], started: float) -> float:
    device = pick_device(run.train.device)
    seed_everything(run.train.seed)
    task = build_task(run.task, run.train.batch_size, run.train.seed)
    model = build_model(run.model, task).to(device)
    params = count_parameters(model)
    threads, why = choose_threads(run.train.threads, params, device, parallel_jobs)
    apply_threads(threads)

    for name, text in task.artifacts().items():
        (run_dir / name).write_text(text, encoding="utf-8")
    console = make_console()
    mode = {"bar": "bar", "lines": "lines"}.get(run.train.progress, "")
    mode = mode or ("quiet" if in_sweep else "bar" if console.is_terminal else "lines")
    route_console_logging(console, mode)
    optimizer = make_optimizer(run.train, model.parameters())
    scheduler = make_scheduler(run.train, optimizer)
    loop = LoopState()
    log_run = RunLog(run_dir, mode, console, unit=task.unit)
    hidden = model.rnn.hidden_size
    shape = model_shape(run, hidden)
    results.update(status="running", task=run.task.name, cell=run.model.cell, hidden_size=hidden,
                   parameters=params, threads=threads, device=str(device))
    objective_key, direction = task.objective
    best_loss = float("inf")

    def after_epoch(epoch: int) -> dict[str, Any]:
        """Keep the best model (lowest validation loss); log a sample where the task makes one."""
        nonlocal best_loss
        if hasattr(task, "sample") and getattr(run.task, "sample_length", 0):
            log_run.text("samples", "```\n" + task.sample(model, device, seed=epoch) + "\n```", epoch)
            model.train()
        val_loss = loop.history[-1]["val/loss"]
        if val_loss < best_loss:
            best_loss = val_loss
            ckpt.save_torch(run_dir / ckpt.BEST, {"format": ckpt.FORMAT, "epoch": epoch, "shape": shape,
                                                  "model": model.state_dict(), "task": task.state_dict(),
                                                  "config": OmegaConf.to_container(cfg, resolve=True)})
        return {}

    try:
        log_run.begin([
            f"run directory: {run_dir}",
            f"task: {task.describe()}",
            f"model: {run.model.cell} hidden {hidden} x {run.model.num_layers} layer(s): {params:,} parameters",
            f"training: {run.train.optimizer} lr {run.train.lr:g}, batch {run.train.batch_size}, "
            f"up to {run.train.epochs} epochs, seed {run.train.seed}",
            f"device: {device}; threads: {threads} ({why})",
        ], OmegaConf.to_yaml(cfg), total_steps=run.train.epochs * task_batches(task, run))
        with stop_on_signals() as received:
            fit(task, model, run.train, device, log_run, optimizer, scheduler, loop,
                save_checkpoint=lambda state: ckpt.save_checkpoint(run_dir, model, optimizer, scheduler, state, shape),
                stop_requested=lambda: received[0] if received else 0, epoch_hook=after_epoch)
    except BaseException:
        log_run.close()
        raise

    history = loop.history
    final = history[-1]
    values = [h[objective_key] for h in history]
    objective = max(values) if direction == "max" else min(values)
    results.update(
        status="completed", epochs_run=len(history), target_accuracy=run.train.target_accuracy,
        target_epoch=loop.target_epoch, train_seconds=round(loop.seconds, 3),
        final={k: v for k, v in final.items() if "/" in k},
        best={"val/accuracy": max(h["val/accuracy"] for h in history), "val/loss": min(h["val/loss"] for h in history)},
        objective={"name": objective_key, "direction": direction, "value": objective},
        history=history)
    results["wall_seconds"] = round(time.time() - started, 3)
    write_json(run_dir / RESULTS, results)
    reached = (f"epoch {loop.target_epoch}" if loop.target_epoch else
               "not reached" if run.train.target_accuracy else "no target")
    rows = [("epochs run", f"{len(history)} / {run.train.epochs}"),
            (f"target val/accuracy {run.train.target_accuracy}", reached),
            ("final val/accuracy", f"{final['val/accuracy']:.4f}"),
            ("final val/loss", f"{final['val/loss']:.4f}")]
    rows += [(k, f"{v:.4f}") for k, v in final.items() if k.startswith("val/") and k not in ("val/accuracy", "val/loss")]
    rows += [(f"train {task.unit}/s", f"{final['train/targets_per_second']:,.0f}"), ("parameters", f"{params:,}"), ("train seconds", f"{loop.seconds:.1f}"), ("run directory", str(run_dir))]
    hparams = {"task": run.task.label, "cell": run.model.cell, "hidden_size": hidden,
               "num_layers": run.model.num_layers, "optimizer": run.train.optimizer, "lr": run.train.lr,
               "batch_size": run.train.batch_size, "seed": run.train.seed}
    log_run.finish(f"{run.task.label} / {run.model.cell}", rows, hparams,
                   {k.replace("/", "_"): v for k, v in results["final"].items()})
    log_run.close()
    log.info(f"result: {run.task.label} {run.model.cell} {objective_key}={objective:.4f} "
             f"epochs={len(history)} target_epoch={loop.target_epoch} seconds={loop.seconds:.1f}")
    return float(objective)


def task_batches(task: Any, run: RunConfig) -> int:
    count = task.train_batch_count()
    return min(count, run.train.batches_per_epoch) if run.train.batches_per_epoch else count
