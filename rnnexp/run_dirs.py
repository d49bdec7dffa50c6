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
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any, Optional

from omegaconf import OmegaConf

from rnnexp.errors import RunDirError

log = logging.getLogger("rnnexp")


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


# -- one run per directory: the lock ---------------------------------------------------------------
LOCK = ".rnnexp.lock"
HEARTBEAT_S = 30.0         # the holder refreshes its lock this often
STALE_AFTER_S = 300.0      # a holder on another host is gone when its heartbeat is older than this
#: What a directory that holds a run (or a sweep) has in it; Hydra's own files count too.
RUN_MARKS = ("results.json", "checkpoint.pt", "best.pt", ".hydra", "run.log", "jobs.json", "multirun.yaml")


def _process_start(pid: int) -> Optional[str]:
    """The process's start time since boot (field 22 of /proc/PID/stat): a reused pid has another."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            return handle.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _this_job() -> Optional[str]:
    """The cluster job this process belongs to (a requeued submitit job keeps its id)."""
    if os.environ.get("SUBMITIT_EXECUTOR"):
        try:
            import submitit

            return str(submitit.JobEnvironment().job_id)
        except Exception:
            pass
    return os.environ.get("SLURM_JOB_ID")


def _alive(holder: dict[str, Any]) -> bool:
    """Whether the run that wrote a lock still lives: on this host, its process (the same one, not a
    reused pid); elsewhere, a heartbeat younger than STALE_AFTER_S."""
    if holder.get("host") != socket.gethostname():
        return time.time() - float(holder.get("heartbeat", 0)) < STALE_AFTER_S
    pid = int(holder.get("pid", 0))
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return holder.get("start") in (None, _process_start(pid))


def blocks(holder: Optional[dict[str, Any]]) -> bool:
    """Whether a lock's holder keeps this process out: alive, not this process, not this cluster job."""
    if holder is None or holder.get("pid") == os.getpid() and holder.get("host") == socket.gethostname():
        return False
    return _alive(holder) and not (holder.get("job") and holder["job"] == _this_job())


def read_lock(directory: Path) -> Optional[dict[str, Any]]:
    try:
        holder = json.loads((directory / LOCK).read_text())
        holder["heartbeat"] = (directory / LOCK).stat().st_mtime
        return holder
    except (OSError, ValueError):
        return None


def holds_run(directory: Path) -> Optional[str]:
    """What run (or sweep) `directory` holds, in a few words; None when it holds none."""
    if not directory.is_dir():
        return None
    marks = [m for m in RUN_MARKS if (directory / m).exists()]
    jobs = [p for p in directory.glob("*/results.json")]
    if not marks and not jobs:
        return None
    if (directory / "results.json").is_file():
        try:
            status = json.loads((directory / "results.json").read_text()).get("status", "unknown")
        except (OSError, ValueError, AttributeError):
            status = "unreadable"
        return f"a {status} run"
    if jobs or (directory / "jobs.json").exists() or (directory / "multirun.yaml").exists():
        return f"a sweep ({len(jobs)} job results)"
    return "a run that left no results.json"


class RunLock:
    """`directory/.rnnexp.lock`: pid, host, start time, command and cluster job of the run that
    holds the directory, its modification time the heartbeat (refreshed every HEARTBEAT_S by a
    daemon thread while the run lives). Released (deleted) at the end of the run; a killed run's
    lock is stale by the rules of `_alive`, and the next run takes it over."""

    def __init__(self, directory: Path):
        self.directory, self.path = directory, directory / LOCK
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def acquire(self, what: str) -> None:
        content = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "start": _process_start(os.getpid()),
                              "started": time.strftime("%Y-%m-%d %H:%M:%S"), "job": _this_job(),
                              "command": " ".join(sys.argv)})
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = read_lock(self.directory)
                if blocks(holder):
                    raise RunDirError(in_use(self.directory, holder, what))
                self.path.unlink(missing_ok=True)  # stale (or our own requeued job's): take it over
                continue
            with os.fdopen(fd, "w") as handle:
                handle.write(content)
            self._thread = threading.Thread(target=self._beat, name="rnnexp-lock-heartbeat", daemon=True)
            self._thread.start()
            return
        raise RunDirError(f"{self.directory}: could not take its lock {LOCK}; another run keeps taking it")

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            try:
                os.utime(self.path)
            except OSError:
                return

    def release(self) -> None:
        self._stop.set()
        holder = read_lock(self.directory)
        if holder is not None and holder.get("pid") == os.getpid() and holder.get("host") == socket.gethostname():
            self.path.unlink(missing_ok=True)


def in_use(directory: Path, holder: dict[str, Any], what: str) -> str:
    where = "" if holder.get("host") == socket.gethostname() else f" on {holder.get('host')}"
    return (f"{directory} is in use by the {what} of pid {holder.get('pid')}{where}, started {holder.get('started')}; "
            f"wait for it to end, or choose another {'hydra.sweep.dir' if what == 'sweep' else 'hydra.run.dir'}")


_held: list[RunLock] = []


def claim(directory: str | Path, *, what: str, resume: bool, overwrite: bool) -> Path:
    """Make `directory` this process's own before anything is written into it (Hydra's callbacks
    call this before Hydra creates it, appends to run.log or writes .hydra/): refused, with one
    line and nothing touched, when another live run holds it, or when it holds a finished or
    stopped run and this is no resume; `overwrite` first moves that run aside to
    `<directory>.replaced-<time>` (never deleted). Released at exit."""
    directory = Path(directory).expanduser()
    for place, owner in ((directory, what), (directory.parent, "sweep")):  # (a sweep's job, resumed alone)
        holder = read_lock(place)
        if holder is not None and blocks(holder):
            raise RunDirError(in_use(place, holder, owner))
    held = holds_run(directory)
    if held is not None and not resume:
        if not overwrite:
            again = "train.resume=auto" if what == "sweep" else f"train.resume={directory}"
            raise RunDirError(f"{directory} already holds {held}; a directory holds one {what}: resume it with "
                              f"{again}, move it aside with train.overwrite=true (kept as {directory.name}.replaced-<time>), "
                              f"or choose another {'hydra.sweep.dir' if what == 'sweep' else 'hydra.run.dir'}")
        stamp = time.strftime("%Y%m%d-%H%M%S")
        aside = next(p for n in range(1, 1000)
                     if not (p := directory.with_name(f"{directory.name}.replaced-{stamp}" + (f"-{n}" if n > 1 else ""))).exists())
        directory.rename(aside)
        log.warning(f"train.overwrite=true: the {held.removeprefix('a ')} that was in {directory} is now in {aside}")
    directory.mkdir(parents=True, exist_ok=True)
    lock = RunLock(directory)
    lock.acquire(what)
    if not _held:
        atexit.register(release_all)
    _held.append(lock)
    return directory


def release_all() -> None:
    while _held:
        _held.pop().release()


register()
