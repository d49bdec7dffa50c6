"""`rnnexp-sample`: text from a trained character model.

    rnnexp-sample run=outputs/runs/<date>/<time>_charlm_lstm prompt="ROMEO:" length=500 temperature=0.8

Loads `best.pt` from the run directory (the model with the lowest validation loss, its config and
its vocabulary) onto the CPU (or `device=cuda`), so a run trained on a GPU samples anywhere.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Optional

import hydra
import torch
from omegaconf import DictConfig

from rnnexp.argv import SAMPLE_FREE_TEXT, quote_free_text
from rnnexp.config import typed
from rnnexp.errors import ConfigError, Rejected, RnnexpError, RunDirError, require
from rnnexp.models.generate import generate_text
from rnnexp.models.load import load_best, model_from_payload
from rnnexp.report.errors import run_reporting_errors


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
    run_dir = Path(hydra.utils.to_absolute_path(cfg.run))
    payload = load_best(run_dir)
    if not payload["task"].get("vocab"):
        raise RunDirError(f"run={run_dir} is not a character-model run (task={payload['config']['task']['name']}); "
                          f"sample from a run of task=charlm")
    model = model_from_payload(payload, None, device)
    text = generate_text(model, payload["task"]["vocab"], cfg.prompt, cfg.length, cfg.temperature, cfg.top_k,
                         cfg.seed, device)
    print(text)


def main() -> None:
    # `rnnexp-sample <run dir>` means run=<run dir>
    argv = [f"run={a}" if "=" not in a and not a.startswith("-") and Path(a).is_dir() else a for a in sys.argv[1:]]

    def entry() -> None:
        sys.argv[1:] = quote_free_text(argv, SAMPLE_FREE_TEXT)  # prompts and paths work as typed
        sample_main()

    run_reporting_errors(entry, "rnnexp-sample", known_keys=[f.name for f in fields(SampleConfig)])
