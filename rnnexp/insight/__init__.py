"""See inside the network: the hidden (and cell) states, the gates and the gradients through time
of one example, replayed step by step with the model's own weights (`rnnexp.models.replay`).

    look(model, task, example)            -> Insight (replay, gradient norms, labels)
    draw_figures(insight)                 -> {"states": Figure, "gradients_through_time": ..., "gates": ...}
    units_report(insight)                 -> (HTML page, [(property, unit, r)])  (character models)
    inspect(model, task, example, out_dir) -> the files written: states.png,
                                             gradients_through_time.png, gates.png (LSTM/GRU),
                                             units.html (character models)

`InsightCallback` (rnnexp.insight.callback) draws the same pictures during training. matplotlib
is imported only when a figure is drawn (rnnexp.insight.figures).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

if TYPE_CHECKING:  # (torch is imported where it is used: the drawing process imports this package without it)
    import torch
    from torch import nn

    from rnnexp.models.replay import Replay

from rnnexp.insight.drawing import FILES  # noqa: E402,F401  (the picture files)

UNITS_FILE = "units.html"


@dataclass
class Insight:
    replay: Replay              # per layer: h, c (LSTM), gates; outputs (graph kept: detach to use)
    gradients: torch.Tensor     # (T,) norm of d loss / d h_t of the last layer
    labels: list[str]           # what the network read at each step
    readout_at_end: bool        # many-to-one: the loss is read at the last step only
    character_model: bool       # the task has a vocabulary: units.html makes sense


def model_device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def look(model: nn.Module, task: Any, example: Any) -> Insight:
    """Replay `example` (a batch of one, fresh state) through `model` and take the gradients of
    `task.score(...).loss` with respect to every step's hidden state. Leaves the model's mode,
    weights and `.grad`s as they are; uses no random numbers."""
    from rnnexp.models.replay import replay_with_gradients

    batch, scored_by, labels = task.replay_view(example) if hasattr(task, "replay_view") else (
        example.batch, task, example.labels)
    rep, gradients = replay_with_gradients(model, scored_by, batch.to(model_device(model)))
    labels = [str(label) for label in labels]
    steps = rep.outputs.shape[1]
    if len(labels) != steps:  # a label per step is the contract; keep the figures drawable anyway
        labels = (labels + [""] * steps)[:steps]
    return Insight(rep, gradients, labels, readout_at_end=not getattr(task, "streaming", False),
                   character_model=getattr(task, "vocab_size", 0) > 0)


def draw_figures(insight: Insight, title: Optional[str] = None) -> dict[str, Any]:
    """name -> matplotlib Figure: "states", "gradients_through_time" and, for an LSTM or a GRU,
    "gates"."""
    from rnnexp.insight.drawing import draw

    return draw(_Drawn(insight), title)


class _Drawn:
    """An Insight as the pictures read it (rnnexp.insight.drawing.Pictured): its replay's cell and
    layers, its gradients and labels."""

    def __init__(self, insight: Insight):
        self.cell, self.layers = insight.replay.cell, insight.replay.layers
        self.gradients, self.labels, self.readout_at_end = insight.gradients, insight.labels, insight.readout_at_end


def unit_states(rep: Replay, sample: int = 0) -> tuple[torch.Tensor, list[str]]:
    """(T, units) every layer's h (and c for an LSTM) side by side, and the units' names."""
    import torch

    columns, names = [], []
    several = len(rep.layers) > 1
    for k, layer in enumerate(rep.layers):
        for kind, values in (("h", layer.h), ("c", layer.c)):
            if values is None:
                continue
            columns.append(values[sample].detach())
            prefix = f"layer {k + 1} {kind}" if several else kind
            names += [f"{prefix} {u}" for u in range(values.shape[-1])]
    return torch.cat(columns, dim=-1), names


def units_report(insight: Insight, title: str = "Which unit tracks what") -> tuple[str, list[tuple[str, int, float]]]:
    """The units page of a character model: for each property of the passage (the example's
    characters), the unit that follows it best."""
    from rnnexp.insight.units import units_page

    states, names = unit_states(insight.replay)
    return units_page(insight.labels, states, names, title=title)


def units_markdown(found: list[tuple[str, int, float]], names: list[str]) -> str:
    rows = ["| property | unit | r |", "|---|---|---|"]
    rows += [f"| {name} | {names[unit]} | {r:+.3f} |" for name, unit, r in found]
    return "\n".join(rows)


def inspect(model: nn.Module, task: Any, example: Any, out_dir: Path | str,
            title: Optional[str] = None) -> list[Path]:
    """Write the pictures of one example into `out_dir`; returns the files written."""
    from rnnexp.insight.figures import save_png

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    insight = look(model, task, example)
    written = [save_png(fig, out / FILES[name]) for name, fig in draw_figures(insight, title).items()]
    if insight.character_model:
        page, _ = units_report(insight)
        path = out / UNITS_FILE
        path.write_text(page, encoding="utf-8")
        written.append(path)
    return written
