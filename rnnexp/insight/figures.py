"""The pictures of the inside of a network (all of rnnexp.insight's matplotlib is here).

Figures are built as `matplotlib.figure.Figure` objects on the Agg canvas directly, without
pyplot: no global figure registry, no backend switch, nothing to close, safe from any thread.

* `states_figure`: every hidden unit (rows) over the time steps (columns), one panel per layer,
  and for an LSTM a second panel per layer with the cell states; diverging colours centred on 0,
  saturating where a few values dwarf the rest (an IRNN's growing units), said in the
  panel's title; of more than 64 units (a language model's 512), the 32 that vary most.
* `gradients_figure`: the norm of d loss / d h_t against t, log scale (how far back a loss
  reaches); a step whose gradient underflowed to exactly 0 is marked at the axis' floor.
* `gates_figure`: LSTM/GRU gates, the mean over units against time and the share of gate values
  saturated, closed (< 0.05) or open (> 0.95): the open and closed mouths.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.layout_engine import ConstrainedLayoutEngine

from rnnexp.models.gates import SIGMOID_GATES

# (torch-free: the drawing process draws from numpy arrays without importing torch. A replay here
# is anything with `.cell` and `.layers`, each layer with `.h`, `.c` and `.gates`: torch's tensors
# in rnnexp-inspect, numpy arrays in the drawing process (rnnexp.insight.drawing).)
Replay = Any

CMAP = "RdBu_r"
MAX_TICK_LABELS = 40        # tick labels on a time axis at most (multi-character labels)
MAX_CHAR_TICK_LABELS = 100  # ... when every label is one character (a text read by a char model)
LOW, HIGH = 0.05, 0.95
_SHOWN = {"\n": "↵", " ": "␣", "\t": "⇥", "\r": "␍"}
_GATE_TITLES = {"i": "input i", "f": "forget f", "o": "output o", "r": "reset r", "z": "update z"}


def display_label(label: str) -> str:
    """A step's label as shown on an axis: whitespace made visible."""
    return "".join(_SHOWN.get(ch, ch) for ch in str(label)) if label != "" else "·"


RARE_LABELS = 10  # at most this many rare symbols are labelled on top of the thinned ticks


def tick_positions(steps: int, max_labels: int = MAX_TICK_LABELS) -> list[int]:
    """The steps that get a tick label: all of them up to `max_labels`, else every k-th."""
    every = max(1, math.ceil(steps / max_labels))
    return list(range(0, steps, every))


def label_time_axis(ax, labels: Sequence[str], max_labels: Optional[int] = None,
                    xlabel: str = "time step t (input read at t)") -> None:
    """The example's labels along the x axis (thinned out when the sequence is long: at most 40,
    or 100 when every label is a single character; a few symbols that occur at most twice, such as
    QRSU's X and Y, are always labelled)."""
    shown = [display_label(label) for label in labels]
    short = all(len(text) <= 1 for text in shown)
    if max_labels is None:
        max_labels = MAX_CHAR_TICK_LABELS if short else MAX_TICK_LABELS
    positions = tick_positions(len(labels), max_labels)
    if len(positions) < len(labels):  # thinned: still label a few rare symbols (QRSU's X and Y, B, E)
        counts = {text: shown.count(text) for text in set(shown)}
        rare = {p for p, text in enumerate(shown) if counts[text] <= 2}
        if len(rare) <= RARE_LABELS:
            positions = sorted(set(positions) | rare)
    ax.set_xticks(positions)
    ax.set_xticklabels([shown[p] for p in positions], parse_math=False, fontsize=8 if short else 7,
                       rotation=0 if max((len(shown[p]) for p in positions), default=0) <= 2 else 90)
    ax.set_xlabel(xlabel)


OUTLIER_RATIO = 4.0   # states beyond this many times the 90th percentile of |state| saturate the colours
MAX_UNITS, SHOWN_UNITS = 64, 32  # more units than this: show the ones that vary most


def _numpy(values: Any) -> np.ndarray:
    """A torch tensor (rnnexp-inspect) or an array (the drawing process) as a float array."""
    if hasattr(values, "detach"):
        return values.detach().float().cpu().numpy()
    return np.asarray(values, dtype=np.float32)


def colour_limit(values: np.ndarray) -> tuple[float, int]:
    """The colour scale's half-range for (H, T) states, and how many values lie beyond it. The
    largest |value|, unless a few values dwarf the rest (an IRNN's growing units: beyond
    OUTLIER_RATIO x the 90th percentile): then the largest of the others, so that they keep
    readable colours (the few beyond saturate)."""
    magnitudes = np.abs(values[np.isfinite(values)]) if values.size else np.zeros(0)
    if not magnitudes.size or magnitudes.max() <= 0:
        return 1.0, 0
    top, cut = float(magnitudes.max()), OUTLIER_RATIO * float(np.percentile(magnitudes, 90))
    if 0 < cut < top:
        return float(magnitudes[magnitudes <= cut].max()), int((magnitudes > cut).sum())
    return top, 0


def _heatmap(fig: Figure, ax, values: np.ndarray, labels: Sequence[str], title: str) -> tuple[Any, ...]:
    """values (H, T): a row per unit, centred diverging colours and a colour bar; returns the
    bar's tick labels (their width is part of the figure's layout)."""
    limit, beyond = colour_limit(values)
    image = ax.imshow(values, aspect="auto", cmap=CMAP, vmin=-limit, vmax=limit, interpolation="nearest")
    ax.set_title(heatmap_title(title, values, limit, beyond), fontsize=10, y=1.0)
    ax.set_ylabel("unit")
    label_time_axis(ax, labels)
    bar = fig.colorbar(image, ax=ax, fraction=0.04, pad=0.01, extend="both" if beyond else "neither")
    fig.rnnexp_parts = [*getattr(fig, "rnnexp_parts", []), (ax, image, bar)]  # (what rnnexp.insight.refill updates)
    return bar_labels(bar, beyond)


def bar_labels(bar, beyond: int) -> tuple[Any, ...]:
    """A colour bar's tick labels and whether it extends: part of its figure's layout."""
    return (bool(beyond), *bar.ax.yaxis.get_major_formatter().format_ticks(bar.get_ticks()))


def heatmap_title(title: str, values: np.ndarray, limit: float, beyond: int) -> str:
    if beyond:
        title += f" (colours saturate at ±{limit:.3g}: {beyond} larger values, up to {np.abs(values).max():.3g})"
    return title


def top_units(values: np.ndarray, keep: int) -> tuple[np.ndarray, str]:
    """(H, T) -> the `keep` units that vary most over time (all of them when there are few), and
    what the panel then says."""
    if values.shape[0] <= MAX_UNITS:
        return values, ""
    order = np.sort(np.argsort(values.var(axis=1))[-keep:])
    return values[order], f", the {keep} of {values.shape[0]} units that vary most"


def _width(steps: int) -> float:
    return min(20.0, max(6.0, 2.0 + 0.22 * steps))


def state_panels(rep: Replay, sample: int = 0) -> list[tuple[np.ndarray, str]]:
    """(units, steps) values and the title of each panel of the states figure."""
    panels: list[tuple[np.ndarray, str]] = []
    count = len(rep.layers)
    for k, layer in enumerate(rep.layers):
        where = f" (layer {k + 1} of {count})" if count > 1 else ""
        h, which = top_units(_numpy(layer.h[sample]).T, SHOWN_UNITS)
        panels.append((h, f"hidden states h{where}{which}"))
        if layer.c is not None:
            c, which = top_units(_numpy(layer.c[sample]).T, SHOWN_UNITS)
            panels.append((c, f"cell states c{where}{which}"))
    return panels


def states_figure(rep: Replay, labels: Sequence[str], sample: int = 0, title: Optional[str] = None) -> Figure:
    """Every hidden unit over time for sample `sample` of the replay; an LSTM gets its cell
    states too; one panel per layer (bottom layer first)."""
    panels = state_panels(rep, sample)
    units = panels[0][0].shape[0]
    per_panel = min(6.0, max(1.8, 0.12 * units + 1.2))
    height = min(18.0, per_panel * len(panels)) + (0.4 if title else 0.0)
    fig = Figure(figsize=(_width(len(labels)), height), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(panels), 1, squeeze=False)[:, 0]
    limits = [_heatmap(fig, ax, values, labels, panel_title) for ax, (values, panel_title) in zip(axes, panels)]
    fig.rnnexp_layout = states_layout(fig, labels, title, limits, panels)
    if title:
        fig.suptitle(title)
    return fig


def states_layout(fig: Figure, labels: Sequence[str], title: Optional[str], limits: Sequence[Any],
                  panels: Sequence[tuple[np.ndarray, str]]) -> tuple[Any, ...]:
    """What the states figure's layout depends on (its colour bars' tick labels among it)."""
    return ("states", fig.get_size_inches().tobytes(), tuple(labels), bool(title), tuple(limits),
            tuple(values.shape[0] for values, _ in panels))


def gradients_figure(norms: Any, labels: Sequence[str],
                     readout_at_end: bool = True, title: Optional[str] = None) -> Figure:
    """The norm of d loss / d h_t (last layer) against t on a log scale. With `readout_at_end`
    (a many-to-one task) the top axis counts the steps before the readout."""
    values = _numpy(norms).astype(float)
    steps = np.arange(len(values))
    fig = Figure(figsize=(_width(len(values)), 3.6), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    positive = values > 0
    fig.rnnexp_parts = []  # (what rnnexp.insight.refill updates)
    if positive.any():
        line, = ax.semilogy(steps[positive], values[positive], marker="o", markersize=3, linewidth=1.2)
        fig.rnnexp_parts.append(line)
        zero = values == 0
        if zero.any():  # underflowed to exactly 0: a log axis would drop them; marked at its floor
            marks, = ax.plot(*zero_marks(values), linestyle="none", marker="v", color="C3", markersize=6,
                             label=zero_label(values))
            fig.rnnexp_parts += [marks, ax.legend(loc="lower right", fontsize=8)]
    else:
        ax.text(0.5, 0.5, "no gradient reaches the hidden states (nothing scored?)",
                transform=ax.transAxes, ha="center", va="center")
    ax.set_xlim(-0.5, max(0.5, len(values) - 0.5))
    ax.set_ylabel("‖∂ loss / ∂ h_t‖ (last layer)")
    ax.grid(True, which="major", alpha=0.3)
    label_time_axis(ax, labels)
    if readout_at_end and len(values):
        last = len(values) - 1
        top = ax.secondary_xaxis("top", functions=(lambda t: last - t, lambda s: last - s))
        top.set_xlabel("steps before the readout")
    ax.set_title(title or "gradients through time", fontsize=10)
    fig.rnnexp_layout = gradients_layout(values, labels, readout_at_end)
    return fig


def gradients_layout(values: np.ndarray, labels: Sequence[str], readout_at_end: bool) -> tuple[Any, ...]:
    """What the gradients figure's layout depends on (the decades its log axis spans among it)."""
    positive = values > 0
    spread = np.log10(values[positive]) if positive.any() else np.zeros(1)
    return ("gradients", len(values), tuple(labels), readout_at_end, bool(positive.any()), bool((values == 0).any()),
            math.floor(spread.min()), math.floor(spread.max()))


def zero_marks(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The steps whose gradient is exactly 0, at a tenth of the smallest positive one."""
    zero = values == 0
    return np.flatnonzero(zero), np.full(int(zero.sum()), float(values[values > 0].min()) / 10)


def zero_label(values: np.ndarray) -> str:
    return f"exactly 0 ({int((values == 0).sum())} steps: underflow)"


def gate_saturation(rep: Replay, sample: Optional[int] = None, low: float = LOW,
                    high: float = HIGH) -> dict[tuple[int, str], tuple[float, float]]:
    """(layer, gate) -> (share closed (< low), share open (> high)) of the sigmoid gates' values
    over units and steps (of one sample, or of all). Empty for a plain RNN."""
    shares: dict[tuple[int, str], tuple[float, float]] = {}
    for k, layer in enumerate(rep.layers):
        for name in SIGMOID_GATES[rep.cell]:
            values = _numpy(layer.gates[name])
            if sample is not None:
                values = values[sample]
            shares[(k, name)] = (float((values < low).mean()), float((values > high).mean()))
    return shares


def gates_figure(rep: Replay, labels: Sequence[str], sample: int = 0,
                 title: Optional[str] = None) -> Optional[Figure]:
    """Per layer: the mean of each gate over units against time, and the share of its values
    closed (< 0.05) / open (> 0.95). None for a plain RNN (no gates)."""
    names = SIGMOID_GATES[rep.cell]
    if not names:
        return None
    shares = gate_saturation(rep, sample)
    count = len(rep.layers)
    fig = Figure(figsize=(_width(len(labels)) + 4.0, min(18.0, 3.4 * count) + (0.4 if title else 0.0)),
                 layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(count, 2, squeeze=False, width_ratios=[3, 1])
    colours = {name: f"C{i}" for i, name in enumerate(names)}
    fig.rnnexp_parts = []  # per layer: its gate lines, bars and their labels (what rnnexp.insight.refill updates)
    for k, layer in enumerate(rep.layers):
        where = f" (layer {k + 1} of {count})" if count > 1 else ""
        ax, bars = axes[k]
        lines = [ax.plot(_numpy(layer.gates[name][sample]).mean(-1), label=_GATE_TITLES.get(name, name),
                         color=colours[name], marker="o", markersize=2.5, linewidth=1.2)[0] for name in names]
        ax.set_ylim(-0.02, 1.02)
        ax.set_ylabel("mean over units")
        ax.set_title(f"gates{where}", fontsize=10, y=1.0)
        ax.legend(loc="upper right", fontsize=8, ncols=len(names))
        ax.grid(True, alpha=0.3)
        label_time_axis(ax, labels)
        rows = np.arange(len(names))
        closed = np.array([shares[(k, n)][0] for n in names])
        opened = np.array([shares[(k, n)][1] for n in names])
        stacks = [bars.barh(rows, closed, color="#2b5d8a", label=f"closed (< {LOW})"),
                  bars.barh(rows, opened, left=closed, color="#e8a33d", label=f"open (> {HIGH})"),
                  bars.barh(rows, 1 - closed - opened, left=closed + opened, color="#dddddd", label="in between")]
        texts = [bars.text(0.99, row, share_text(c, o), ha="right", va="center", fontsize=8)
                 for row, (c, o) in enumerate(zip(closed, opened))]
        fig.rnnexp_parts.append((lines, stacks, texts))
        bars.set_yticks(rows)
        bars.set_yticklabels(list(names))
        bars.invert_yaxis()
        bars.set_xlim(0, 1)
        bars.set_xlabel("share of values")
        bars.set_title("closed / open mouths", fontsize=10, y=1.0)
        if k == 0:
            bars.legend(loc="lower center", bbox_to_anchor=(0.5, 1.12), fontsize=7, ncols=1)
    if title:
        fig.suptitle(title)
    fig.rnnexp_layout = gates_layout(rep, labels, title)
    return fig


def gates_layout(rep: Replay, labels: Sequence[str], title: Optional[str]) -> tuple[Any, ...]:
    return ("gates", rep.cell, len(rep.layers), tuple(labels), bool(title))


def share_text(closed: float, opened: float) -> str:
    return f"{closed:.0%} / {opened:.0%}"


#: A run draws the same figures every few epochs, and matplotlib's constrained layout is over half
#: of a figure's time (~0.25 of ~0.45 s). The first figure of a kind is laid out; later ones with the
#: same size, axes, time labels and label widths (`fig.rnnexp_layout`) reuse its axes' positions
#: and its titles' heights. (Titles with nothing above their axes are placed at y=1 from the start:
#: finding that out costs matplotlib a measure of every tick label.)
_LAYOUTS: dict[Any, list[Any]] = {}
_LAYOUTS_KEPT = 64


def render(fig: Figure) -> None:
    """Draw `fig` on its Agg canvas, laid out as the last figure of its kind was where there is one."""
    canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
    key = getattr(fig, "rnnexp_layout", None)
    saved = _LAYOUTS.get(key) if key is not None else None
    if saved is not None and len(saved) == len(fig.axes) + 2:
        fig.set_layout_engine("none")
        for ax, position, title_y in zip(fig.axes, saved, saved[-1]):
            ax.set_position(position)
            if title_y is not None:  # (placed above a top axis: found again, it costs a tenth of the figure)
                ax.set_title(ax.get_title(), fontsize=ax.title.get_fontsize(), y=title_y)
        if fig._suptitle is not None and saved[-2] is not None:
            fig._suptitle.set_position(saved[-2])  # (the layout places the title too)
        canvas.draw()
        return
    canvas.draw()
    if key is not None and isinstance(fig.get_layout_engine(), ConstrainedLayoutEngine):
        if len(_LAYOUTS) >= _LAYOUTS_KEPT:
            _LAYOUTS.clear()
        title = fig._suptitle.get_position() if fig._suptitle is not None else None
        title_ys = [ax.title.get_position()[1] if ax.get_title() and ax.title.get_position()[1] != 1.0 else None
                    for ax in fig.axes]
        _LAYOUTS[key] = [*(ax.get_position() for ax in fig.axes), title, title_ys]


def figure_to_rgb(fig: Figure) -> np.ndarray:
    """(H, W, 3) uint8 pixels of the figure (for TensorBoard's add_image)."""
    render(fig)
    return np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()


def save_png(fig: Figure, path: Path | str, dpi: int = 100) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if dpi != fig.dpi:
        fig.savefig(path, dpi=dpi)
        return path
    from matplotlib.image import imsave

    render(fig)  # (the pixels of the figure drawn once, laid out as the last of its kind)
    imsave(path, np.asarray(fig.canvas.buffer_rgba()))
    return path
