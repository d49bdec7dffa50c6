"""The `Task` interface: the data of every split, how outputs are scored, which metrics follow.
The engine knows tasks through this interface only, and never branches on which task it runs.

A task produces batches and scores a model's per-step outputs (`score`): the loss to train on
and sums that the engine adds up on the device and turns into metrics once per logging
interval or epoch (`metrics`). Two shapes of task share one loop:

* many-to-one (QRSU, adding, copy): every batch is independent, `Batch.reset` is always true;
* streaming (echo, charlm): a batch is one chunk of parallel streams; the engine carries the
  hidden state from chunk to chunk and `Batch.reset` marks the start of a new series.

Three splits: `train_batches(epoch)` (fresh or reshuffled every epoch, fixed by (seed, epoch)),
and the fixed `eval_batches("val")` (selects: early stopping, the schedule, the best model) and
`eval_batches("test")` (reports, once, with the best model). Validation and test data never
depend on `train.batch_size`, so curves compare across batch sizes.

A new task is one module in this package, one YAML file in `conf/task/` and its test: a `Task`
subclass with a `name` registers itself when the package is scanned, which imports every module here. So a task module must import without torch (`rnnexp.lazy`: checking a
config never waits for torch), and a helper module here simply defines no `Task`. A task of
independent sequences with fixed validation and test sets subclasses `fixed_sets.FixedSetTask`
and gives only its data and its score. tests/test_contract.py checks every registered task; the
README's "Adding a task" walks through parity.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
import zlib
from typing import Any, Callable, ClassVar, Iterator, Optional

from rnnexp.errors import ConfigError, require
from rnnexp.lazy import F, torch  # on first use: config checks need no torch
from rnnexp.tasks.scoring import Score, classification, mean_metrics
from rnnexp.tasks.splits import stream

_REGISTRY: dict[str, type["Task"]] = {}
SPLITS = ("val", "test")


@dataclass
class Batch:
    inputs: torch.Tensor             # (B, T, features) float, or (B, T) token ids
    targets: torch.Tensor            # (B,) many-to-one, (B, T) per step (streaming, copy)
    mask: Optional[torch.Tensor] = None  # (B, T) bool: which steps are scored
    reset: bool = True               # start from a fresh (zero) hidden state
    #: (B,) each sequence's own length, where a batch mixes lengths (None: all are T steps long).
    #: Padded on the right, a sequence's answer is read at its own last step (lengths - 1), so its
    #: score never depends on the batch it comes in; `left_padded` (QRSU's task.padding=left, the
    #: lecture's form) puts the padding first and reads every answer at step T - 1.
    lengths: Optional[torch.Tensor] = None
    left_padded: bool = False
    #: (B, T_out) token ids: what a decoder reads while it writes the targets, the targets
    #: shifted right behind a start symbol (teacher forcing), for tasks whose model writes an
    #: output sequence after reading the input (`Task.decodes`; an encoder-decoder). None: no decoder.
    decoder_inputs: Optional[torch.Tensor] = None

    def to(self, device: torch.device) -> "Batch":
        if self.inputs.device == device:
            return self
        move = lambda t: None if t is None else t.to(device)  # noqa: E731
        return replace(self, inputs=self.inputs.to(device), targets=self.targets.to(device), mask=move(self.mask),
                       lengths=move(self.lengths), decoder_inputs=move(self.decoder_inputs))

    def first(self, n: int = 1) -> "Batch":
        """The batch of its first `n` sequences (an example for the pictures)."""
        return self.rows(slice(0, n))

    def rows(self, index: Any) -> "Batch":
        """The batch of the sequences `index` selects (a slice or a tensor of row numbers)."""
        take = lambda t: None if t is None else t[index]  # noqa: E731
        return replace(self, inputs=self.inputs[index], targets=self.targets[index], mask=take(self.mask),
                       lengths=take(self.lengths), decoder_inputs=take(self.decoder_inputs))

    def last_outputs(self, outputs: torch.Tensor) -> torch.Tensor:
        """(B, T, C) per-step outputs -> (B, C): each sequence's output at its own last step."""
        if self.lengths is None or self.left_padded:
            return outputs[:, -1]
        index = (self.lengths - 1).view(-1, 1, 1).expand(-1, 1, outputs.shape[-1])
        return outputs.gather(1, index).squeeze(1)


@dataclass
class Example:
    """One sequence to look inside the network with: a batch of one, and a label per time step
    (the symbol, bit or character read at that step). Padding is already left out."""

    batch: Batch
    labels: list[str]


class Task:
    """What every task defines: `name` (task=NAME), `Config` (a dataclass of its keys with a
    `validate()` that raises a one-line ConfigError; it holds `name` and `label`, which names the
    run directory), `input_size`/`vocab_size` and `num_classes`, `train_batches`,
    `train_batch_count`, `eval_batches`, `baseline`, `example` and `describe`; and where the
    defaults below do not fit: `score`/`metrics`, `objective`, `streaming`, `max_lag`,
    `max_length`, `curriculum_key`/`stage_config`, `forward`/`predict` (a decoder's inputs)."""

    name: ClassVar[str]
    Config: ClassVar[type]
    streaming: ClassVar[bool] = False
    #: The validation metric that selects (best model, sweeps) and its direction.
    objective: ClassVar[tuple[str, str]] = ("accuracy", "max")
    #: Token ids in and a distribution over the same tokens out (a language model): the model
    #: embeds them, and may tie its output layer to the embedding.
    token_inputs: ClassVar[bool] = False
    #: What one scored target is, for speeds ("chars/s").
    unit: ClassVar[str] = "targets"
    #: Its batches carry `decoder_inputs` and `predict` decodes: it needs a model family with a
    #: decoder (`ModelFamily.decoder`), which the config check requires.
    decodes: ClassVar[bool] = False
    #: With `decodes`: it also runs with a plain recurrent model, which reads the source and then
    #: the answer as one sequence (Learning to Execute's form, rnnexp.models.one_sequence).
    one_sequence: ClassVar[bool] = False

    #: The task key a curriculum (`train.curriculum`) steps through; None: no curriculum.
    curriculum_key: ClassVar[Optional[str]] = None
    #: The curriculum's current value of that key (training data only); None: the target.
    stage: Any = None

    # Set by subclasses in __init__:
    cfg: Any             # the task's config: the target (validation and test always use it)
    input_size: int      # features per step (one-hot or bits); 0 when inputs are token ids
    vocab_size: int = 0  # > 0: inputs are token ids, the model embeds them
    num_classes: int     # outputs per step (1 for a regression)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" in cls.__dict__:
            _REGISTRY[cls.name] = cls

    @classmethod
    def validate_with(cls, task_cfg: Any, model_cfg: Any, train_cfg: Any) -> None:
        """Checks that need the model or training config too (override where needed)."""

    # -- curriculum --------------------------------------------------------------------------
    @classmethod
    def stage_config(cls, cfg: Any, value: Any) -> Any:
        """The task config of one curriculum stage: the target's, with `curriculum_key` = value."""
        return replace(cfg, **{cls.curriculum_key: value})  # type: ignore[arg-type]

    @classmethod
    def example_stages(cls, cfg: Any) -> list[Any]:
        """Stages to suggest where a curriculum is wrong: here a quarter and a half of the target's number."""
        target = getattr(cfg, cls.curriculum_key)  # type: ignore[arg-type]
        return sorted({max(1, target // 4), max(1, target // 2)} - {target}) or [target]

    @classmethod
    def beyond_target(cls, cfg: Any, stage_cfg: Any) -> Optional[str]:
        """What makes a curriculum stage harder than the target (a curriculum leads up to it), or
        None: here, a number the stage sets above the target's (a length, delay, bit count or nesting)."""
        for f in fields(stage_cfg):
            mine, target = getattr(stage_cfg, f.name), getattr(cfg, f.name)
            if (isinstance(mine, (int, float)) and isinstance(target, (int, float)) and not isinstance(mine, bool)
                    and mine > target):
                return f"sets task.{f.name}={mine}, above the target's {target}"
        return None

    def set_stage(self, value: Any) -> None:
        """Train on the stage `value` from the next epoch on (None: the target)."""
        self.stage = value

    def stage_batches(self, make: Callable[[Any, torch.Generator], list[Batch]]) -> Iterator[Batch]:
        """`eval_batches("stage")`: held-out batches of the curriculum's current stage, made once
        per stage by `make(stage config, generator)` and kept. The generator is the stage's own
        stream under `train.seed` (`self.seed`); a hash-split task draws them from its validation part."""
        cache = self.__dict__.setdefault("_stage_batches", {})
        if self.stage not in cache:
            cache[self.stage] = make(self.train_cfg, stage_generator(self.seed, self.stage))
        return iter(cache[self.stage])

    def mix(self, stages: list[Any], share: float) -> None:
        """Draw `share` of the training examples (of the batches, where a task mixes per batch) from a
        stage chosen uniformly among `stages` (None: the target), the rest from the current stage
        (train.curriculum_strategy=mix|combined)."""
        self.mixing = (list(stages), share)

    def mix_configs(self, stages: list[Any]) -> list[tuple[Any, Any]]:
        """(stage, its task config) of every stage a mixing curriculum draws from uniformly (None:
        the target). A task may add its own dimensions (execute: the nesting)."""
        return [(stage, self.cfg if stage is None else self.stage_config(self.cfg, stage)) for stage in stages]

    def mix_choices(self, epoch: int, count: int, share: float, options: int) -> tuple[torch.Tensor, torch.Tensor]:
        """For each of `count` batches (or examples) of epoch `epoch`: whether it is mixed (with
        probability `share`) and which of `options` stages it would come from, drawn from the
        epoch's own stream (an exact resume)."""
        chooser = stream(self.seed, "mix", epoch)
        return torch.rand(count, generator=chooser) < share, torch.randint(options, (count,), generator=chooser)

    def epoch_batches(self, epoch: int) -> Iterator[Batch]:
        """What the engine trains on in epoch `epoch`: `train_batches`, or under a mixing curriculum
        each batch from its own stage, chosen by the epoch's own stream (an exact resume). The
        built-in tasks mix per example instead (rnnexp.tasks.mixing); this per-batch form is for a
        task that can only make whole epochs of a stage."""
        mixing = getattr(self, "mixing", None)
        if mixing is None:
            return self.train_batches(epoch)
        stages, share = mixing
        current, count = self.stage, self.train_batch_count()
        mixed, drawn_picks = self.mix_choices(epoch, count, share, len(stages))
        picks = drawn_picks.tolist()
        drawn: dict[int, list[Batch]] = {}
        for index in sorted(set(picks[i] for i in range(count) if mixed[i])):
            self.set_stage(stages[index])  # (a FixedSetTask notes the stage for its data report)
            drawn[index] = list(self.train_batches(epoch))
        self.stage = current
        own = list(self.train_batches(epoch)) if not bool(mixed.all()) else []
        return iter([drawn[picks[i]][i] if mixed[i] else own[i] for i in range(count)])

    @property
    def train_cfg(self) -> Any:
        """The config training data is drawn from: the curriculum's stage, else the target."""
        return self.cfg if self.stage is None else self.stage_config(self.cfg, self.stage)

    # -- data --------------------------------------------------------------------------------
    def train_batches(self, epoch: int) -> Iterator[Batch]:
        """The batches of training epoch `epoch` (1-based), reproducible from (seed, epoch)."""
        raise NotImplementedError

    def train_batch_count(self) -> int:
        """Batches in one training epoch (for the progress bar)."""
        raise NotImplementedError

    def eval_batches(self, split: str) -> Iterator[Batch]:
        """The fixed held-out batches of `split` (one of SPLITS: "val", "test"; both on the target),
        or "stage": held-out batches of the curriculum's current stage (tasks with a curriculum)."""
        raise NotImplementedError

    # -- applying a model --------------------------------------------------------------------
    def forward(self, model: torch.nn.Module, batch: Batch, state: Any) -> tuple[torch.Tensor, Any]:
        """The model's per-step outputs on `batch` from `state` in training: (B, T, C), new state.
        With decoder inputs the model reads them too (teacher forcing)."""
        if batch.decoder_inputs is not None:
            return model(batch.inputs, state, decoder_inputs=batch.decoder_inputs, source_lengths=batch.lengths)
        return model(batch.inputs, state)

    def predict(self, model: torch.nn.Module, batch: Batch, state: Any) -> tuple[torch.Tensor, Any]:
        """The outputs scored in validation and test: as in training by default; a task whose
        model writes a sequence decodes it here without the true previous outputs
        (`rnnexp.tasks.decoding.greedy_decode`)."""
        return self.forward(model, batch, state)

    # -- scoring -----------------------------------------------------------------------------
    def readout(self, outputs: torch.Tensor, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-step outputs (B, T, C) -> the scored outputs (N, C) and their targets (N,)."""
        if not self.streaming:
            return batch.last_outputs(outputs), batch.targets  # many-to-one: the answer at the last step
        logits, targets = outputs.reshape(-1, outputs.shape[-1]), batch.targets.reshape(-1)
        if batch.mask is None:
            return logits, targets
        keep = batch.mask.reshape(-1)
        return logits[keep], targets[keep]

    def score(self, outputs: torch.Tensor, batch: Batch) -> Score:
        """The loss and metric sums of one batch (default: cross-entropy of the readout)."""
        return classification(*self.readout(outputs, batch))

    def score_seeds(self, outputs: torch.Tensor, batches: list[Batch]) -> Optional[tuple[torch.Tensor, list[str], torch.Tensor]]:
        """G seeds' scores at once (a packed group, rnnexp.engine.packed): `outputs` (G, B, T, C),
        seed g's of `batches[g]` (padded on the right to T). Returns (G,) losses, the sums' keys
        and their (G, keys) values; None where the task scores its own way (then `score`, seed by
        seed). Here: the default cross-entropy at each sequence's last step (`score`'s own)."""
        if type(self).score is not Task.score or type(self).readout is not Task.readout or self.streaming:
            return None
        G, B, _, C = outputs.shape
        if all(b.lengths is not None and not b.left_padded for b in batches):
            last = torch.stack([b.lengths for b in batches]) - 1  # (each sequence's own last step)
        else:
            last = torch.stack([b.lengths - 1 if b.lengths is not None and not b.left_padded
                                else torch.full((B,), b.inputs.shape[1] - 1, device=outputs.device) for b in batches])
        logits = outputs.gather(2, last.view(G, B, 1, 1).expand(G, B, 1, C)).squeeze(2).float()
        targets = torch.stack([b.targets for b in batches])
        losses = F.cross_entropy(logits.reshape(G * B, C), targets.reshape(-1), reduction="none").view(G, B).mean(1)
        count = torch.full((G,), float(B), device=outputs.device)
        with torch.no_grad():
            correct = (logits.argmax(-1) == targets).sum(1).float()
        return losses, ["loss", "correct", "count"], torch.stack([losses.detach() * count, correct, count], 1)

    def metrics(self, sums: dict[str, float]) -> dict[str, float]:
        """Added-up sums -> named metrics; `loss` and `accuracy` at least (the engine prefixes
        them with the split: train/loss, val/accuracy, test/...)."""
        return mean_metrics(sums)

    def baseline(self) -> dict[str, float]:
        """Reference values a model that learned nothing scores (e.g. {"loss": 0.167}): the score of
        `memoryless_outputs` (tests/test_contract.py checks that they agree)."""
        return {}

    def memoryless_outputs(self, batch: Batch) -> torch.Tensor:
        """(B, T, C) outputs of the best model that remembers nothing, whose score is `baseline()`.
        Default: every class equally likely (right where the classes are)."""
        steps = batch.inputs.shape[1]
        return torch.zeros(batch.inputs.shape[0], steps, self.num_classes)

    # -- what else a run shows or keeps ------------------------------------------------------
    def describe(self) -> str:
        return self.name

    def max_lag(self) -> Optional[int]:
        """The longest time lag the task can pose (for the chrono initialisation); None: unknown."""
        return None

    def max_length(self) -> Optional[int]:
        """The most steps one batch can have (a window over a whole sequence, a position
        table); None: no bound (a stream is cut into chunks of its own length)."""
        return None

    def example(self, text: Optional[str] = None) -> Example:
        """A sequence to look inside the network with (figures of the hidden state): a fixed
        validation example when `text` is None, else `text` parsed in the task's own alphabet
        (a QRSU string such as "BaXbcYdE", a bit string, a prompt); a symbol outside the
        alphabet is a one-line ConfigError."""
        raise NotImplementedError

    def replay_view(self, example: Example) -> tuple[Batch, Any, list[str]]:
        """What the pictures of states and gradients replay (rnnexp.insight.look): the batch the
        model reads, what scores its outputs (the task, or a callable (outputs, batch) -> Score) and
        a label per step. Default: the example as it is."""
        return example.batch, self, list(example.labels)

    def class_label(self, index: int) -> str:
        """What output class `index` is called (QRSU: "R", charlm: the character); default: the number."""
        return str(index)

    def prediction_text(self, outputs: torch.Tensor, batch: Batch) -> str:
        """What the model answers on a batch of one (rnnexp-inspect): the class with its
        probability, a value for a regression, or the answer at every scored step."""
        logits, targets = self.readout(outputs, batch)
        if self.num_classes == 1:
            return f"prediction {float(logits.reshape(-1)[-1]):.4f}, target {float(targets.reshape(-1)[-1]):.4f}"
        probs = torch.softmax(logits.float(), dim=-1)
        if len(targets) == 1:
            k = int(probs[0].argmax())
            return (f"prediction {self.class_label(k)} with probability {float(probs[0, k]):.3f}, target "
                    f"{self.class_label(int(targets[0]))} (probability {float(probs[0, int(targets[0])]):.3f})")
        guesses = probs.argmax(-1)
        shown = "".join(self.class_label(int(k)) for k in guesses[-60:])
        right = int((guesses == targets).sum())
        return f"prediction at each scored step (the last {min(60, len(guesses))}): {shown}; {right} of {len(targets)} right"

    def sample(self, model: torch.nn.Module, device: torch.device, seed: int) -> Optional[str]:
        """A text sample to log after an epoch (character models); None for most tasks."""
        return None

    def data_report(self, epochs: int) -> dict[str, Any]:
        """What results.json says of the data (a hash split's space and measured overlap), given
        the epochs trained; {} for tasks with nothing to say."""
        return {}

    def artifacts(self) -> dict[str, str]:
        """Files (name -> text) to write into the run directory, e.g. a vocabulary."""
        return {}

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint must hold to go on with the same data (a curriculum's stage, a
        vocabulary); plain values only."""
        return {"stage": self.stage}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what `state_dict` returned (on resume)."""
        self.stage = state.get("stage")

    def inherit(self, state: dict[str, Any]) -> None:
        """A warm start (train.init_from): take from the source run's task state what its weights
        need (the character model's vocabulary); its curriculum stage stays behind."""


def task_names() -> list[str]:
    """Every registered task (task=NAME), sorted."""
    _import_all()
    return sorted(_REGISTRY)


def task_class(name: Any) -> type[Task]:
    if name not in task_names():
        raise ConfigError(f"task={name!r} is unknown; choose one of {', '.join(task_names())}")
    return _REGISTRY[name]


def build_task(task_cfg: Any, batch_size: int, seed: int) -> Task:
    return task_class(task_cfg.name)(task_cfg, batch_size=batch_size, seed=seed)


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """The RNG of training epoch `epoch` under `train.seed`: epoch e's data never depends on the
    epochs before it, so a resumed run sees exactly the data an uninterrupted one would."""
    return stream(seed, "train", epoch)


def split_generator(heldout_seed: int, split: str) -> torch.Generator:
    """The RNG of the fixed held-out split `split` ("val" or "test") under `task.heldout_seed`:
    the same sets for every `train.seed`, independent of each other and of all training data."""
    return stream(heldout_seed, split)


def stage_generator(seed: int, stage: Any) -> torch.Generator:
    """The RNG of the held-out set of curriculum stage `stage` under `train.seed` (the stage's value
    names its stream)."""
    return stream(seed, "stage", zlib.crc32(repr(stage).encode()))


def check_sizes(cfg: Any) -> None:
    """The sizes every sequence task has: fresh training sequences per epoch, fixed validation
    and test sets, and the seed of those two (a one-line ConfigError naming the key)."""
    for key in ("train_size", "val_size", "test_size"):
        require(getattr(cfg, key) >= 1, f"task.{key}", getattr(cfg, key), "use an integer >= 1")
    require(cfg.heldout_seed >= 0, "task.heldout_seed", cfg.heldout_seed, "use an integer >= 0")


def num_batches(total: int, batch_size: int) -> int:
    """Batches (or chunks) of at most `batch_size` that cover `total` items (or steps)."""
    return max(1, math.ceil(total / batch_size))


def _import_all() -> None:
    import importlib
    import pkgutil

    import rnnexp.tasks as pkg

    for info in pkgutil.iter_modules(pkg.__path__):  # helpers too: they define no Task, and cost nothing
        importlib.import_module(f"rnnexp.tasks.{info.name}")
