"""A study in TensorBoard: each group's validation curve across its seeds, as TensorBoard's own
margin charts (the custom-scalars plugin), beside the jobs' own runs.

    tensorboard --logdir outputs/multirun/2026-12-07/15-05-44      (tab CUSTOM SCALARS: "across seeds")

One run per group, `across-seeds/<group>`, with the scalars `across_seeds/<metric>/mean`,
`.../lower` and `.../upper` (mean ± sd over its seeds; a seed that stopped early carried at its
last value) at every epoch; the layout draws them as one margin chart, a band per group. The sweep
picture goes to the first group's run as an image, so every run in the list holds scalars.
"""

from __future__ import annotations

import re
import shutil
import statistics
from pathlib import Path
from typing import Any

from rnnexp.sweep.answer import Answer

FOLDER = "across-seeds"  # (not N_...: no sweep job's name)


def run_name(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=,-]+", "_", label)


def write_across_seeds(root: Path, curves: dict[str, list[list[float]]], answer: Answer, figure: Any) -> list[Path]:
    """The runs of `curves` (group label -> one validation curve per seed); returns their folders."""
    from torch.utils.tensorboard import SummaryWriter

    shutil.rmtree(root / FOLDER, ignore_errors=True)  # the same runs, however often it is summarised
    shutil.rmtree(root / "summary", ignore_errors=True)  # (where an earlier rnnexp put the picture alone)
    name = "val/" + answer.metric.split("/", 1)[1]
    tags = [f"across_seeds/{name}/{part}" for part in ("mean", "lower", "upper")]
    layout = {"across seeds": {f"{name}: mean ± sd over seeds, per group": ["Margin", tags]}}
    written = []
    for i, (label, seeds) in enumerate(curves.items()):
        folder = root / FOLDER / run_name(label)
        longest = max(map(len, seeds))
        carried = [s + [s[-1]] * (longest - len(s)) for s in seeds]
        with SummaryWriter(log_dir=str(folder)) as writer:
            writer.add_custom_scalars(layout)
            for epoch, column in enumerate(zip(*carried), start=1):
                mean = statistics.fmean(column)
                sd = statistics.stdev(column) if len(column) > 1 else 0.0
                for tag, value in zip(tags, (mean, mean - sd, mean + sd)):
                    writer.add_scalar(tag, value, epoch)
            if i == 0 and figure is not None:
                writer.add_figure("summary/sweep", figure, close=False)
        written.append(folder)
    return written
