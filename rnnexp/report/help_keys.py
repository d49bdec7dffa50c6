"""The task.* and model.* lines of `rnnexp --help`, made from the registries (every task's and
every model family's config dataclass), so a new task or model family appears there by itself.
conf/hydra/help/rnnexp.yaml calls them as `${rnnexp_help_keys:task}` and `${rnnexp_help_keys:model}`."""

from __future__ import annotations

import textwrap
from dataclasses import fields

from omegaconf import OmegaConf

#: Keys every config has and nobody sets by hand (the option's own name, the family).
IMPLIED = {"name", "family"}
WIDTH = 108


def keys_help(section: str) -> str:
    if section == "task":
        from rnnexp.tasks.base import task_class, task_names

        entries = [(f"task={name}", task_class(name).Config) for name in task_names()]
    else:
        from rnnexp.models.family import family_class, family_names, options_of

        entries = [(f"model={'|'.join(options_of(name))} ({name})", family_class(name).Config)
                   for name in family_names()]
    lines = []
    for head, schema in entries:
        own = getattr(schema, "__annotations__", {})  # a task's own keys before those of its base
        names = sorted((f.name for f in fields(schema) if f.name not in IMPLIED), key=lambda n: n not in own)
        keys = ", ".join(f"{section}.{name}" for name in names)
        lines += textwrap.wrap(f"{head}: {keys}", WIDTH, initial_indent="    ", subsequent_indent="      ")
    return "\n".join(lines)


def register() -> None:
    if not OmegaConf.has_resolver("rnnexp_help_keys"):
        OmegaConf.register_new_resolver("rnnexp_help_keys", keys_help)
