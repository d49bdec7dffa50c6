"""Model families: what the rest of rnnexp asks of a model, and which families there are.

A family is a `ModelFamily` subclass in the module `rnnexp/models/<name>.py`, where <name> is
the family's `name`; each option of the `model` config group (conf/model/*.yaml) names its
family with `family: <name>` and sets that family's keys. `model=rnn|lstm|gru` are the
`recurrent` family's options, one per cell; `model=mlp` is the `mlp` family. A family's module
must import without torch (checking a config never waits for torch, rnnexp.lazy); it imports
torch where it builds the network.

The protocol, in the order a run uses it:

    family = model_family(run.model)            the validated config -> the family
    size = family.size(task)                    e.g. {"hidden_size": 8}: the config's, or sized to
                                                model.param_budget with parameter_count()
    model = family.build(task, size)            an nn.Module: model(inputs, state) ->
                                                (outputs (B, T, C), state to carry)
    family.describe(size, params)               the start line; family.hparams(size): TensorBoard's
    family.lacks()                              what it cannot do, said once at the start

and, before torch is imported, `Config.validate()` and `memory_bytes()` (a lower bound checked
against free memory). Capabilities are class attributes: `cuda_graph` (its training step can be
captured as a CUDA graph), `pack_seeds` (seeds can train packed into one model: `packed`), `replay` (a
step-by-step replay for the pictures of states, gradients through time and gates), `decoder`
(it reads decoder inputs: an encoder-decoder), `reads_one_sequence` (a source, then an answer).
"""

from __future__ import annotations

import functools
import importlib
import os
from importlib import resources
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Optional, Union

from rnnexp.errors import ConfigError, ResourceError

if TYPE_CHECKING:
    import torch

#: The carried state: a tensor, or a tuple of them (the LSTM's (h, c)).
State = Union["torch.Tensor", tuple["torch.Tensor", ...]]

_REGISTRY: dict[str, type["ModelFamily"]] = {}
#: What the start line says a family lacks. (`pack_seeds` is said where it matters: when a sweep's
#: seeds are grouped, rnnexp.sweep.launcher.)
CAPABILITIES = {"cuda_graph": "no CUDA graph (eager steps on a GPU)",
                "replay": "no pictures of states, gradients through time or gates (no step-by-step replay)",
                "decoder": None}


class ModelFamily:
    name: ClassVar[str]
    Config: ClassVar[type]
    cuda_graph: ClassVar[bool] = False
    pack_seeds: ClassVar[bool] = False
    replay: ClassVar[bool] = False
    #: Reads a task's decoder inputs: `model(inputs, state, decoder_inputs=ids)` (an encoder-decoder);
    #: a task whose batches carry them (`Task.decoder_inputs`) needs such a family.
    decoder: ClassVar[bool] = False
    #: Its output at every step depends on everything read before: it can read a source and then an
    #: answer as one sequence (a task with `one_sequence`: Learning to Execute's form).
    reads_one_sequence: ClassVar[bool] = False
    #: The keys that set its size (named when it does not fit in memory).
    size_keys: ClassVar[tuple[str, ...]] = ("hidden_size",)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" in cls.__dict__:
            _REGISTRY[cls.name] = cls

    def __init__(self, cfg: Any):
        self.cfg = cfg

    @classmethod
    def validate_with(cls, cfg: Any, task_cls: Any) -> None:
        """Checks that need the task's class too (token inputs, ...); override where needed."""

    def memory_bytes(self) -> int:
        """A lower bound of the bytes training needs (weights, gradients, optimizer state), from
        the config alone; 0: no estimate."""
        return 0

    def size(self, task: Any) -> dict[str, int]:
        """The model's resolved size for `task`: the config's `hidden_size`, or the one whose
        `parameter_count` comes closest to `model.param_budget` (a family with other size keys
        overrides this)."""
        budget = getattr(self.cfg, "param_budget", None)
        if budget is None:
            return {"hidden_size": self.cfg.hidden_size}
        return {"hidden_size": size_for_budget(budget, lambda h: self.parameter_count(task, {"hidden_size": h}))}

    def parameter_count(self, task: Any, size: dict[str, int]) -> int:
        """The closed-form parameter count of `build(task, size)` (it sizes a model to a budget)."""
        raise NotImplementedError

    def build(self, task: Any, size: dict[str, int]) -> "torch.nn.Module":
        raise NotImplementedError

    def describe(self, size: dict[str, int], params: int) -> str:
        """What the start line says of the model, e.g. "lstm hidden 8 x 1 layer(s): 196 parameters"."""
        raise NotImplementedError

    def hparams(self, size: dict[str, int]) -> dict[str, Any]:
        """Plain values for TensorBoard's HParams and the summaries: its label and size at least."""
        return {"model": self.cfg.label, **size}

    def pack_refusal(self, task_cls: Any) -> Optional[str]:
        """Why seeds of this config cannot train packed (None: they can); only with `pack_seeds`."""
        return None if self.pack_seeds else f"model family {self.name} does not pack seeds"

    def packed(self, models: list[Any]) -> "torch.nn.Module":
        """With `pack_seeds`: the G models (one config, G seeds) as one network whose block g is
        model g, with `names`, `owner`, `pack_into`, `unpack`, `pack_states`, `unpack_state` as
        rnnexp.models.packed.PackedRecurrent has them (rnnexp.engine.packed trains it)."""
        raise NotImplementedError

    def lacks(self) -> Optional[str]:
        """One line naming what this family cannot do (None: it can do everything)."""
        missing = [text for capability, text in CAPABILITIES.items() if text and not getattr(self, capability)]
        return f"model family {self.name}: {'; '.join(missing)}" if missing else None


@functools.lru_cache(maxsize=1)
def model_options() -> dict[str, str]:
    """Each option of the `model` config group (conf/model/<option>.yaml) -> the family it names."""
    import yaml

    folder = resources.files("rnnexp.conf") / "model"
    options = {}
    for path in folder.iterdir():
        if path.name.endswith(".yaml"):
            try:
                family = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("family", "recurrent")
            except (OSError, yaml.YAMLError):
                continue  # a broken option file: composing it says what is wrong
            options[path.name.removesuffix(".yaml")] = str(family)
    return dict(sorted(options.items()))


def family_names() -> list[str]:
    """The families the options of the `model` config group name."""
    return sorted(set(model_options().values()))


def family_class(name: Any) -> type[ModelFamily]:
    """The family `name`, imported from rnnexp/models/<name>.py on first use."""
    if name not in _REGISTRY and name in family_names():  # (never any other module of the package)
        importlib.import_module(f"rnnexp.models.{name}")
    if name not in _REGISTRY:
        raise ConfigError(f"model.family={name!r} is unknown; choose one of {', '.join(family_names())} "
                          f"(with model=...: rnnexp --help lists the options)")
    return _REGISTRY[name]


def families_with(test: Callable[[type[ModelFamily]], bool]) -> list[str]:
    """The `model` options of the families that pass `test` (e.g. have a replay), for messages."""
    return [o for f in family_names() if test(family_class(f)) for o in options_of(f)]


def not_a_key_of(family: str, key: str, option: Optional[str] = None) -> Optional[str]:
    """The line for `model.<key>` given to `family` (chosen as model=`option`) when the key is
    another family's (model.weight_drop with model=mlp); None when no other family has it."""
    from dataclasses import fields

    keys = {name: [f"model.{f.name}" for f in fields(family_class(name).Config)] for name in family_names()}
    owners = [name for name in keys if key in keys[name] and name != family]
    if family not in keys or key in keys[family] or not owners:
        return None
    own = ", ".join(k for k in keys[family] if k != "model.family")
    chosen = option or "|".join(options_of(family))
    return (f"{key} does not apply to model={chosen} (model family {family}); it is a key of the {owners[0]} "
            f"family (model={'|'.join(options_of(owners[0]))}); {family}'s keys: {own}")


def model_family(cfg: Any) -> ModelFamily:
    return family_class(cfg.family)(cfg)


def options_of(family: str) -> list[str]:
    """The `model` options of a family, e.g. recurrent: ["gru", "lstm", "rnn"]."""
    return [option for option, named in model_options().items() if named == family]


def size_for_budget(budget: int, count: Callable[[int], int]) -> int:
    """The width w >= 1 whose `count(w)` is closest to `budget` (the count grows with w)."""
    w = 1
    while count(w + 1) <= budget:
        w += 1
    return w + 1 if abs(count(w + 1) - budget) < abs(count(w) - budget) else w


def available_memory() -> int:
    """Bytes this process could still allocate (MemAvailable on Linux, else physical memory)."""
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def check_fits_in_memory(family: ModelFamily) -> None:
    """Refuse, before anything is allocated, a model whose lower-bound memory need exceeds free memory."""
    need, have = family.memory_bytes(), available_memory()
    if need > have:
        keys = [f"model.{key}" for key in family.size_keys]
        settings = ", ".join(f"{key}={getattr(family.cfg, key.split('.', 1)[1])}" for key in keys)
        raise ResourceError(f"{settings} needs ~{need / 2**30:.1f} GiB for weights, gradients and optimizer state, "
                            f"but {have / 2**30:.1f} GiB are free; use a smaller {' or '.join(keys)}")


def carry_hidden_state(state: Optional[State]) -> Optional[State]:
    """The state to start the next chunk from: same values, no gradient history, float32.

    Truncated BPTT: without the detach, backward() would run through every earlier chunk (and
    fail, since their graphs are freed). The state still carries the memory forward; only the
    gradient stops at the chunk boundary. Not in place, so it works for the LSTM's (h, c) tuple.
    Under bf16 autocast the layer returns its state in bf16: it is carried (and checkpointed) in
    float32, so that a long stream does not round its memory to 8 bits of mantissa at every chunk.
    """
    if state is None:
        return None
    if isinstance(state, tuple):
        return tuple(s.detach().float() for s in state)  # type: ignore[return-value]
    return state.detach().float()
