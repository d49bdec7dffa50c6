"""Building the model for a task from the validated `model` config, whatever its family
(rnnexp.models.family): scripts and tests build one in a line."""

from __future__ import annotations

from typing import Any

from torch import nn

from rnnexp.models.family import model_family


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def build_model(model_cfg: Any, task: Any) -> nn.Module:
    """The model for `task`, at the size its config (or parameter budget) gives."""
    family = model_family(model_cfg)
    return family.build(task, family.size(task))
