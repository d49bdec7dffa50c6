"""Typed, validated run configuration.

Hydra composes the YAML files in `conf/` (the only place defaults live); `load_run_config`
turns the composed DictConfig into the dataclasses below. OmegaConf checks the types against
these schemas, and each schema's `validate` checks ranges and combinations, so every mistake
becomes a one-line `ConfigError` before any work (or any output directory) is started.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Optional, TypeVar

from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException

from rnnexp.errors import ConfigError, require, require_choice
from rnnexp.models.family import check_fits_in_memory, families_with, family_class, family_names, not_a_key_of

OPTIMIZERS = ("rmsprop", "adam", "sgd")
STRATEGIES = ("none", "naive", "mix", "combined")  # train.curriculum_strategy (rnnexp.engine.curriculum)


def per_cell(cell: str, choices: Any) -> Any:
    """`${rnnexp_per_cell:${model.cell},{rnn: a, lstm: b, gru: c}}`: the choice for the chosen cell,
    so one preset (experiment=long_lags) can recommend the setting that works for each cell. A
    model family without cells (model=mlp) cannot use such a preset: `check_per_cell` says so in
    one line before anything resolves."""
    if cell not in choices:
        raise ConfigError(f"this preset has no setting for model.cell={cell}; it knows {', '.join(choices)}")
    return choices[cell]


def suffix(separator: str, value: Any, default: Any = None) -> str:
    """`${rnnexp_suffix:-,${model.init},default}`: "-" and the value, or nothing where the value is
    its default or unset, so that names say what is not the default (a run directory
    `..._qrsu-hard_rnn-identity_long_lags`, and plain `..._qrsu-easy_lstm`); a switch that is on
    gives the separator alone (`${rnnexp_suffix:-reversed,${model.reverse_source},false}`)."""
    if value is None or str(value) in ("", "None", "null", str(default)):
        return ""
    if value is True:  # a switch that is on: the separator alone names it (`-reversed`)
        return separator
    return f"{separator}{str(value).replace('/', '-')}"  # (a preset in a folder: experiment=mine/fast)


if not OmegaConf.has_resolver("rnnexp_per_cell"):
    OmegaConf.register_new_resolver("rnnexp_per_cell", per_cell)
if not OmegaConf.has_resolver("rnnexp_suffix"):
    OmegaConf.register_new_resolver("rnnexp_suffix", suffix)
SECTIONS = ("task", "model", "train")


@dataclass
class TrainConfig:
    optimizer: str
    lr: float
    momentum: float
    weight_decay: float
    grad_clip: Optional[float]
    divergence_factor: Optional[float]
    precision: str
    batch_size: int
    epochs: int
    time_limit_minutes: Optional[float]
    batches_per_epoch: Optional[int]
    target_accuracy: Optional[float]
    lr_schedule: str
    lr_patience: int
    lr_factor: float
    seed: int
    device: str
    cuda_graph: str
    threads: str
    progress: str
    log_every_steps: int
    checkpoint_minutes: float
    insight_every: int
    curriculum: Optional[list[Any]]
    curriculum_threshold: float
    resume: Optional[str]
    pack_seeds: str = "auto"  # a sweep's seeds of one setting as one packed model (rnnexp.sweep.launcher)
    overwrite: bool = False  # an instruction for the run's start, not saved with the run (checkpoint.INSTRUCTIONS)
    init_from: Optional[str] = None  # a run directory whose best model this run starts from (warm start)
    curriculum_strategy: str = "naive"  # none | naive | mix | combined (rnnexp.engine.curriculum)
    teacher_forcing: float = 1.0  # a decoder reads the true previous symbol with this probability (rnnexp.engine.teacher_forcing)
    teacher_forcing_end: Optional[float] = None  # scheduled sampling: the probability goes linearly to this by the last epoch

    def validate(self) -> None:
        require_choice("train.optimizer", self.optimizer, OPTIMIZERS)
        require(self.lr > 0, "train.lr", self.lr, "use a learning rate > 0, e.g. 1e-3")
        require(self.momentum >= 0, "train.momentum", self.momentum, "use >= 0")
        require(self.weight_decay >= 0, "train.weight_decay", self.weight_decay, "use >= 0")
        if self.grad_clip is not None:
            require(self.grad_clip > 0, "train.grad_clip", self.grad_clip, "use a norm > 0 or null")
        if self.divergence_factor is not None:
            require(self.divergence_factor > 1, "train.divergence_factor", self.divergence_factor,
                    "use a factor > 1 (10 by default), or null to judge only NaN and infinity")
        require_choice("train.precision", self.precision, ("fp32", "bf16"))
        require(self.batch_size >= 1, "train.batch_size", self.batch_size, "use an integer >= 1")
        require(self.epochs >= 1, "train.epochs", self.epochs, "use an integer >= 1")
        if self.time_limit_minutes is not None:
            require(self.time_limit_minutes > 0, "train.time_limit_minutes", self.time_limit_minutes, "use > 0 or null")
        if self.batches_per_epoch is not None:
            require(self.batches_per_epoch >= 1, "train.batches_per_epoch", self.batches_per_epoch, "use >= 1 or null")
        if self.target_accuracy is not None:
            require(0 < self.target_accuracy <= 1, "train.target_accuracy", self.target_accuracy, "use 0 < target <= 1 or null")
        require_choice("train.lr_schedule", self.lr_schedule, ("none", "plateau"))
        require(self.lr_patience >= 0, "train.lr_patience", self.lr_patience, "use >= 0")
        require(0 < self.lr_factor < 1, "train.lr_factor", self.lr_factor, "use 0 < factor < 1")
        require(self.seed >= 0, "train.seed", self.seed, "use an integer >= 0")
        require(self.device == "auto" or self.device == "cpu" or self.device.startswith("cuda"),
                "train.device", self.device, "use auto, cpu, cuda or cuda:N")
        require_choice("train.cuda_graph", self.cuda_graph, ("auto", "off"))
        require_choice("train.pack_seeds", self.pack_seeds, ("auto", "off"))
        require_choice("train.curriculum_strategy", self.curriculum_strategy, STRATEGIES)
        require(0.0 <= self.teacher_forcing <= 1.0, "train.teacher_forcing", self.teacher_forcing,
                "use a probability 0 <= p <= 1 (1: always the true previous symbol)")
        if self.teacher_forcing_end is not None:
            require(0.0 <= self.teacher_forcing_end <= 1.0, "train.teacher_forcing_end", self.teacher_forcing_end,
                    "use a probability 0 <= p <= 1, or null for a constant train.teacher_forcing")
        require(self.threads == "auto" or (self.threads.isdigit() and int(self.threads) >= 1),
                "train.threads", self.threads, "use auto or an integer >= 1")
        if self.device.startswith("cuda"):
            import torch

            require(torch.cuda.is_available(), "train.device", self.device,
                    "CUDA is not available here; use train.device=cpu or auto")
            index = self.device.partition(":")[2]
            require(not index or (index.isdigit() and int(index) < torch.cuda.device_count()), "train.device",
                    self.device, f"this machine has {torch.cuda.device_count()} CUDA device(s): use cuda:0 .. "
                                 f"cuda:{torch.cuda.device_count() - 1}")
            require(self.precision != "bf16" or torch.cuda.is_bf16_supported(), "train.precision", self.precision,
                    "this GPU has no bfloat16; use train.precision=fp32")
        require_choice("train.progress", self.progress, ("auto", "bar", "lines"))
        require(self.log_every_steps >= 1, "train.log_every_steps", self.log_every_steps, "use an integer >= 1")
        require(self.checkpoint_minutes >= 0, "train.checkpoint_minutes", self.checkpoint_minutes,
                "use >= 0 (0 = after every epoch)")
        require(self.insight_every >= 0, "train.insight_every", self.insight_every, "use >= 0 epochs (0 = off)")
        require(0 < self.curriculum_threshold <= 1, "train.curriculum_threshold", self.curriculum_threshold,
                "use a validation accuracy 0 < threshold <= 1")
        if self.init_from is not None and self.resume is None:  # (a resumed warm start no longer needs its source)
            from pathlib import Path

            if not (Path(self.init_from).expanduser() / "best.pt").is_file():
                raise ConfigError(f"train.init_from={self.init_from} holds no best.pt; give the directory of a "
                                  f"finished run (its best model is the start)")


@dataclass
class RunConfig:
    task: Any   # the task's own Config dataclass (see rnnexp.tasks)
    model: Any  # the model family's own Config dataclass (see rnnexp.models.family)
    train: TrainConfig


T = TypeVar("T")


def typed(schema: type[T], node: Any, prefix: str) -> T:
    """Check `node` against the dataclass `schema` and return an instance; errors name `prefix.key`."""
    if not isinstance(node, DictConfig):
        raise ConfigError(f"{prefix} is missing or not a mapping; check the `{prefix}` section of the config")
    known = {f.name for f in fields(schema)}
    for key in node.keys():
        if key not in known:
            if prefix == "model" and (line := not_a_key_of(str(node.get("family")), f"model.{key}")):
                raise ConfigError(line)
            if prefix in SECTIONS:
                from rnnexp.report.errors import unknown_key_message

                raise ConfigError(unknown_key_message(f"{prefix}.{key}",
                                                      tasks=[str(node.get("name"))] if prefix == "task" else None))
            raise ConfigError(f"{prefix}.{key} is not a known key; valid keys: {', '.join(sorted(known))}")
    try:
        from rnnexp.argv import literal_container

        # Resolve in the full config, once: a literal "${" in free text (a prompt) stays text.
        node = OmegaConf.create(literal_container(OmegaConf.to_container(node, resolve=True)))
        merged = OmegaConf.merge(OmegaConf.structured(schema), node)
        obj = OmegaConf.to_object(merged)
    except OmegaConfBaseException as err:
        full = str(getattr(err, "full_key", "") or "")
        key = full if full.startswith(f"{prefix}.") else f"{prefix}.{full}" if full else prefix  # never model.model.x
        key = key.removeprefix("sample.")  # rnnexp-sample's keys are top-level
        why = one_line(str(err)).split(" full_key:")[0]
        why = why.split("raised while resolving interpolation: ", 1)[-1]  # a resolver's own one-line error
        if "is not a ListConfig, list or tuple" in why:  # (OmegaConf's words for a number where a list goes)
            value = OmegaConf.select(node, key.removeprefix(f"{prefix}."), default="?")
            why = f"{value!r} is not a list; give one in brackets, e.g. {key}=[{value},{value}] (--help says what it holds)"
        raise ConfigError(f"{key}: {why}") from err
    return obj  # type: ignore[return-value]


def one_line(text: str) -> str:
    return " ".join(str(text).split())


def load_run_config(cfg: DictConfig) -> RunConfig:
    """Compose-time config (DictConfig) -> validated RunConfig, or a one-line ConfigError."""
    from rnnexp.tasks import task_class  # tasks know their own schema

    for section in SECTIONS:
        if section not in cfg:
            raise ConfigError(f"the config has no `{section}` section; choose one with {section}=...")
    for key in cfg.keys():
        if key not in SECTIONS and key != "hydra":
            raise ConfigError(f"+{key}=... is not a key rnnexp knows (top-level keys: {', '.join(SECTIONS)}); "
                              f"remove it; settings live under task.*, model.* and train.* (--help lists them)")
    task_cls = task_class(cfg.task.get("name"))
    model = cfg.model
    if isinstance(model, DictConfig) and "family" not in model:  # an option file from before model families
        model = model.copy()
        with open_dict(model):
            model.family = "recurrent"
    family_cls = family_class(model.get("family") if isinstance(model, DictConfig) else None)
    check_per_cell(cfg)
    run = RunConfig(
        task=typed(task_cls.Config, cfg.task, "task"),
        model=typed(family_cls.Config, model, "model"),
        train=typed(TrainConfig, _stringify(cfg.train, "threads"), "train"),
    )
    run.task.validate()
    run.model.validate()
    run.train.validate()
    family_cls.validate_with(run.model, task_cls)
    if task_cls.decodes and not family_cls.decoder and not (task_cls.one_sequence and family_cls.reads_one_sequence):
        readers = "|".join(families_with(lambda f: f.decoder or (task_cls.one_sequence and f.reads_one_sequence)))
        raise ConfigError(f"task={task_cls.name} writes its answer as a sequence, and model family {family_cls.name} "
                          f"reads no decoder inputs; use a model with a decoder (model={readers})")
    if (run.train.teacher_forcing != 1.0 or run.train.teacher_forcing_end is not None) and not (
            task_cls.decodes and family_cls.decoder):
        key = "train.teacher_forcing" if run.train.teacher_forcing != 1.0 else "train.teacher_forcing_end"
        what = (f"task={task_cls.name} writes no sequence" if not task_cls.decodes else
                f"model family {family_cls.name} has no decoder (it reads the true answer as input)")
        fix = "use model=seq2seq" if task_cls.decodes else "use a task that decodes (task=reverse|decimal|execute) with model=seq2seq"
        raise ConfigError(f"{key} applies to an encoder-decoder's decoder, and {what}; remove it, or {fix}")
    if getattr(run.model, "param_budget", None) is None:  # (a budget sizes the model for the task)
        check_fits_in_memory(family_cls(run.model))
    task_cls.validate_with(run.task, run.model, run.train)
    validate_curriculum(task_cls, run)
    return run


def check_per_cell(cfg: DictConfig) -> None:
    """A preset that sets keys per cell (`${rnnexp_per_cell:${model.cell},...}`) with a model
    family that has no cells: one line naming the keys, before they fail to resolve."""
    if "cell" in cfg.model:
        return
    keys = [f"{section}.{key}" for section in SECTIONS if isinstance(cfg.get(section), DictConfig)
            for key, value in OmegaConf.to_container(cfg[section], resolve=False).items()  # type: ignore[union-attr]
            if isinstance(value, str) and "rnnexp_per_cell" in value]
    if keys:
        family = cfg.model.get("family")
        raise ConfigError(f"this preset chooses {', '.join(keys)} per cell (rnnexp_per_cell), and model family "
                          f"{family} has no cells; use the preset with model="
                          f"{'|'.join(families_with(lambda f: 'cell' in {x.name for x in fields(f.Config)}))}, or "
                          f"set those keys yourself without the preset")


def validate_curriculum(task_cls: Any, run: RunConfig) -> None:
    """Each stage of `train.curriculum` must be a valid value of the task's curriculum key."""
    stages = run.train.curriculum
    key = task_cls.curriculum_key
    if not stages and run.train.curriculum_strategy in ("mix", "combined"):
        example = (f"e.g. train.curriculum=[{','.join(map(str, task_cls.example_stages(run.task)))}], easier values "
                   f"of task.{key}" if key else "on a task with a curriculum")
        raise ConfigError(f"train.curriculum_strategy={run.train.curriculum_strategy} mixes the stages of "
                          f"train.curriculum, and none are given: add them ({example}), or drop the strategy")
    if not stages:
        return
    if key is None:
        from rnnexp.tasks.base import task_class, task_names

        keys = [f"task.{task_class(name).curriculum_key} ({name})" for name in task_names()
                if task_class(name).curriculum_key]
        raise ConfigError(f"train.curriculum is not available for task={task_cls.name}; it steps through "
                          f"{', '.join(keys)}; use train.curriculum=null")
    for index, value in enumerate(stages):
        try:
            stage = task_cls.stage_config(run.task, value)
            # (a stage sets the target's keys to values of their kind: 2.5 digits or True for a length
            # would pass a range check, and crash when data is drawn)
            if any(type(getattr(stage, f.name)) is not type(getattr(run.task, f.name)) for f in fields(stage)
                   if getattr(run.task, f.name) is not None and getattr(stage, f.name) is not None):
                raise TypeError(value)
            stage.validate()
        except TypeError as err:
            target = getattr(run.task, key)
            raise ConfigError(f"train.curriculum[{index}]={value!r} is not a valid task.{key}: use values of "
                              f"task.{key}'s kind, easier than the target ({target!r}), e.g. "
                              f"train.curriculum=[{','.join(map(str, task_cls.example_stages(run.task)))}]") from err
        except ConfigError as err:
            what, _, why = str(err).partition(" is invalid: ")
            if why and what.startswith("task.") and not what.startswith(f"task.{key}="):  # (execute's 2x9: the nesting)
                raise ConfigError(f"train.curriculum[{index}]={value!r} sets {what}, which is invalid: {why}") from err
            raise ConfigError(f"train.curriculum[{index}]={value!r} is not a valid task.{key}: "
                              f"{why or str(err)}") from err
        beyond = task_cls.beyond_target(run.task, stage)
        if beyond is not None and run.train.curriculum_strategy != "none":  # (none leaves the list unused)
            raise ConfigError(f"train.curriculum[{index}]={value!r} {beyond}: a curriculum's stages lead up to the "
                              f"target (validation and test use it); list easier stages, or a harder target")


def _stringify(node: DictConfig, key: str) -> DictConfig:
    """`train.threads=2` arrives as an int; the schema takes a string ("auto" or a count)."""
    node = node.copy()
    if key in node and node[key] is not None:
        node[key] = str(node[key])
    return node


def known_keys() -> list[str]:
    """Every `section.key` the schemas know (for "did you mean" hints)."""
    from rnnexp.tasks.base import _REGISTRY, _import_all

    _import_all()
    keys = {f"model.{f.name}" for name in family_names() for f in fields(family_class(name).Config)}
    keys |= {f"train.{f.name}" for f in fields(TrainConfig)}
    for task_cls in _REGISTRY.values():
        keys |= {f"task.{f.name}" for f in fields(task_cls.Config)}
    return sorted(keys)
