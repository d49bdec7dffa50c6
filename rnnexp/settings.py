"""What makes a run what it is: the keys it sets away from its task's and model's own defaults.

A run's settings are its group choices (`task`, `model`, and `experiment` when a preset was used)
and every task/model/train key whose resolved value differs from the config that `task=T model=M`
alone composes: a command-line override, and also what a preset set (experiment=long_lags gives
the ReLU RNN `model.init=identity`, the LSTM `model.init=chrono`). They go into results.json
(`settings`) and TensorBoard's HParams, name a sweep's job directories (the keys whose values
differ across its jobs), and group a study's runs (rnnexp.sweep.summary).

Composing the reference config takes Hydra ~0.1 s; it is cached per (task, model).
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any, Mapping, Optional, Sequence

from omegaconf import DictConfig, OmegaConf

from rnnexp.config import SECTIONS

#: Keys that are no setting: instructions for the start, and names made from other keys.
NOT_SETTINGS = ("train.resume", "train.overwrite", "task.label", "model.label")
#: Settings that change how a run runs, not what it computes: no part of a job's name or a group.
HOW_IT_RUNS = ("train.threads", "train.device", "train.progress", "train.log_every_steps", "train.checkpoint_minutes",
               "train.insight_every", "train.pack_seeds")
#: The keys a resumed run may change (rnnexp.engine.checkpoint); any other must equal the run's own.
RESUMABLE = ("train.epochs", "train.time_limit_minutes", "train.target_accuracy", "train.divergence_factor", "train.threads",
             "train.device", "train.cuda_graph", "train.progress", "train.checkpoint_minutes", "train.pack_seeds",
             "train.resume")


def plain(value: Any) -> Any:
    """A value as results.json and TensorBoard's HParams keep it: a scalar, or a list as its text."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return json.dumps(value)


def text(value: Any) -> str:
    """A setting as the summaries show and compare it (the way one would type it as an override)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def flat(config: Any) -> dict[str, Any]:
    """{"section.key": plain value} of a config's task/model/train (a DictConfig, resolved, or the
    plain dict a results.json keeps)."""
    out: dict[str, Any] = {}
    for section in SECTIONS:
        node = config.get(section) if isinstance(config, (Mapping, DictConfig)) else None
        if node is None:
            continue
        if isinstance(node, DictConfig):
            node = OmegaConf.to_container(node, resolve=True)
        for key, value in node.items():
            name = f"{section}.{key}"
            if name not in NOT_SETTINGS:
                out[name] = plain(value)
    return out


def model_option(model: Any) -> Optional[str]:
    """The `model=` option a model config came from: its cell (rnn, lstm, gru) or its family's option."""
    from rnnexp.models.family import model_options

    options = model_options()
    cell, family = model.get("cell"), model.get("family", "recurrent")
    if cell in options:
        return str(cell)
    if options.get(str(family)) == family:
        return str(family)
    return next((name for name, named in options.items() if named == family), None)


def choices(config: Any, overrides: Sequence[str] = (), recorded: Optional[Mapping[str, Any]] = None,
            use_hydra: bool = True) -> dict[str, str]:
    """The run's group choices (`task`, `model`, `experiment`): those Hydra recorded when it
    composed the run (`recorded`, a job's own composition, or the running app's; a user's own
    option such as model=lstm_big counts as itself), else what the config says (its task's name,
    its cell) and the overrides (`experiment=long_lags`)."""
    if recorded is None and isinstance(config, DictConfig) and "hydra" in config:  # a sweep's plan
        recorded = OmegaConf.to_container(config.hydra.runtime.choices)  # type: ignore[assignment]
    if recorded is None and use_hydra:
        try:
            from hydra.core.hydra_config import HydraConfig

            if HydraConfig.initialized():
                recorded = OmegaConf.to_container(HydraConfig.get().runtime.choices)  # type: ignore[assignment]
        except (ImportError, ValueError, AttributeError):
            pass
    recorded = recorded or {}
    out = {"task": str(recorded.get("task") or config["task"]["name"])}
    if (model := recorded.get("model") or model_option(config["model"])) is not None:
        out["model"] = str(model)
    experiment = recorded.get("experiment")
    for override in overrides:
        if override.startswith(("experiment=", "+experiment=")):
            experiment = override.split("=", 1)[1]
    if experiment not in (None, "", "null", "None"):
        out["experiment"] = str(experiment)
    return out


@lru_cache(maxsize=32)
def _reference(task: str, model: str) -> tuple[tuple[str, Any], ...]:
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    overrides = [f"task={task}", f"model={model}"]
    if GlobalHydra.instance().is_initialized():  # inside the CLI (or a test's compose context)
        config = compose(config_name="config", overrides=overrides)
    else:
        with initialize_config_module(config_module="rnnexp.conf", version_base="1.3"):
            config = compose(config_name="config", overrides=overrides)
    return tuple(flat(config).items())


def reference(task: str, model: Optional[str]) -> dict[str, Any]:
    """The resolved config of `task=T model=M` with nothing else: the defaults a run differs from.
    Empty when it cannot be composed (a task of a config directory rnnexp does not know)."""
    if model is None:
        return {}
    try:
        return dict(_reference(task, model))
    except Exception:  # (Hydra's own errors: the settings then list every key, which is still true)
        return {}


def settings_of(config: Any, overrides: Sequence[str] = (), recorded: Optional[Mapping[str, Any]] = None,
                use_hydra: bool = True) -> dict[str, Any]:
    """The run's group choices and every key whose value differs from its task's and model's defaults."""
    chosen = choices(config, overrides, recorded, use_hydra)
    defaults = reference(chosen["task"], chosen.get("model"))
    missing = object()
    return {**chosen, **{k: v for k, v in flat(config).items() if defaults.get(k, missing) != v}}


def naming_keys(settings: Sequence[Mapping[str, Any]]) -> list[str]:
    """The keys that some run sets, in first-seen order, less those that change only how it runs."""
    keys: list[str] = []
    for one in settings:
        keys += [k for k in one if k not in keys and k not in HOW_IT_RUNS]
    return keys
