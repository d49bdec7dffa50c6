"""Checkpoints: atomic save, exact resume.

`checkpoint.pt` holds everything to continue a run to the same last digit: model, optimizer,
scheduler, every RNG state, the loop position (epoch, batch, carried hidden state, partial epoch
sums, history). Task data needs no RNG state: each epoch's data comes from (seed, epoch).
`best.pt` holds the model with the lowest validation loss, plus what sampling needs.
"""

from __future__ import annotations

import io
import random
from dataclasses import asdict
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from rnnexp.errors import RunDirError
from rnnexp.files import atomic_write
from rnnexp.engine.loop import LoopState, Totals

CHECKPOINT, BEST = "checkpoint.pt", "best.pt"
FORMAT = 1  # bump when the payload changes incompatibly


def rng_states() -> dict[str, Any]:
    name, keys, pos, has_gauss, cached = np.random.get_state()
    states = {"torch": torch.get_rng_state(), "python": random.getstate(),
              "numpy": [name, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached]}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict[str, Any]) -> None:
    torch.set_rng_state(states["torch"])
    random.setstate(states["python"])
    name, keys, pos, has_gauss, cached = states["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def save_torch(path: Path, payload: dict[str, Any]) -> None:
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    atomic_write(path, lambda f: f.write(buffer.getvalue()))


def model_shape(run: Any) -> dict[str, Any]:
    """The config keys a checkpoint must agree on to be resumed (what the weights and data depend on)."""
    shape = {f"task.{k}": v for k, v in asdict(run.task).items() if k != "label" and not k.startswith("sample_")}
    for key in ("cell", "hidden_size", "num_layers", "embedding_size", "param_budget", "nonlinearity", "dropout"):
        shape[f"model.{key}"] = getattr(run.model, key)
    shape.update({"train.batch_size": run.train.batch_size, "train.seed": run.train.seed,
                  "train.optimizer": run.train.optimizer})
    return shape


def check_resume(run: Any) -> dict[str, Any]:
    """The checkpoint to resume `train.resume` from, after checking it fits this config."""
    run_dir = Path(run.train.resume).expanduser()
    if not run_dir.is_dir():
        raise RunDirError(f"train.resume={run_dir} is not a directory; give the run directory printed at its start")
    payload = load_payload(run_dir / CHECKPOINT)
    ours = model_shape(run)
    differ = sorted(k for k in set(ours) | set(payload["shape"]) if ours.get(k) != payload["shape"].get(k))
    if differ:
        pairs = ", ".join(f"{k}: {payload['shape'].get(k)!r} -> {ours.get(k)!r}" for k in differ)
        raise RunDirError(f"cannot resume {run_dir}: the config changes {pairs}; use the run's own settings "
                          f"(see {run_dir}/.hydra/config.yaml) or start a new run")
    loop = payload["loop"]
    limit = run.train.time_limit_minutes
    if (loop["epoch"] > run.train.epochs or (loop["target_epoch"] is not None and run.train.target_accuracy)
            or (limit is not None and loop["seconds"] >= limit * 60)):
        raise RunDirError(f"{run_dir} has already finished ({len(loop['history'])} epochs); to continue it, raise "
                          f"train.epochs or train.time_limit_minutes (or set train.target_accuracy=null if it "
                          f"reached its target)")
    return payload


def save_best(run_dir: Path, model: torch.nn.Module, epoch: int, shape: dict[str, Any],
              task_state: dict[str, Any], config: Any) -> None:
    save_torch(Path(run_dir) / BEST, {"format": FORMAT, "epoch": epoch, "shape": shape, "model": model.state_dict(),
                                      "hidden_size": model.rnn.hidden_size, "task": task_state, "config": config})


def save_checkpoint(run_dir: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    scheduler: Optional[Any], loop: LoopState, shape: dict[str, Any], train_cfg: Any) -> None:
    loop_dict = asdict(loop)
    loop_dict["carried"] = loop.carried  # keep tensors as tensors
    save_torch(Path(run_dir) / CHECKPOINT, {
        "format": FORMAT,
        "shape": shape,
        "optimizer_settings": optimizer_settings(train_cfg),
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": None if scheduler is None else scheduler.state_dict(),
        "loop": loop_dict,
        "rng": rng_states(),
    })


def load_payload(path: Path, what: str = "checkpoint") -> dict[str, Any]:
    """A checkpoint's contents, or a one-line RunDirError (missing, torn, another version)."""
    path = Path(path)
    if not path.is_file():
        raise RunDirError(f"{path} does not exist: no {what} in that run directory "
                          f"(was it started with this rnnexp, and did it finish an epoch?)")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)  # tensors and plain data only
    except Exception as err:  # torn or foreign file: torch raises many kinds
        raise RunDirError(f"{path} is not a readable {what} ({type(err).__name__}); it may be truncated "
                          f"or from another program; start a new run") from err
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        found = payload.get("format") if isinstance(payload, dict) else "unknown"
        raise RunDirError(f"{path} has checkpoint format {found}, this rnnexp reads format {FORMAT}; "
                          f"use the rnnexp version that wrote it or start a new run")
    return payload


def restore(payload: dict[str, Any], model: torch.nn.Module, optimizer: torch.optim.Optimizer,
            scheduler: Optional[Any], train_cfg: Any, device: torch.device) -> LoopState:
    """Load a checkpoint into model/optimizer/scheduler and the RNGs; the loop position to go on from.
    Optimizer settings given now (lr, momentum, weight decay) replace the checkpoint's where they differ."""
    model.load_state_dict(payload["model"])
    optimizer.load_state_dict(payload["optimizer"])
    for key, value in optimizer_settings(train_cfg).items():
        if payload["optimizer_settings"].get(key) != value:
            for group in optimizer.param_groups:
                if key in group:
                    group[key] = value
    if scheduler is not None and payload["scheduler"] is not None:
        scheduler.load_state_dict(payload["scheduler"])
    set_rng_states(payload["rng"])
    loop = dict(payload["loop"])
    loop["totals"] = Totals(**loop["totals"])
    carried = loop["carried"]
    if carried is not None:  # saved on the CPU; back to where the model is
        loop["carried"] = tuple(t.to(device) for t in carried) if isinstance(carried, (tuple, list)) else carried.to(device)
    return LoopState(**loop)


def optimizer_settings(train_cfg: Any) -> dict[str, float]:
    return {"lr": train_cfg.lr, "momentum": train_cfg.momentum, "weight_decay": train_cfg.weight_decay}
