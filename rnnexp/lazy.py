"""Modules imported on first use: `from rnnexp.lazy import torch, F`.

Checking a config (`rnnexp --help`, `rnnexp train.lr=-1`) imports the task modules for their
config schemas, and `import torch` costs 1-2 s, several times the rest of the start-up: a
mistyped value would wait for torch only to print one line. The modules a config check imports
(the tasks, rnnexp.models.init, rnnexp.engine.threads) therefore name torch through these proxies,
which import the real module the first time an attribute is read (`torch.zeros`, `F.one_hot`),
i.e. when data is made or a model is built, never while a config is checked. So nothing may read `torch.<attr>` while such a module is imported: type
annotations stay strings (`from __future__ import annotations`), and default arguments, module
constants and class bodies must not touch torch.

Why not `importlib.util.LazyLoader`: it puts a half-loaded module into `sys.modules`, and a later
plain `import torch` elsewhere reads that module's `__spec__`, which loads it anyway (measured),
so the saving is lost on the first unrelated import. This proxy leaves `sys.modules` alone: the
real import, when it happens, is an ordinary one.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any


class lazy_module:
    """Stands for the module `name` and imports it when one of its attributes is first read."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._module: ModuleType | None = None

    def __getattr__(self, attr: str) -> Any:
        # Only called for attributes the proxy itself lacks, i.e. the module's.
        if attr.startswith("__") and attr.endswith("__"):
            raise AttributeError(attr)  # copy, pickle and inspect probe dunders: do not import for them
        module = self.__dict__.get("_module")  # not self._module: that could come back here
        if module is None:
            module = self._module = importlib.import_module(self.__dict__["_name"])
        return getattr(module, attr)

    def __repr__(self) -> str:
        state = "imported" if self._module is not None else "not imported yet"
        return f"<lazy module {self._name!r} ({state})>"


torch: Any = lazy_module("torch")
F: Any = lazy_module("torch.nn.functional")
np: Any = lazy_module("numpy")  # (~60 ms of a config error's ~0.5 s: rnnexp.tasks.splits names it)
