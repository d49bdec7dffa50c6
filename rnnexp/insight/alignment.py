"""The attention picture of an encoder-decoder: the alignment matrix (Bahdanau et al. 2015, figure 3).

    rows: the symbols the decoder wrote (greedy decoding, as in evaluation)
    columns: the source symbols it read
    colour: the attention weight of each source step when each symbol was written (each row sums to 1)

For reversal a model that learned the task attends along the anti-diagonal: the first symbol
written looks at the last one read. Drawn for the run's example (the task's fixed validation
example) after epoch 1 and every `train.insight_every` epochs into TensorBoard (`insight/alignment`),
at the end of training as alignment.png in the run directory, and by `rnnexp-inspect` for any
example. Only models with attention have one (`model.attention` other than none).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from rnnexp.engine.callbacks import Callback

FILE = "alignment.png"


def has_alignment(model: Any) -> bool:
    return hasattr(model, "alignment") and getattr(model, "attention", None) is not None


def alignment_of(model: Any, task: Any, example: Any) -> tuple[np.ndarray, list[str], list[str]]:
    """The example's attention weights (written steps, source steps) under greedy decoding, the
    source's labels and the written symbols (as many as the example's answer has)."""
    import torch

    batch = example.batch.to(next(model.parameters()).device)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            logits, weights = model.alignment(batch.inputs, batch.decoder_inputs[:, :1], batch.decoder_inputs.shape[1],
                                              source_lengths=batch.lengths)
    finally:
        model.train(was_training)
    written = [task.class_label(int(k)) for k in logits[0].argmax(-1)]
    n = len(example.labels)
    return weights[0, :, :n].float().cpu().numpy(), list(example.labels), written


def alignment_figure(weights: np.ndarray, source: Sequence[str], written: Sequence[str], title: str = "") -> Any:
    from matplotlib.figure import Figure

    rows, cols = weights.shape
    fig = Figure(figsize=(max(5.5, 1.5 + 0.22 * cols), max(3.5, 1.2 + 0.22 * rows)), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    image = ax.imshow(weights, cmap="Greys", vmin=0.0, vmax=1.0, aspect="auto", interpolation="nearest")
    ax.set_xticks(range(cols), list(source), fontsize=8)
    ax.set_yticks(range(rows), list(written), fontsize=8)
    ax.set_xlabel("source symbol read")
    ax.set_ylabel("symbol written (greedy)")
    ax.xaxis.set_label_position("top")
    ax.xaxis.tick_top()
    fig.colorbar(image, ax=ax, label="attention weight", shrink=0.8)
    if title:
        fig.suptitle(title, fontsize=9)
    return fig


def save_alignment(model: Any, task: Any, example: Any, path: Path, title: str = "") -> Path:
    from rnnexp.insight.figures import save_png

    return save_png(alignment_figure(*alignment_of(model, task, example), title=title), path)


class AlignmentCallback(Callback):
    """`insight/alignment` in TensorBoard after epoch 1 and every `every` epochs; alignment.png at
    the end of training (the final model). A failure to draw is a warning, never the end of a run."""

    def __init__(self, writer: Optional[Any], run_dir: Path, every: int, example: Any, title: str = ""):
        self.writer, self.run_dir, self.every, self.example, self.title = writer, Path(run_dir), every, example, title
        self.last_epoch: Optional[int] = None

    def on_epoch_end(self, engine: Any, metrics: dict[str, float]) -> None:
        epoch = int(metrics.get("epoch", engine.state.epoch))
        self.last_epoch = epoch
        if self.writer is None or not (epoch == 1 or epoch % self.every == 0):
            return

        def log() -> None:
            from rnnexp.insight.figures import figure_to_rgb

            drawn = alignment_of(engine.model, engine.task, self.example)
            rgb = figure_to_rgb(alignment_figure(*drawn, title=f"{self.title}, epoch {epoch}"))
            self.writer.add_image("insight/alignment", rgb, global_step=epoch, dataformats="HWC")

        self._guarded(log)

    def on_fit_end(self, engine: Any) -> None:
        epoch = self.last_epoch if self.last_epoch is not None else int(engine.state.epoch) - 1
        self._guarded(lambda: save_alignment(engine.model, engine.task, self.example, self.run_dir / FILE,
                                             f"{self.title}, final model, after epoch {epoch}"))

    @staticmethod
    def _guarded(work: Any) -> None:
        try:
            work()
        except Exception as exc:  # noqa: BLE001 - a picture must never cost a run
            warnings.warn(f"the alignment picture failed: {type(exc).__name__}: {exc}", RuntimeWarning, stacklevel=2)
