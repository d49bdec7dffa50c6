"""Shared fixtures: configs composed through Hydra's compose API, runs executed in-process."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import torch
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra

# One torch thread per test process (and per xdist worker): on 2 cores, two threads per process
# make small-model loops 10-100x slower as soon as another process is busy.
torch.set_num_threads(1)
os.environ.setdefault("OMP_NUM_THREADS", "1")

REPO = Path(__file__).resolve().parents[1]
#: The options of the task and model groups, as `rnnexp --help` and Hydra's errors list them:
#: read from conf/, never a hand-kept list (a new task or model is new files only).
TASK_YAMLS = sorted((REPO / "conf" / "task").glob("*.yaml"))
MODEL_YAMLS = sorted((REPO / "conf" / "model").glob("*.yaml"))
SHAKESPEARE = REPO.parent / "shared" / "data" / "tinyshakespeare.txt"


def compose_config(*overrides: str):
    GlobalHydra.instance().clear()
    with initialize_config_module(config_module="rnnexp.conf", version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


@pytest.fixture
def compose_cfg():
    return compose_config


def run_in_process(tmp_path: Path, *overrides: str, name: str = "run") -> dict[str, Any]:
    """Compose, run, and return the run's results.json (the run directory is tmp_path/name)."""
    from rnnexp.run import run_experiment

    overrides = ("train.progress=lines", "train.threads=1", *overrides)
    cfg = compose_config(*overrides)
    run_dir = tmp_path / name
    run_dir.mkdir(parents=True, exist_ok=True)
    run_experiment(cfg, run_dir, overrides=overrides)
    return json.loads((run_dir / "results.json").read_text())


@pytest.fixture
def run_cfg():
    return run_in_process
