"""A warm start, `train.init_from=<run dir>`: a new run from another run's best model.

    rnnexp task=qrsu task.difficulty=hard train.init_from=outputs/runs/2026-12-07/10-00-00_qrsu-easy_lstm

The new run takes the source's weights (its best.pt) and its model keys, and starts with a fresh
optimizer, schedule and loop; everything else (task, training) is its own. A `model.*` or `model=`
given on the command line that differs from the source's is refused by name: the weights decide
the model. A character model keeps the source's vocabulary (rnnexp.tasks.charlm). results.json
records the source (`init_from`). A warm-started run resumes like any other (its checkpoint
holds its own weights); with train.resume it is refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from omegaconf import DictConfig, OmegaConf

from rnnexp.errors import ConfigError


def source_config(cfg: DictConfig, overrides: list[str]) -> tuple[DictConfig, Optional[dict[str, Any]]]:
    """(the config with the source run's model section, the source's best.pt), or (cfg, None)."""
    init_from = OmegaConf.select(cfg, "train.init_from")
    if not init_from:
        return cfg, None
    from rnnexp.engine.checkpoint import GROUP_OPTION, with_added_keys
    from rnnexp.models.load import load_best

    payload = load_best(Path(str(init_from)), key="train.init_from")
    source = with_added_keys(OmegaConf.create(payload["config"]))
    conflicts = []
    for override in overrides:
        key = override.split("=", 1)[0].lstrip("+~")
        if key != "model" and not key.startswith("model."):
            continue
        for name in GROUP_OPTION.get(key, (key,)):
            given, own = OmegaConf.select(cfg, name, default=None), OmegaConf.select(source, name, default=None)
            if given != own:
                conflicts.append(f"{name}={given} (the source's: {own})")
    if conflicts:
        raise ConfigError(f"train.init_from={init_from} takes the model from that run; the command line changes "
                          f"{', '.join(conflicts)}; remove those keys")
    cfg = cfg.copy()
    cfg.model = source.model
    return cfg, payload


def load_weights(model: Any, payload: dict[str, Any], task_name: str) -> None:
    """The source's best weights into `model` (built with the source's size for this task)."""
    try:
        model.load_state_dict(payload["model"])
    except RuntimeError as err:
        first = str(err).strip().splitlines()[-1].strip()
        raise ConfigError(f"train.init_from: the source run's model does not fit task={task_name} ({first}); "
                          f"warm-start from a run of a task with the same inputs and outputs") from err


def record(payload: dict[str, Any], init_from: str) -> dict[str, Any]:
    """What results.json says of the source."""
    return {"run": str(Path(init_from).expanduser().resolve()), "epoch": payload.get("epoch"),
            "model_size": payload.get("model_size") or {"hidden_size": payload.get("hidden_size")}}
