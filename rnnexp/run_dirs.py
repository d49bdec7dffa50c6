"""Run directories that are never shared, and that a resumed run gets back.

Registered as OmegaConf resolvers (used in conf/config.yaml's `hydra.run.dir` / `hydra.sweep.dir`):

* `${rnnexp_fresh_dir:PATH}`: PATH, or PATH-2, PATH-3, ... if taken. The directory is claimed with
  an atomic mkdir, so two runs started in the same second never share one. Cached, so every
  later resolution in the process (and in Hydra's per-job sweep configs) gets the same answer.
* `${rnnexp_run_dir:RESUME,FRESH}`: the run directory to resume when `train.resume` is set.
* `${rnnexp_if_resume:RESUME,THEN,ELSE}`: where Hydra records the config (a resume keeps the first).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf


def _is_set(resume: Any) -> bool:
    """A run directory to resume (`auto`, a sweep's own jobs, keeps Hydra's usual directories)."""
    return resume not in (None, "", "None", "null", "auto")


def claim_fresh_dir(path: str) -> str:
    base = Path(path).expanduser()
    try:
        base.parent.mkdir(parents=True, exist_ok=True)
    except OSError:
        return path  # Hydra's own mkdir reports it; the CLI turns that into one line
    for n in range(1, 1000):
        candidate = base if n == 1 else base.with_name(f"{base.name}-{n}")
        try:
            os.mkdir(candidate)
            return str(candidate)
        except FileExistsError:
            continue
        except OSError:
            return str(candidate)
    return path


def run_dir(resume: Any, fresh: str) -> str:
    return str(Path(str(resume)).expanduser()) if _is_set(resume) else claim_fresh_dir(fresh)


def if_resume(resume: Any, then: str, otherwise: str) -> str:
    return then if _is_set(resume) else otherwise


def register() -> None:
    if not OmegaConf.has_resolver("rnnexp_if_resume"):
        OmegaConf.register_new_resolver("rnnexp_if_resume", if_resume, use_cache=True)
    if not OmegaConf.has_resolver("rnnexp_fresh_dir"):
        OmegaConf.register_new_resolver("rnnexp_fresh_dir", claim_fresh_dir, use_cache=True)
    if not OmegaConf.has_resolver("rnnexp_run_dir"):
        OmegaConf.register_new_resolver("rnnexp_run_dir", run_dir, use_cache=True)


register()
