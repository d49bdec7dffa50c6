"""Checkpoints: atomic save, exact resume from the run's own saved config.

`checkpoint.pt` holds everything to continue a run to the same last digit: the run's resolved
config (the source of truth on resume; today's `conf/` plays no part), model, optimizer,
scheduler, the best model so far, the task's state (a curriculum's stage), every RNG state and
the loop position (epoch, batch, carried hidden state, partial sums, history). Task data needs
no RNG state: each epoch's data comes from (seed, epoch). `best.pt` holds the best model (by
the task's validation objective) with its config and task state, for sampling and inspection.
"""

from __future__ import annotations

import io
import logging
import random
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from rnnexp.engine.callbacks import Callback
from rnnexp.errors import RunDirError
from rnnexp.files import atomic_write
from rnnexp.settings import RESUMABLE  # (what may differ on resume; any other key must equal the run's own)

CHECKPOINT, BEST = "checkpoint.pt", "best.pt"
FORMAT = 5  # bump when the payload changes incompatibly
#: 3: train.batches_per_epoch makes an epoch a window that goes on through the data; 4: data from
#: spawned streams and hash splits (older checkpoints load for sampling and inspection, never resume).
#: 5: model families (config keys model.family and model.label; best.pt holds "model_size"); a
#: format-4 checkpoint still resumes, its config read as today's (`with_added_keys`).
READS = (2, 3, 4, 5)
RESUMES = (4, 5)
#: Keys renamed since runs were saved with the old name.
RENAMED_KEYS = {"task.data_seed": "task.heldout_seed"}

#: Keys added after runs were saved without them: the value that trains as those runs did
#: (cuda_graph changes how a GPU step is launched, not what it computes).
ADDED_KEYS = {"train.precision": "fp32", "train.cuda_graph": "auto", "train.divergence_factor": 10.0,
              "train.overwrite": False, "train.init_from": None, "train.pack_seeds": "off",
              "model.family": "recurrent"}  # (every model was recurrent before families)
#: Model keys added later, by family.
ADDED_MODEL_KEYS = {"recurrent": {"model.input_dropout": 0.0, "model.weight_drop": 0.0, "model.tie_weights": False}}
#: Task keys added later, by task: the value that reads an old run's data as it was.
ADDED_TASK_KEYS = {"qrsu": {"task.padding": "left"}}
#: Keys a schema still has that no longer apply to some saved runs (dropped with the note).
RETIRED_WHEN = {"model.nonlinearity": lambda saved: saved.model.get("cell") not in (None, "rnn")}  # gated cells
#: A group given again on resume is compared by the option it names, not by today's YAML of it.
#: (model=gru: its family and cell, whatever today's conf/model/gru.yaml says)
GROUP_OPTION = {"task": ("task.name",), "model": ("model.family", "model.cell")}
#: Groups that only select other config; on resume the run's own config stands in for them.
PRESET_GROUPS = ("experiment", "hparams_search")


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


#: Instructions for the start of a run, not settings of it: never saved with the run (a resume
#: takes them from its own command line).
INSTRUCTIONS = ("overwrite",)


def plain_config(cfg: DictConfig) -> dict[str, Any]:
    """The run's resolved task/model/train config as plain data (what checkpoints and results.json keep)."""
    plain = {k: OmegaConf.to_container(cfg[k], resolve=True) for k in ("task", "model", "train")}
    for key in INSTRUCTIONS:
        plain["train"].pop(key, None)  # type: ignore[union-attr]
    return plain


# -- resume ------------------------------------------------------------------------------------
def resume_config(cfg: DictConfig, overrides: list[str], run_dir: Path) -> tuple[DictConfig, dict[str, Any]]:
    """The config to resume `run_dir` with: its own saved config, with the command line's
    RESUMABLE keys applied. Any other key given on the command line must equal the run's own,
    else the resume is refused, naming the keys. Returns (config, checkpoint payload)."""
    if not run_dir.is_dir():
        raise RunDirError(f"train.resume={run_dir} is not a directory; give the run directory printed at its start")
    payload = load_payload(run_dir / CHECKPOINT)
    saved = with_added_keys(OmegaConf.create(payload["config"]))
    if payload["format"] not in RESUMES:
        raise RunDirError(f"cannot resume {run_dir}: its checkpoint (format {payload['format']}) was written by an "
                          f"older rnnexp whose training and held-out data came from other random streams, so it would "
                          f"not continue the same run; start a new run (its best.pt still works with "
                          f"rnnexp-sample and rnnexp-inspect)")
    differ = []
    for override in overrides:
        key = override.split("=", 1)[0].lstrip("+~")
        if override.startswith("~"):
            differ.append(f"{key} (deleted)")
            continue
        if "=" not in override or key.startswith("hydra") or key in PRESET_GROUPS or key == "train":
            continue
        for key in GROUP_OPTION.get(key, (key,)):
            given = OmegaConf.select(cfg, key, default=None)
            if key in RESUMABLE:
                OmegaConf.update(saved, key, given, force_add=True)
                continue
            given = OmegaConf.to_container(given, resolve=True) if isinstance(given, DictConfig) else given
            own = OmegaConf.select(saved, key, default=None)
            own = OmegaConf.to_container(own) if isinstance(own, DictConfig) else own
            if given != own:
                differ.append(f"{key}: {own!r} -> {given!r}" if not isinstance(own, dict) else f"{key} (its settings)")
    if differ:
        raise RunDirError(f"cannot resume {run_dir}: the command line changes {'; '.join(differ)}; a resume uses the "
                          f"run's own config and may change only {', '.join(RESUMABLE[:-1])}; start a new run instead")
    return saved, payload


def with_added_keys(saved: DictConfig) -> DictConfig:
    """A saved config as today's schemas read it: the keys added (or renamed) since it was saved,
    at the values it trained with, and the keys that no longer apply dropped, with one note."""
    for old, new in RENAMED_KEYS.items():
        section, _, name = old.partition(".")
        node = saved.get(section)
        if node is not None and name in node:
            OmegaConf.update(saved, new, node.pop(name), force_add=True)
    family = OmegaConf.select(saved, "model.family", default="recurrent")
    added = {**ADDED_KEYS, **ADDED_MODEL_KEYS.get(str(family), {}),
             **ADDED_TASK_KEYS.get(str(OmegaConf.select(saved, "task.name", default="")), {})}
    for key, value in added.items():
        section, _, name = key.partition(".")
        if section in saved and name not in saved[section]:  # (a saved null stays null)
            OmegaConf.update(saved, key, value, force_add=True)
    if "model" in saved and "label" not in saved.model and "cell" in saved.model:
        OmegaConf.update(saved, "model.label", saved.model.cell, force_add=True)  # what named its run directory
    return drop_retired_keys(saved)


def drop_retired_keys(saved: DictConfig) -> DictConfig:
    """Remove the keys today's schema of the run's task, model family and training loop does not
    know (a key retired since the run was saved), with one note naming them."""
    from dataclasses import fields

    from rnnexp.config import TrainConfig
    from rnnexp.errors import RnnexpError
    from rnnexp.models.family import family_class
    from rnnexp.tasks import task_class

    try:
        schemas = {"task": task_class(OmegaConf.select(saved, "task.name")).Config,
                   "model": family_class(OmegaConf.select(saved, "model.family")).Config, "train": TrainConfig}
    except RnnexpError:
        return saved  # an unknown task or family: loading the config says so in one line
    dropped = []
    for section, schema in schemas.items():
        known = {f.name for f in fields(schema)}
        retired = [k for k in saved.get(section, {})
                   if k not in known or (f"{section}.{k}" in RETIRED_WHEN and RETIRED_WHEN[f"{section}.{k}"](saved))]
        for key in retired:
            saved[section].pop(key)
            dropped.append(f"{section}.{key}")
    if dropped and tuple(dropped) not in _NOTED:  # one note, however often the config is read
        _NOTED.add(tuple(dropped))
        logging.getLogger("rnnexp").info(f"note: this run was saved with keys that no longer apply; dropped "
                                         f"{', '.join(dropped)}")
    return saved


_NOTED: set[tuple[str, ...]] = set()


def alone_refused(run_dir: Path, payload: dict[str, Any]) -> str:
    """Why one seed of a packed group does not resume alone, and the commands that resume it."""
    group = payload["packed_with"]
    others = ", ".join(d for d in group["dirs"] if d not in (None, Path(run_dir).name))
    return (f"cannot resume {run_dir} alone: it trained packed into one model with {others} of its sweep; "
            f"resume the group exactly with the sweep's command: {group.get('resume') or 'rnnexp -m ... train.resume=auto'}, "
            f"or add train.pack_seeds=off to go on with this seed alone (close to, not bit for bit, the group)")


def done_in_group(run_dir: Path) -> bool:
    """Whether a packed seed had finished in its group (completed or diverged): trained on alone, it
    has no group to keep up with."""
    import json

    try:
        return json.loads((Path(run_dir) / "results.json").read_text()).get("status") in ("completed", "diverged")
    except (OSError, ValueError, AttributeError):
        return False


def check_not_finished(run: Any, payload: dict[str, Any], run_dir: Path) -> None:
    loop = payload["loop"]
    limit = run.train.time_limit_minutes
    if (loop["epoch"] > run.train.epochs or (loop["target_epoch"] is not None and run.train.target_accuracy)
            or (limit is not None and loop["seconds"] >= limit * 60)):
        reached = " or set train.target_accuracy=null (it reached its target)" if loop["target_epoch"] else ""
        raise RunDirError(f"{run_dir} has already finished ({len(loop['history'])} epochs); to continue it, raise "
                          f"train.epochs or train.time_limit_minutes{reached}")


# -- save and restore --------------------------------------------------------------------------
def save_checkpoint(run_dir: Path, engine: Any, config: dict[str, Any], model_size: dict[str, int],
                    packed_with: Optional[dict[str, Any]] = None) -> None:
    """`packed_with`: the group of seeds this one trained packed with (it resumes only with them)."""
    loop = asdict(engine.state)
    loop["carried"] = engine.state.carried  # keep tensors as tensors
    save_torch(Path(run_dir) / CHECKPOINT, {
        "format": FORMAT, "config": config, "model_size": model_size,
        "model": engine.model.state_dict(), "best_model": engine.best_model,
        "optimizer": engine.optimizer.state_dict(),
        "scheduler": None if engine.scheduler is None else engine.scheduler.state_dict(),
        "task": engine.task.state_dict(), "loop": loop, "rng": rng_states(),
        **({"packed_with": packed_with} if packed_with else {}),
    })


def save_best(run_dir: Path, engine: Any, config: dict[str, Any], model_size: dict[str, int]) -> None:
    """best.pt: the best model's weights with what rebuilds it: the config and its resolved size
    (the family's `size`, e.g. {"hidden_size": 8}; a budget's choice need not be searched again)."""
    save_torch(Path(run_dir) / BEST, {
        "format": FORMAT, "config": config, "epoch": engine.state.best_epoch,
        "model": engine.best_model if engine.best_model is not None else engine.model.state_dict(),
        "model_size": model_size, "task": engine.task.state_dict(),
    })


def restore(payload: dict[str, Any], engine: Any) -> None:
    """Load a checkpoint into the engine (model, optimizer, scheduler, best model, task, RNGs, position)."""
    from rnnexp.engine.loop import LoopState

    engine.model.load_state_dict(payload["model"])
    # The implementation flags (fused, foreach, capturable) are this device's, not the saved run's:
    # a CPU run resumed on a GPU steps with the GPU's capturable kernels.
    implementation = [{k: g.get(k) for k in ("fused", "foreach", "capturable") if k in g}
                      for g in engine.optimizer.param_groups]
    engine.optimizer.load_state_dict(payload["optimizer"])
    for group, flags in zip(engine.optimizer.param_groups, implementation):
        group.update(flags)
        # Step counts where this implementation keeps them: beside the parameters when capturable
        # or fused, on the CPU otherwise.
        on_device = group.get("capturable") or group.get("fused")
        for param in group["params"]:
            state = engine.optimizer.state.get(param, {})
            if torch.is_tensor(state.get("step")):
                state["step"] = state["step"].to(param.device if on_device else "cpu", torch.float32)
    if engine.scheduler is not None and payload["scheduler"] is not None:
        engine.scheduler.load_state_dict(payload["scheduler"])
    engine.best_model = payload["best_model"]
    engine.task.load_state_dict(payload["task"])
    set_rng_states(payload["rng"])
    loop = dict(payload["loop"])
    carried = loop["carried"]
    if carried is not None:  # saved on the CPU; back to where the model is
        loop["carried"] = (tuple(t.to(engine.device) for t in carried) if isinstance(carried, (tuple, list))
                           else carried.to(engine.device))
    engine.state = LoopState(**loop)


def load_payload(path: Path, what: str = "checkpoint") -> dict[str, Any]:
    """A checkpoint's contents, or a one-line RunDirError (missing, torn, another version)."""
    path = Path(path)
    if not path.is_file():
        raise RunDirError(f"{path} does not exist: no {what} in that run directory (was it started with this "
                          f"rnnexp, and did it write a checkpoint: at its end, on Ctrl-C, or train.checkpoint_minutes "
                          f"after its start?)")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)  # tensors and plain data only
    except Exception as err:  # torn or foreign file: torch raises many kinds
        raise RunDirError(f"{path} is not a readable {what} ({type(err).__name__}); it may be truncated "
                          f"or from another program; start a new run") from err
    if not isinstance(payload, dict) or payload.get("format") not in READS:
        found = payload.get("format") if isinstance(payload, dict) else "unknown"
        raise RunDirError(f"{path} has checkpoint format {found}, this rnnexp reads format {FORMAT}; "
                          f"use the rnnexp version that wrote it or start a new run")
    return payload


class Checkpoints(Callback):
    """A callback: `checkpoint.pt` at the first epoch end `minutes` after the last one (0: every
    epoch), at the end and on a stop; `best.pt` with it whenever the best model changed. Checkpoints
    are cheap by default (a 2-second run writes one at its end), yet a killed run loses at most
    `minutes` of training plus an epoch."""

    def __init__(self, run_dir: Path, config: dict[str, Any], minutes: float, model_size: dict[str, int],
                 packed_with: Optional[dict[str, Any]] = None):
        self.run_dir, self.config, self.seconds = Path(run_dir), config, minutes * 60
        self.model_size, self.packed_with = model_size, packed_with
        self.saved_at, self.saved_step, self.best_written = 0.0, -1, None

    def save(self, engine: Any) -> None:
        position = (engine.state.epoch, engine.state.global_step)
        if position == self.saved_step:
            return
        if engine.state.best_epoch != self.best_written:  # first, so a checkpoint never names a newer best
            save_best(self.run_dir, engine, self.config, self.model_size)
            self.best_written = engine.state.best_epoch
        save_checkpoint(self.run_dir, engine, self.config, self.model_size, self.packed_with)
        self.saved_at, self.saved_step = time.monotonic(), position

    def on_fit_start(self, engine: Any) -> None:
        self.saved_at = time.monotonic()
        self.best_written = engine.state.best_epoch  # a resumed run's best.pt is already on disk

    def on_epoch_end(self, engine: Any, metrics: dict[str, float]) -> None:
        if time.monotonic() - self.saved_at >= self.seconds:
            self.save(engine)

    def on_interrupt(self, engine: Any) -> None:
        self.save(engine)

    def on_fit_end(self, engine: Any) -> None:
        self.save(engine)
