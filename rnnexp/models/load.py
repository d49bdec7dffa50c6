"""Loading a finished run's best model (`best.pt`): shared by `rnnexp-sample` and `rnnexp-inspect`."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Optional

import torch
from omegaconf import OmegaConf

from rnnexp.config import typed
from rnnexp.engine.checkpoint import BEST, load_payload, with_added_keys
from rnnexp.errors import RunDirError
from rnnexp.models.family import family_class


def load_best(run_dir: Path, key: str = "run") -> dict[str, Any]:
    """The payload of a run's best.pt (config, weights, task state), or a one-line RunDirError."""
    run_dir = Path(run_dir).expanduser()
    if not run_dir.is_dir():
        raise RunDirError(f"{key}={run_dir} is not a directory; give a run directory under outputs/")
    return load_payload(run_dir / BEST, what="trained model (best.pt)")


def model_from_payload(payload: dict[str, Any], task: Optional[Any], device: torch.device) -> torch.nn.Module:
    """The best model, rebuilt with the run's own model config for `task` (or, for a character
    model without its corpus at hand, for the vocabulary saved with it) and its weights loaded."""
    saved = with_added_keys(OmegaConf.create(payload["config"]))
    family_cls = family_class(saved.model.family)
    model_cfg = typed(family_cls.Config, saved.model, "model")
    if hasattr(model_cfg, "init"):
        model_cfg = replace(model_cfg, init="default")  # the weights are loaded: no need to draw an initialisation
    size = payload.get("model_size") or {"hidden_size": payload["hidden_size"]}  # (best.pt before model families)
    if task is None:
        vocab = payload["task"].get("vocab") or ""
        task = SimpleNamespace(input_size=0, num_classes=len(vocab), vocab_size=len(vocab), max_lag=lambda: None,
                               max_length=lambda: None)
    model = family_cls(model_cfg).build(task, size)
    model.load_state_dict(payload["model"])
    return model.to(device).eval()
