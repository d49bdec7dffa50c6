"""Figures kept between epochs and refilled with the next replay's values (the drawing process).

A run draws the same three figures every few epochs, and building one (its axes, ticks and texts)
is about a third of the time it takes to draw (issue 20: a short run waits for its last pictures).
The drawing process keeps the last figure of each kind and puts the next values into it, as long as
they keep its layout (`fig.rnnexp_layout`: the same steps, units and labels, colour bars with the
same tick labels, gradients over the same decades); otherwise the figure is built afresh. A
refilled figure gives the pixels of one built afresh for the same values (tests/test_pictures.py).

    kept_figure(kind, build, refill) -> the figure of `kind`, refilled where it can be, else built
"""

from __future__ import annotations

from typing import Any, Callable, Optional

import numpy as np

from rnnexp.insight import figures as fg
from rnnexp.models.gates import SIGMOID_GATES

_KEPT: dict[str, Any] = {}  # kind -> the last figure drawn of it


def kept_figure(kind: str, build: Callable[[], Any], refill: Callable[[Any], bool]) -> Any:
    """The kept figure of `kind` refilled (`refill(fig)` says whether the values kept its layout,
    whose positions `figures.render` must still hold: a kept figure is drawn without a layout
    engine), else a new one from `build()`, kept for next time."""
    fig = _KEPT.pop(kind, None)
    try:
        if fig is not None and refill(fig) and fig.rnnexp_layout in fg._LAYOUTS:
            _KEPT[kind] = fig
            return fig
    except Exception:  # noqa: BLE001 - (drawn afresh: a refill must never cost a picture)
        pass
    fig = build()
    if fig is not None:
        _KEPT[kind] = fig
    return fig


def forget() -> None:
    _KEPT.clear()


def _suptitle(fig: Any, title: Optional[str]) -> None:
    if title:
        fig.suptitle(title)


def refill_states(fig: Any, rep: fg.Replay, labels: list[str], title: Optional[str] = None) -> bool:
    panels = fg.state_panels(rep)
    parts = getattr(fig, "rnnexp_parts", [])
    if len(panels) != len(parts) or any(image.get_array().shape != values.shape
                                        for (_, image, _), (values, _) in zip(parts, panels)):
        return False
    limits = []
    for (ax, image, bar), (values, panel_title) in zip(parts, panels):
        limit, beyond = fg.colour_limit(values)
        image.set_data(values)
        image.set_clim(-limit, limit)
        ax.set_title(fg.heatmap_title(panel_title, values, limit, beyond), fontsize=10, y=1.0)
        limits.append(fg.bar_labels(bar, beyond))
    _suptitle(fig, title)
    return fg.states_layout(fig, labels, title, limits, panels) == fig.rnnexp_layout


def refill_gradients(fig: Any, norms: Any, labels: list[str], readout_at_end: bool, title: Optional[str] = None) -> bool:
    values = fg._numpy(norms).astype(float)
    if fg.gradients_layout(values, labels, readout_at_end) != fig.rnnexp_layout:
        return False
    ax, parts, positive = fig.axes[0], fig.rnnexp_parts, values > 0
    if parts:
        parts[0].set_data(np.flatnonzero(positive), values[positive])
    if len(parts) == 3:  # the steps whose gradient underflowed, and the legend that counts them
        marks, legend = parts[1], parts[2]
        marks.set_data(*fg.zero_marks(values))
        marks.set_label(fg.zero_label(values))
        legend.get_texts()[0].set_text(fg.zero_label(values))
    ax.relim()
    ax.autoscale_view()
    ax.set_title(title or "gradients through time", fontsize=10)
    return True


def refill_gates(fig: Any, rep: fg.Replay, labels: list[str], title: Optional[str] = None) -> bool:
    if fg.gates_layout(rep, labels, title) != fig.rnnexp_layout:
        return False
    names = SIGMOID_GATES[rep.cell]
    shares = fg.gate_saturation(rep, 0)
    for k, (layer, (lines, stacks, texts)) in enumerate(zip(rep.layers, fig.rnnexp_parts)):
        for name, line in zip(names, lines):
            line.set_ydata(fg._numpy(layer.gates[name][0]).mean(-1))
        closed = np.array([shares[(k, n)][0] for n in names])
        opened = np.array([shares[(k, n)][1] for n in names])
        for stack, widths, lefts in zip(stacks, (closed, opened, 1 - closed - opened),
                                        (np.zeros_like(closed), closed, closed + opened)):
            for rect, width, left in zip(stack.patches, widths, lefts):
                rect.set_width(width)
                rect.set_x(left)
        for text, c, o in zip(texts, closed, opened):
            text.set_text(fg.share_text(c, o))
    _suptitle(fig, title)
    return True
