"""TensorBoard, as a callback: one entry per run in TensorBoard's run list.

In the run directory's own event file:
* every epoch (x = epoch): `train/loss`, `train/accuracy`, `val/loss`, `val/accuracy`, the
  task's extras (`val/bpc`, ...), `train/lr`, `train/grad_norm` (before clipping),
  `train/weight_norm`, and whatever another callback added (a curriculum's `train/stage`);
* every `train.log_every_steps` optimizer steps (x = step): `train/step_loss`, `train/step_accuracy`;
* at the end: `test/...` (the best model on the test set) and the HParams tab entry, whose
  metrics are those scalar tags themselves (no `hparam/*` charts in the scalars tab);
* the config as text, and text samples where the task makes them.

On resume, the events written after the checkpoint (which the resumed run writes again) are
dropped first, so a killed and resumed run has the same curves as an uninterrupted one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from torch.utils.tensorboard import SummaryWriter

from rnnexp.engine.callbacks import Callback

STEP_TAGS = ("train/step_",)  # x = optimizer step; every other tag: x = epoch


class TensorBoard(Callback):
    def __init__(self, run_dir: Path, config_yaml: str, resume_from: Optional[Any] = None):
        self.run_dir = Path(run_dir)
        earlier = sorted(self.run_dir.glob("events.out.tfevents.*"))
        self.writer = SummaryWriter(log_dir=str(self.run_dir))
        if resume_from is not None:
            carry_over_events(earlier, self.writer, epoch=len(resume_from.history), step=resume_from.global_step)
        else:
            for path in earlier:  # a job directory reused from scratch (a sweep resumed before its first checkpoint)
                path.unlink()
            self.writer.add_text("config", "```\n" + config_yaml + "\n```", 0)

    def on_log(self, engine: Any, metrics: dict[str, float]) -> None:
        for key, value in metrics.items():
            self.writer.add_scalar(key, value, engine.state.global_step)

    def on_epoch_end(self, engine: Any, metrics: dict[str, float]) -> None:
        epoch = int(metrics["epoch"])
        for key, value in metrics.items():
            if "/" in key:
                self.writer.add_scalar(key, value, epoch)
        sample = engine.task.sample(engine.model, engine.device, seed=epoch)
        if sample is not None:
            self.writer.add_text("samples", "```\n" + sample + "\n```", epoch)
        self.writer.flush()

    def finish(self, epochs: int, test: dict[str, float], hparams: dict[str, Any], metric_tags: list[str]) -> None:
        """The test metrics (at the last epoch) and the HParams entry of this run."""
        from torch.utils.tensorboard.summary import hparams as hparams_summary

        for key, value in test.items():
            self.writer.add_scalar(key, value, epochs)
        clean = {k: (v if isinstance(v, (int, float, str, bool)) else str(v)) for k, v in hparams.items()}
        for summary in hparams_summary(clean, {tag: 0.0 for tag in metric_tags}):
            self.writer.file_writer.add_summary(summary)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def carry_over_events(old: list[Path], writer: SummaryWriter, epoch: int, step: int) -> None:
    """Copy into `writer` what a checkpoint at (epoch, step) had seen from the earlier event
    files, then delete those files."""
    from tensorboard.backend.event_processing.event_file_loader import RawEventFileLoader
    from tensorboard.compat.proto.event_pb2 import Event
    from tensorboard.compat.proto.summary_pb2 import Summary

    for path in old:
        # Raw records, parsed as written (EventFileLoader would migrate scalars to another form).
        for record in RawEventFileLoader(str(path)).Load():
            event = Event.FromString(record)
            if not event.HasField("summary"):
                continue  # file version / session markers: the new writer writes its own
            limit = lambda tag: step if tag.startswith(STEP_TAGS) else epoch  # noqa: E731
            values = [v for v in event.summary.value  # end-of-run entries come again at the new end
                      if not v.tag.startswith(("_hparams_", "test/", "insight/units")) and event.step <= limit(v.tag)]
            if values:
                event.summary.CopyFrom(Summary(value=values))
                writer.file_writer.add_event(event)
    writer.flush()  # on disk before the old files go
    for path in old:
        path.unlink()


def add_png(writer: SummaryWriter, tag: str, png: Any, step: int) -> None:
    """An image already encoded as a PNG (`rnnexp.insight.drawing.Png`: bytes, height, width) into
    TensorBoard as it is. (torch's `add_image` takes pixels and encodes them itself, ~15 ms an
    image on the training's core; its file writer takes a summary made here.)"""
    from tensorboard.compat.proto.summary_pb2 import Summary

    image = Summary.Image(height=png.height, width=png.width, colorspace=3, encoded_image_string=png.data)
    writer._get_file_writer().add_summary(Summary(value=[Summary.Value(tag=tag, image=image)]), step)
