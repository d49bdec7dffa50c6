"""The sweep picture, ready for a slide: the study's answer (rnnexp.sweep.answer) and how the
groups learned.

Left: the answer's metric on held-out data per group. Categorical groups (cells, inits) are a mean
with its 95% interval and one dot per seed, never joined by lines; a numeric sweep (delay, length,
hidden size, parameter budget, QRSU's difficulty in its order) is a line per combination of the
other keys with its interval as a band. The baseline (a model that learned nothing) is a dashed
line, and the axis always includes it. Right: each group's validation curve against epochs, the
mean across seeds with a band of ± sd; a seed that stopped early (its target, a time limit) is
carried forward at its last value, drawn dashed. 16:9, fonts of 13 pt, summary.png (200 dpi) and
summary.svg; the curves and the figure also go to TensorBoard (rnnexp.sweep.across_seeds).
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Any, Optional

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from rnnexp.sweep.answer import RANGES, Answer, Group  # noqa: E402

ORDER = {"easy": 0, "normal": 1, "moderate": 2, "hard": 3, "nightmare": 4}
NUMERIC = ("task.delay", "task.length", "task.difficulty", "model.hidden_size", "model.param_budget", "model.window",
           "task.chunk_length", "task.bits", "task.nesting")
MAX_CURVES = 8


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def numeric_axis(answer: Answer) -> Optional[str]:
    """The key to draw along a numeric x axis, if the groups vary along one."""
    for key in NUMERIC:
        values = {g.key.get(key) for g in answer.groups}
        if key in answer.by and len(values) > 1 and (all(_is_number(str(v)) for v in values) or values <= set(ORDER)):
            return key
    return None


def position(key: str, value: str) -> float:
    return float(ORDER[value]) if key == "task.difficulty" else float(value)


def draw_answer(ax: Any, answer: Answer) -> str:
    """The left panel; returns "lines" or "points" (what was drawn)."""
    axis = numeric_axis(answer)
    scored = [g for g in answer.groups if g.values]
    if axis is None:
        for i, g in enumerate(scored):
            interval = answer.interval(g)
            low, high = (interval[0], interval[1]) if interval else (g.mean, g.mean)
            ax.errorbar([i], [g.mean], yerr=[[g.mean - low], [high - g.mean]], fmt="o", markersize=9, capsize=8,
                        color=f"C{i}", linestyle="none")
            seeds = sorted(g.numbers)
            offsets = [0.12 * (j - (len(seeds) - 1) / 2) / max(1, len(seeds) - 1) for j in range(len(seeds))]
            ax.scatter([i + 0.25 + o for o in offsets], seeds, s=28, color=f"C{i}", alpha=0.6, zorder=3)
        one_key = len(answer.by) == 1  # (the key once, on the axis; each tick its value: long names overlapped)
        ax.set_xticks(range(len(scored)), [tick(g, values_only=one_key) for g in scored],
                      rotation=15 if len(scored) > 4 else 0)
        ax.set_xlim(-0.6, len(scored) - 0.2)
        if one_key:
            ax.set_xlabel(answer.by[0])
        return "points"
    lines: dict[str, list[Group]] = {}
    for g in scored:
        rest = " ".join(f"{k.rsplit('.', 1)[-1]}={v}" for k, v in g.key.items() if k != axis) or answer.metric
        lines.setdefault(rest, []).append(g)
    for i, (name, members) in enumerate(lines.items()):
        members.sort(key=lambda g: position(axis, g.key[axis]))
        xs = [position(axis, g.key[axis]) for g in members]
        ax.plot(xs, [g.mean for g in members], marker="o", color=f"C{i}", label=name)
        bands = [answer.interval(g) or (g.mean, g.mean, False) for g in members]
        ax.fill_between(xs, [b[0] for b in bands], [b[1] for b in bands], color=f"C{i}", alpha=0.2)
    if axis == "task.difficulty":
        shown = sorted({g.key[axis] for g in scored}, key=ORDER.get)
        ax.set_xticks([ORDER[v] for v in shown], shown)
    ax.set_xlabel(axis)
    ax.legend()
    return "lines"


def tick(group: Group, values_only: bool = False) -> str:
    """A group's name (or its value alone, where the axis names its one key), and under it what
    comes with it (a preset's per-cell init and size)."""
    name = " ".join(str(v) for v in group.key.values()) if values_only and group.key else group.label
    return "\n".join([name, *(f"{k.rsplit('.', 1)[-1]}={v}" for k, v in group.derived.items())])


def curves(rows: list[dict[str, Any]], answer: Answer) -> dict[str, list[list[float]]]:
    """Each group's validation curves (one list per seed) of the answer's metric."""
    name = "val/" + answer.metric.split("/", 1)[1]
    out: dict[str, list[list[float]]] = {}
    for row in rows:
        history = (row.get("results") or {}).get("history") or []
        curve = [float(h[name]) for h in history if isinstance(h.get(name), (int, float)) and math.isfinite(h[name])]
        if row["status"] != "completed" or not curve:
            continue
        label = Group({k: row["params"].get(k, "-") for k in answer.by}, []).label
        out.setdefault(label, []).append(curve)
    return out


def draw_curves(ax: Any, rows: list[dict[str, Any]], answer: Answer) -> None:
    for i, (label, seeds) in enumerate(list(curves(rows, answer).items())[:MAX_CURVES]):
        longest, shortest = max(map(len, seeds)), min(map(len, seeds))
        carried = [s + [s[-1]] * (longest - len(s)) for s in seeds]  # a seed that stopped keeps its last value
        mean = [statistics.fmean(col) for col in zip(*carried)]
        sd = [statistics.stdev(col) if len(col) > 1 else 0.0 for col in zip(*carried)]
        epochs = list(range(1, longest + 1))
        ax.plot(epochs[:shortest], mean[:shortest], color=f"C{i}", label=label)
        if longest > shortest:  # some seeds stopped: their last values carried forward
            ax.plot(epochs[shortest - 1:], mean[shortest - 1:], color=f"C{i}", linestyle="--")
        low, high = RANGES.get(answer.metric.rsplit("/", 1)[-1], (-math.inf, math.inf))  # (an accuracy's band stops at 1)
        ax.fill_between(epochs, [max(low, m - s) for m, s in zip(mean, sd)], [min(high, m + s) for m, s in zip(mean, sd)],
                        color=f"C{i}", alpha=0.15)
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.set_ylabel("val/" + answer.metric.split("/", 1)[1] + " (mean ± sd over seeds)")
    ax.set_title("validation curves; dashed: stopped seeds, carried", fontsize=12)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=11)


def include_baseline(ax: Any, answer: Answer) -> None:
    if answer.baseline is None:
        return
    ax.axhline(answer.baseline, color="gray", linestyle=":", linewidth=1.5)
    ax.annotate(f"baseline {answer.baseline:.3g} (learned nothing)", (0.01, answer.baseline), xycoords=("axes fraction", "data"),
                xytext=(0, 4), textcoords="offset points", color="gray", fontsize=11, zorder=5,
                bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8, "pad": 1})  # (readable over the curves)
    low, high = ax.get_ylim()
    low, high = min(low, answer.baseline), max(high, answer.baseline)
    pad = 0.05 * (high - low or 1.0)
    if answer.metric.endswith("accuracy"):
        ax.set_ylim(max(0.0, low - pad), min(1.02, high + pad))
    else:
        ax.set_ylim(max(0.0, low - pad), high + pad)


def title(rows: list[dict[str, Any]], answer: Answer) -> str:
    labels = {((r.get("results") or {}).get("config") or {}).get("task", {}).get("label") for r in rows} - {None}
    names = {(r.get("results") or {}).get("task") for r in rows} - {None}
    task = labels.pop() if len(labels) == 1 else ", ".join(sorted(names)) or "sweep"  # (a swept delay: the task)
    # What every run shares, the preset first (the task and its difficulty are in the label).
    same = [(k, v) for k, v in dict.fromkeys((k, v) for r in rows for k, v in r["params"].items())
            if k not in answer.by and k not in ("train.seed", "task", "task.difficulty")
            and all(x["params"].get(k) == v for x in rows)]
    same.sort(key=lambda kv: kv[0] != "experiment")
    setting = ", ".join(f"{k.rsplit('.', 1)[-1]}={v}" for k, v in same[:4])
    seeds = len({r["params"].get("train.seed") for r in rows})
    return f"{task}" + (f" ({setting})" if setting else "") + f": {answer.metric}, {seeds} seed{'s' * (seeds != 1)}"


def plot_sweep(root: Path, rows: list[dict[str, Any]], answer: Answer, stem: str = "summary") -> Optional[Path]:
    """`stem`.png and .svg in `root`; the sweep's own answer (stem "summary") also in TensorBoard.
    A sweep of seeds alone is one group ("all runs"): its mean, interval and band across seeds."""
    if not any(g.values for g in answer.groups):
        return None
    with plt.rc_context({"font.size": 13, "axes.titlesize": 14}):
        fig, (left, right) = plt.subplots(1, 2, figsize=(12.8, 7.2), gridspec_kw={"width_ratios": [1.1, 1]})
        draw_answer(left, answer)
        include_baseline(left, answer)
        left.set_ylabel(f"{answer.metric} (mean, 95% interval; dots: seeds)")
        left.set_title("the answer on held-out data", fontsize=12)
        left.grid(alpha=0.3)
        draw_curves(right, rows, answer)
        include_baseline(right, answer)
        right.grid(alpha=0.3)
        fig.suptitle(title(rows, answer))
        fig.tight_layout()
        path = root / f"{stem}.png"
        fig.savefig(path, dpi=200)
        fig.savefig(root / f"{stem}.svg")
    if stem == "summary":
        from rnnexp.sweep.across_seeds import write_across_seeds

        write_across_seeds(root, curves(rows, answer), answer, fig)  # the curves and the picture in TensorBoard
    plt.close(fig)
    return path
