"""The sweep picture: the objective (best value per job) against the swept parameter, one line per
combination of the other swept parameters (model first), averaged over seeds with their spread.

For echo that is accuracy against delay, one line per model and width (the lecture's "memory
interval" picture); for QRSU the difficulty is the x axis and a second panel shows the epochs to
reach the target. Saved as summary.png and logged to TensorBoard (`summary/` run).
"""

from __future__ import annotations

import shutil
import statistics
from pathlib import Path
from typing import Any, Optional

from rnnexp.sweep.stats import group_stats

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ORDER = {"easy": 0, "normal": 1, "moderate": 2, "hard": 3, "nightmare": 4}
PREFERRED_AXES = ("task.delay", "task.difficulty", "model.hidden_size", "model.param_budget")
IGNORED = ("train.seed", "experiment", "hparams_search")


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def swept_values(rows: list[dict[str, Any]]) -> dict[str, list[str]]:
    """Swept parameters (several values) with their values in the order first seen."""
    seen: dict[str, list[str]] = {}
    for row in rows:
        for key, value in row["params"].items():
            if key not in IGNORED and value not in seen.setdefault(key, []):
                seen[key].append(value)
    return {k: v for k, v in seen.items() if len(v) > 1}


def swept_axis(swept: dict[str, list[str]]) -> Optional[str]:
    for key in PREFERRED_AXES:
        if key in swept:
            return key
    numeric = [k for k, v in swept.items() if k not in ("model", "model.cell") and all(map(_is_number, v))]
    others = [k for k in swept if k not in ("model", "model.cell")]
    return (numeric or others or [k for k in swept] or [None])[0]


def ordered(values: list[str]) -> list[str]:
    if all(map(_is_number, values)):
        return sorted(values, key=float)
    return sorted(values, key=lambda v: ORDER.get(v, 100 + values.index(v)))


def plot_sweep(root: Path, rows: list[dict[str, Any]]) -> Optional[Path]:
    done = [r for r in rows if r["status"] == "completed" and r["objective"] is not None]
    swept = swept_values(done)
    axis = swept_axis(swept)
    if axis is None or not done:
        return None
    xs = ordered(swept[axis])
    line_keys = [k for k in swept if k != axis]
    show_epochs = any(r["target_epoch"] is not None for r in done)
    fig, axes = plt.subplots(1, 2 if show_epochs else 1, figsize=(11 if show_epochs else 6.5, 4.2), squeeze=False)
    lines: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for row in done:
        name = " ".join(f"{k.split('.')[-1]}={row['params'].get(k)}" for k in line_keys) or "runs"
        lines.setdefault(name, {}).setdefault(row["params"].get(axis, "?"), []).append(row)
    positions = {x: i for i, x in enumerate(xs)}
    for name, points in lines.items():
        present = [x for x in xs if x in points]
        where = [positions[x] for x in present]
        stats = [group_stats(points[x]) for x in present]  # (the summary's own rules: completed runs)
        ys = [st["mean"] for st in stats]
        errs = [st["std"] or 0.0 for st in stats]  # one run: no bar
        axes[0][0].errorbar(where, ys, yerr=errs, marker="o", capsize=3, label=name)
        if show_epochs:
            eps = [statistics.fmean(e) if (e := [r["target_epoch"] for r in points[x] if r["target_epoch"]])
                   else float("nan") for x in present]
            axes[0][1].plot(where, eps, marker="s", label=name)
    metric = done[0]["objective_name"]
    titles = [(f"{metric} (best per job; mean ± sd over completed seeds)", f"{metric} vs {axis}")]
    if show_epochs:
        titles.append(("epochs to target (runs that reached it)", "epochs to target"))
    for ax, (ylabel, title) in zip(axes[0], titles):
        ax.set(xlabel=axis, ylabel=ylabel, title=title)
        ax.set_xticks(range(len(xs)), xs)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    path = root / "summary.png"
    fig.savefig(path, dpi=110)
    from torch.utils.tensorboard import SummaryWriter

    shutil.rmtree(root / "summary", ignore_errors=True)  # one figure, however often it is summarised
    with SummaryWriter(log_dir=str(root / "summary")) as writer:
        writer.add_figure("summary/sweep", fig, close=False)
    plt.close(fig)
    return path
