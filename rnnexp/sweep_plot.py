"""The sweep picture: the final metric against the swept parameter, one line per model.

For echo that is accuracy against delay (the lecture's "memory interval" picture); for QRSU a
second panel shows the epochs to reach the target per difficulty. Saved as summary.png and logged
to TensorBoard (`summary/` run) in the sweep directory.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any, Optional

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ORDER = {"easy": 0, "normal": 1, "moderate": 2, "hard": 3, "nightmare": 4}
LINE_KEYS = ("model", "model.cell")
IGNORED = ("train.seed", "experiment", "hparams_search")


def swept_axis(rows: list[dict[str, Any]]) -> Optional[str]:
    """The swept parameter for the x axis: the first with several values that is not the model/seed."""
    keys: dict[str, set[str]] = {}
    for row in rows:
        for key, value in row["params"].items():
            keys.setdefault(key, set()).add(value)
    candidates = [k for k, v in keys.items() if len(v) > 1 and k not in LINE_KEYS + IGNORED]
    numeric = [k for k in candidates if all(_is_number(v) for v in keys[k])]
    return (numeric or candidates or [None])[0]


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def _x_order(value: str) -> Any:
    return float(value) if _is_number(value) else ORDER.get(value, 100 + hash(value) % 100)


def plot_sweep(root: Path, rows: list[dict[str, Any]]) -> Optional[Path]:
    axis = swept_axis(rows)
    done = [r for r in rows if r["status"] == "completed" and r["objective"] is not None]
    by_model = axis is None  # only the model was swept: the models are the x axis, one line
    if by_model:
        axis = "model"
        for row in done:
            row["params"].setdefault("model", row["cell"] or "?")
    if not done:
        return None
    show_epochs = any(r["target_epoch"] is not None for r in done)
    fig, axes = plt.subplots(1, 2 if show_epochs else 1, figsize=(11 if show_epochs else 6, 4), squeeze=False)
    lines: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for row in done:
        line = "runs" if by_model else next((row["params"][k] for k in LINE_KEYS if k in row["params"]),
                                            row["cell"] or "run")
        lines.setdefault(line, {}).setdefault(row["params"].get(axis, "?"), []).append(row)
    metric = done[0]["objective_name"]
    for line, points in sorted(lines.items()):
        xs = sorted(points, key=_x_order)
        labels = [float(x) if _is_number(x) else x for x in xs]
        ys = [statistics.fmean(r["objective"] for r in points[x]) for x in xs]
        errs = [statistics.pstdev([r["objective"] for r in points[x]]) for x in xs]
        axes[0][0].errorbar(labels, ys, yerr=errs, marker="o", capsize=3, label=line)
        if show_epochs:
            eps = [statistics.fmean([r["target_epoch"] for r in points[x] if r["target_epoch"] is not None])
                   if any(r["target_epoch"] is not None for r in points[x]) else float("nan") for x in xs]
            axes[0][1].plot(labels, eps, marker="s", label=line)
    axes[0][0].set(xlabel=axis, ylabel=f"{metric} (best; mean over seeds)", title=f"{metric} vs {axis}")
    axes[0][0].legend()
    axes[0][0].grid(alpha=0.3)
    if show_epochs:
        axes[0][1].set(xlabel=axis, ylabel="epochs to target (runs that reached it)", title="epochs to target")
        axes[0][1].legend()
        axes[0][1].grid(alpha=0.3)
    fig.tight_layout()
    path = root / "summary.png"
    fig.savefig(path, dpi=110)
    from torch.utils.tensorboard import SummaryWriter

    with SummaryWriter(log_dir=str(root / "summary")) as writer:
        writer.add_figure("summary/sweep", fig, close=False)
    plt.close(fig)
    return path
