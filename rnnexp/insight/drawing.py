"""What the drawing process runs: pictures from numpy arrays, without torch.

A run's pictures are drawn in a process of its own (rnnexp.insight.callback), started with the
run. It imports only numpy, matplotlib and this module: ready in ~0.5 s instead of the ~2 s that
importing torch as well took, which a run of a second or two then waited for at its end (issue
20). The run replays its example with torch and sends the values here as arrays (`Pictured`).
"""

from __future__ import annotations

import atexit
import io
import multiprocessing
import os
import signal
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np

FILES = {"states": "states.png", "gradients_through_time": "gradients_through_time.png", "gates": "gates.png"}
PARENT_CHECK_S = 0.5


@dataclass
class LayerValues:
    h: np.ndarray                                  # (B, T, H)
    c: Optional[np.ndarray] = None                 # (B, T, H) LSTM cell states
    gates: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class Pictured:
    """One replayed example as arrays: what the pictures need of an `Insight`."""
    cell: str
    layers: list[LayerValues]
    gradients: np.ndarray       # (T,) norm of d loss / d h_t of the last layer
    labels: list[str]
    readout_at_end: bool


def picture_title(title: str, when: str) -> str:
    """"qrsu-hard / lstm-chrono, epoch 3": what a picture shows and when."""
    return f"{title}, {when}" if title else when


def draw(values: Any, title: Optional[str] = None, keep: bool = False) -> dict[str, Any]:
    """name -> matplotlib Figure: "states", "gradients_through_time" and, for an LSTM or a GRU,
    "gates". `values` is a `Pictured` (or an `Insight`'s replay with its gradients and labels).
    `keep`: the figures drawn last time are refilled where the values keep their layout
    (rnnexp.insight.refill: the drawing process, which draws the same figures every few epochs)."""
    from rnnexp.insight import figures as fg
    from rnnexp.insight import refill as rf

    labels, gradients, at_end = values.labels, values.gradients, values.readout_at_end
    figures = {"states": (lambda: fg.states_figure(values, labels, title=title),
                          lambda fig: rf.refill_states(fig, values, labels, title)),
               "gradients_through_time": (lambda: fg.gradients_figure(gradients, labels, at_end, title=title),
                                          lambda fig: rf.refill_gradients(fig, gradients, labels, at_end, title)),
               "gates": (lambda: fg.gates_figure(values, labels, title=title),
                         lambda fig: rf.refill_gates(fig, values, labels, title))}
    drawn = {name: rf.kept_figure(name, build, refill) if keep else build()
             for name, (build, refill) in figures.items()}
    return {name: fig for name, fig in drawn.items() if fig is not None}  # (no gates: a plain RNN)


@dataclass
class Png:
    """A picture encoded once, here: the bytes of its PNG file, which TensorBoard's image summary
    takes as they are (torch's add_image would encode it again, on the training's core)."""
    data: bytes
    height: int
    width: int


def encode_png(rgb: np.ndarray) -> Png:
    from PIL import Image  # (matplotlib's own dependency)

    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG")
    return Png(buffer.getvalue(), int(rgb.shape[0]), int(rgb.shape[1]))


def draw_epoch(values: Pictured, epoch: int, title: str = "", pngs: Optional[Path] = None) -> dict[str, Any]:
    """One epoch's figures as PNGs (`Png`), and its scalars (d loss / d h_t at the first and last
    step; the share of closed and open gates in the last layer). With `pngs` (a run directory)
    the same pictures are also its PNG files, each rendered and encoded once (the last epoch's
    TensorBoard images and the final files show the same model)."""
    from rnnexp.insight.figures import figure_to_rgb, gate_saturation

    when = f"epoch {epoch}" if pngs is None else f"final model, after epoch {epoch}"
    drawn = draw(values, picture_title(title, when), keep=True)
    images = {name: encode_png(figure_to_rgb(fig)) for name, fig in drawn.items()}
    if pngs is not None:
        write_pngs(images, Path(pngs))
    scalars: dict[str, float] = {}
    grads = values.gradients
    if len(grads):
        scalars.update(grad_norm_h_first=float(grads[0]), grad_norm_h_last=float(grads[-1]))
    last = len(values.layers) - 1
    for (layer, gate), (closed, opened) in gate_saturation(values).items():
        if layer == last:
            scalars.update({f"closed_{gate}": closed, f"open_{gate}": opened})
    return {"images": images, "scalars": scalars}


def write_pngs(images: dict[str, Png], run_dir: Path) -> None:
    """The pictures' files in the run directory, each written whole (a killed run leaves no half PNG)."""
    from rnnexp.files import atomic_write

    run_dir.mkdir(parents=True, exist_ok=True)
    for name, png in images.items():
        atomic_write(run_dir / FILES[name], lambda f, data=png.data: f.write(data))


def save_pngs(values: Pictured, run_dir: Path, title: Optional[str] = None) -> None:
    """The end-of-training PNG files (where no epoch's pictures were also the files)."""
    from rnnexp.insight.figures import figure_to_rgb

    write_pngs({name: encode_png(figure_to_rgb(fig)) for name, fig in draw(values, title, keep=True).items()},
               Path(run_dir))


def ready_to_draw() -> None:
    """Import matplotlib and draw one small picture: the first drawing's fonts and renderer cost
    (~0.3 s) are paid while the run trains, not at its end."""
    from rnnexp.insight.figures import FigureCanvasAgg, Figure

    fig = Figure(figsize=(2, 1), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1], marker="o")
    ax.set_title("‖∂ loss / ∂ h_t‖")
    ax.set_xlabel("warm-up")
    fig.colorbar(ax.imshow(np.zeros((2, 2))), ax=ax)
    fig.savefig(io.BytesIO(), format="png", dpi=100)


_POOL: dict[str, ProcessPoolExecutor] = {}


def drawing_pool() -> Optional[ProcessPoolExecutor]:
    """The drawing process of this Python process, started on first use and kept for the runs
    that follow: a sequential sweep runs all its jobs in one process, and a joblib worker several,
    so they pay its start-up (importing matplotlib, ~0.5 s of CPU) once, not once a job. None
    where no process can be started (e.g. inside a daemonic worker): draw inline."""
    if "pool" not in _POOL:
        try:
            _POOL["pool"] = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"),
                                                initializer=setup_drawing_process, initargs=(os.getpid(),))
        except (OSError, ValueError, AssertionError, RuntimeError):
            return None
    return _POOL["pool"]


def start_drawing_process() -> None:
    """Start this process's drawing process now and let it get ready to draw, so that it is ready
    when the first pictures are due: the CLI calls this as soon as a run's config is valid, so that
    it starts up while the run imports torch (a short run otherwise waits for it at the end)."""
    started = "pool" in _POOL
    pool = drawing_pool()
    if pool is not None and not started:
        try:
            pool.submit(ready_to_draw)
        except (BrokenProcessPool, RuntimeError, OSError):
            _POOL.clear()  # InsightCallback finds out again, and draws inline


def shutdown_drawing_process() -> None:
    """End this process's drawing process and wait for it (the command's last act: none outlives it)."""
    pool = _POOL.pop("pool", None)
    if pool is not None:
        pool.shutdown(wait=True, cancel_futures=True)


def setup_drawing_process(parent: int) -> None:
    """The drawing process ignores Ctrl-C (the run, which gets it too, decides what stops), ends on
    SIGTERM (the run then draws what is left itself), and ends within a second of its run's death:
    a run killed with -9 (a cluster's time limit) cannot stop it, and it would otherwise stay for
    ever, holding memory. (Not at a low priority: beside busy processes a nice-19 drawing process
    starved, and the run waited minutes at its end.)"""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    # Its work is all sent back by the time it exits: it skips the interpreter's teardown of
    # matplotlib's modules, which the run's exit waited for (~0.1 s).
    atexit.register(os._exit, 0)
    threading.Thread(target=_exit_with_parent, args=(parent,), name="rnnexp-parent-watch", daemon=True).start()


def _exit_with_parent(parent: int) -> None:
    """(The run's pid comes from the run itself: one that died before this process started is
    noticed too.)"""
    while True:
        if os.getppid() != parent:  # reparented: the run is gone
            os._exit(0)
        time.sleep(PARENT_CHECK_S)
