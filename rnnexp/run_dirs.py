"""Run directories that are never shared, and that a resumed run gets back.

A directory holds one run (or one sweep). Fresh directories are claimed with an atomic mkdir; a
directory given on the command line (`hydra.run.dir=X`, `hydra.sweep.dir=X`) is checked and
locked by `claim` before Hydra writes anything into it: another live run there, or a finished or
stopped run that is not being resumed, is a one-line refusal that touches nothing.

Registered as OmegaConf resolvers (used in conf/config.yaml's `hydra.run.dir` / `hydra.sweep.dir`):

* `${rnnexp_fresh_dir:PATH}`: PATH, or PATH-2, PATH-3, ... if taken. The directory is claimed with
  an atomic mkdir, so two runs started in the same second never share one. Cached, so every
  later resolution in the process (and in Hydra's per-job sweep configs) gets the same answer.
* `${rnnexp_run_dir:RESUME,FRESH}`: the run directory to resume when `train.resume` is set.
* `${rnnexp_if_resume:RESUME,THEN,ELSE}`: where Hydra records the config (a resume keeps the first).
* `${rnnexp_job_dir:}`: a sweep job's directory, as the sweep's plan names it (rnnexp.sweep.jobs).
"""

from __future__ import annotations

import atexit
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Optional

from omegaconf import OmegaConf

from rnnexp.errors import ConfigError, Rejected, RnnexpError, RunDirError
from rnnexp.run_lock import RunLock, in_use, is_locked, read_holder



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
    if not OmegaConf.has_resolver("rnnexp_job_dir"):
        from rnnexp.sweep.jobs import job_dir

        OmegaConf.register_new_resolver("rnnexp_job_dir", job_dir)


# -- one run per directory ------------------------------------------------------------------------
#: What a directory that holds a run (or a sweep) has in it; Hydra's own files count too.
RUN_MARKS = ("results.json", "checkpoint.pt", "best.pt", ".hydra", "run.log", "jobs.json", "multirun.yaml")


def holds_run(directory: Path) -> Optional[str]:
    """What run (or sweep) `directory` holds, in a few words; None when it holds none."""
    if not directory.is_dir():
        return None
    marks = [m for m in RUN_MARKS if (directory / m).exists()]
    jobs = list(directory.glob("*/results.json"))
    if not marks and not jobs:
        return None
    if (directory / "results.json").is_file():
        try:
            status = json.loads((directory / "results.json").read_text()).get("status", "unknown")
        except (OSError, ValueError, AttributeError):
            status = "unreadable"
        return f"a {status} run"
    if jobs or (directory / "jobs.json").exists() or (directory / "multirun.yaml").exists():
        return f"a sweep ({len(jobs)} job result{'s' * (len(jobs) != 1)})"
    return "a run that left no results.json"


_held: list[RunLock] = []


def claim(directory: str | Path, *, what: str, resume: bool, overwrite: bool) -> Path:
    """Make `directory` this process's own before anything is written into it (Hydra's callbacks
    call this before Hydra creates it, appends to run.log or writes .hydra/): refused, with one
    line and nothing touched, when a live run holds it (or the sweep it belongs to), or when it
    holds a finished, stopped or failed run and this is no resume; `overwrite` first moves that run
    aside to `<directory>.replaced-<time>` (never deleted). Held until `release_all`."""
    directory = Path(directory).expanduser()
    key = "hydra.sweep.dir" if what == "sweep" else "hydra.run.dir"
    for place in (directory, directory.parent):  # (the parent: a sweep's job resumed on its own)
        if is_locked(place):
            raise RunDirError(in_use(place, read_holder(place), resuming=resume))
    held = holds_run(directory)
    if held is not None and not resume:
        if not overwrite:
            from rnnexp.sweep.jobs import read_plan

            again = (read_plan(directory).get("resume", "rnnexp -m ... train.resume=auto") if what == "sweep"
                     else f"train.resume={directory}" if (directory / "checkpoint.pt").is_file() else None)
            options = [f"resume it with {again}"] if again else []
            options += [f"move it aside with train.overwrite=true (kept as {directory.name}.replaced-<time>)",
                        f"choose another {key}"]
            raise RunDirError(f"{directory} already holds {held}; a directory holds one {what}: "
                              + ", ".join(options[:-1]) + f", or {options[-1]}")
        stamp = time.strftime("%Y%m%d-%H%M%S")
        aside = next(p for n in range(1, 1000)
                     if not (p := directory.with_name(f"{directory.name}.replaced-{stamp}" + (f"-{n}" if n > 1 else ""))).exists())
        directory.rename(aside)
        print(f"rnnexp: train.overwrite=true: the {held.removeprefix('a ')} that was in {directory} is now in {aside}",
              file=sys.stderr)
    directory.mkdir(parents=True, exist_ok=True)
    lock = RunLock(directory, what, resuming=resume)
    lock.acquire()
    if not _held:
        atexit.register(release_all)
    _held.append(lock)
    return directory


def check_instructions(config: Any) -> None:
    """train.overwrite (start afresh, the old run moved aside) and train.resume (continue it) exclude each other."""
    resume = OmegaConf.select(config, "train.resume")
    if OmegaConf.select(config, "train.overwrite", default=False) and resume is not None:
        raise ConfigError(f"train.overwrite=true moves the run in a directory aside and starts afresh, "
                          f"train.resume={resume} continues it; choose one")


def claim_for_hydra(directory: str, config: Any, what: str) -> None:
    """`claim` from a Hydra callback, with the command line's train.resume and train.overwrite: a
    refusal (or an unwritable directory) travels as Rejected, which Hydra's callback machinery does
    not swallow, and main() prints it as one line."""
    resume = OmegaConf.select(config, "train.resume")
    try:
        check_instructions(config)
        if what == "sweep" and resume == "auto":
            from rnnexp.sweep.jobs import check_same_sweep

            check_same_sweep(Path(directory).expanduser(), config)
        claim(directory, what=what, resume=resume is not None if what == "run" else resume == "auto",
              overwrite=bool(OmegaConf.select(config, "train.overwrite", default=False)))
    except (RnnexpError, OSError) as err:
        raise Rejected(err) from err


def release_all() -> None:
    while _held:
        _held.pop().release()

register()
