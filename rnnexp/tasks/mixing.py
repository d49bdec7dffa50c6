"""A mixing curriculum's epoch, example by example (`train.curriculum_strategy=mix|combined`), as
Learning to Execute's code mixes: every example of an epoch comes from a stage of its own.

    rnnexp task=parity task.length=20 train.curriculum=[2,5,10] train.curriculum_strategy=combined

`Task.mix_choices` decides, for each of the epoch's examples, whether it is mixed and from which
of `Task.mix_configs` it comes; `parts` turns that into one part per stage, each drawn from a
stream of its own keyed by (train.seed, epoch, the stage's place in `mix_configs`), so a resumed
run draws exactly what an uninterrupted one did, and the current stage's part from the epoch's own
stream. Examples of different lengths then share a batch (`join`): each is padded on the right and
carries its own length, so its answer is read at its own last step and its padding is masked out
of the loss; its score never depends on the others in its batch. (QRSU pads as its `task.padding`
says; with left padding, where every answer is read at the batch's last step, it mixes per batch.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from rnnexp.lazy import F, torch  # on first use: config checks need no torch
from rnnexp.tasks.base import Batch, epoch_generator
from rnnexp.tasks.splits import stream


@dataclass
class Part:
    rows: torch.Tensor           # (n,) bool: which of the epoch's examples come from this part
    stage: Any                   # its curriculum stage (None: the target), for the data report
    cfg: Any                     # the task config it is drawn with
    generator: torch.Generator   # its own stream

    @property
    def size(self) -> int:
        return int(self.rows.sum())


def parts(task: Any, epoch: int, n: int) -> list[Part]:
    """The non-empty parts of epoch `epoch`'s `n` examples under the task's mixing (`Task.mix`)."""
    stages, share = task.mixing
    configs = task.mix_configs(stages)
    mixed, picks = task.mix_choices(epoch, n, share, len(configs))
    found = [Part(~mixed, task.stage, task.train_cfg, epoch_generator(task.seed, epoch))]
    for k in sorted(set(picks[mixed].tolist())):
        stage, cfg = configs[k]
        found.append(Part(mixed & (picks == k), stage, cfg, stream(task.seed, "mixed_examples", epoch * 1024 + k)))
    return [part for part in found if bool(part.rows.any())]


def place(parts_: list[Part], values: list[torch.Tensor], fill: Any) -> torch.Tensor:
    """Each part's rows (count, steps, ...) put where its examples go in the epoch, the steps
    padded on the right with `fill` to the longest part's -> (n, steps, ...)."""
    steps = max(v.shape[1] for v in values) if values[0].dim() > 1 else None
    first = values[0]
    shape = (parts_[0].rows.shape[0], *((steps, *first.shape[2:]) if steps is not None else ()))
    out = torch.full(shape, fill, dtype=first.dtype)
    for part, value in zip(parts_, values):
        if steps is None:
            out[part.rows] = value
        else:
            out[part.rows, :value.shape[1]] = value
    return out


def pad_steps(tensor: torch.Tensor, steps: int, value: Any = 0) -> torch.Tensor:
    """(B, T, ...) -> (B, steps, ...), padded on the right along time with `value`."""
    if tensor.shape[1] == steps:
        return tensor
    return F.pad(tensor, [0, 0] * (tensor.dim() - 2) + [0, steps - tensor.shape[1]], value=value)


def join(batches: list[Batch], order: Optional[list[torch.Tensor]] = None) -> Batch:
    """Batches of one task's independent sequences, of any lengths -> one batch, each sequence
    padded on the right to the longest, with its length (its answer read at its own last step)
    and, for per-step targets, a mask that leaves its padding unscored. `order`: where each
    batch's rows go in the joined batch (default: one after the other)."""
    if any(b.left_padded for b in batches):
        raise ValueError("join: left-padded batches are joined by their task (QRSU's batches_of)")
    steps = max(b.inputs.shape[1] for b in batches)
    lengths = [b.lengths if b.lengths is not None else torch.full((b.inputs.shape[0],), b.inputs.shape[1])
               for b in batches]
    same_steps = all(b.inputs.shape[1] == steps and b.lengths is None for b in batches)
    targets, mask = [b.targets for b in batches], None
    if batches[0].targets.dim() > 1:  # per-step targets: the padding is not scored
        width = max(t.shape[1] for t in targets)
        if any(b.mask is not None or b.targets.shape[1] != width for b in batches):
            mask = torch.cat([pad_steps(b.mask if b.mask is not None else torch.ones_like(b.targets, dtype=torch.bool),
                                        width, False) for b in batches])
        targets = [pad_steps(t, width) for t in targets]
    decoder_inputs = None
    if batches[0].decoder_inputs is not None:
        width = max(b.decoder_inputs.shape[1] for b in batches)  # type: ignore[union-attr]
        decoder_inputs = torch.cat([pad_steps(b.decoder_inputs, width) for b in batches])  # type: ignore[arg-type]
    joined = Batch(torch.cat([pad_steps(b.inputs, steps) for b in batches]), torch.cat(targets), mask=mask,
                   lengths=None if same_steps else torch.cat(lengths), decoder_inputs=decoder_inputs)
    if order is None:
        return joined
    return joined.rows(torch.cat(order).argsort())
