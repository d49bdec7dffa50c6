"""`rnnexp-sample`: text from a trained character model.

    rnnexp-sample run=outputs/runs/<date>/<time>_charlm_lstm prompt="ROMEO:" length=500 temperature=0.8

Loads `best.pt` from the run directory (the model with the lowest validation loss, its config and
its vocabulary) onto the CPU (or `device=cuda`), so a run trained on a GPU samples anywhere.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Optional

import hydra
import torch
from omegaconf import DictConfig, OmegaConf

from rnnexp.engine.checkpoint import BEST, load_payload
from rnnexp.config import ModelConfig, typed
from rnnexp.errors import ConfigError, Rejected, RnnexpError, RunDirError, require
from rnnexp.models.recurrent import RecurrentModel
from rnnexp.report.errors import run_reporting_errors
from rnnexp.models.generate import generate_text


def load_trained_model(run_dir: Path, device: torch.device) -> tuple[RecurrentModel, dict[str, Any]]:
    """The best model of a run and the payload it came with (config, task state)."""
    run_dir = Path(run_dir).expanduser()
    if not run_dir.is_dir():
        raise RunDirError(f"run={run_dir} is not a directory; give a run directory under outputs/")
    payload = load_payload(run_dir / BEST, what="trained model (best.pt)")
    model_cfg = typed(ModelConfig, OmegaConf.create(payload["config"]["model"]), "model")
    vocab = payload["task"].get("vocab")
    if not vocab:
        raise RunDirError(f"run={run_dir} is not a character-model run (task={payload['config']['task']['name']}); "
                          f"sample from a run of task=charlm")
    model = RecurrentModel(model_cfg.cell, 0, len(vocab), payload["hidden_size"], model_cfg.num_layers,
                           model_cfg.dropout, model_cfg.nonlinearity, len(vocab), model_cfg.embedding_size)
    model.load_state_dict(payload["model"])
    return model.to(device), payload


@hydra.main(version_base="1.3", config_path="pkg://rnnexp.conf", config_name="sample")
def sample_main(cfg: DictConfig) -> None:
    try:
        sample(cfg)
    except RnnexpError as err:
        raise Rejected(err) from err  # straight to main(), without Hydra's job report


@dataclass
class SampleConfig:
    run: str
    prompt: str
    length: int
    temperature: float
    top_k: Optional[int]
    seed: int
    device: str


def sample(node: DictConfig) -> None:
    cfg = typed(SampleConfig, node, "sample")
    require(cfg.length >= 0, "length", cfg.length, "use an integer >= 0")
    require(cfg.temperature > 0, "temperature", cfg.temperature, "use a temperature > 0")
    if cfg.top_k is not None:
        require(cfg.top_k >= 1, "top_k", cfg.top_k, "use an integer >= 1 or null")
    require(cfg.device in ("auto", "cpu") or cfg.device.startswith("cuda"), "device", cfg.device,
            "use auto, cpu or cuda")
    if cfg.device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device={cfg.device} but CUDA is not available here; use device=cpu")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu") if cfg.device == "auto" else torch.device(cfg.device)
    model, payload = load_trained_model(Path(hydra.utils.to_absolute_path(cfg.run)), device)
    text = generate_text(model, payload["task"]["vocab"], cfg.prompt, cfg.length, cfg.temperature, cfg.top_k,
                         cfg.seed, device)
    print(text)


def main() -> None:
    # `rnnexp-sample <run dir>` means run=<run dir>
    sys.argv[1:] = [f"run='{a}'" if "=" not in a and not a.startswith("-") and Path(a).is_dir() else a
                    for a in sys.argv[1:]]
    run_reporting_errors(sample_main, "rnnexp-sample", known_keys=[f.name for f in fields(SampleConfig)])
