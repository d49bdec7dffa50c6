"""The lock that makes a run directory one run's alone: `DIR/.rnnexp.lock`.

The lock is an exclusive `flock` on that file, held for the run's whole life: the kernel releases
it when the process ends, however it ends (kill -9 included), so on one host there is no stale
lock to judge and no window where two runs both hold it. The file's content names the holder
(pid, host, start time, what it runs, its cluster job) for the refusal message, and its
modification time is a heartbeat, refreshed every HEARTBEAT_S while the run lives: on a shared
file system whose locks do not reach other hosts, a holder on another host counts as alive while
its heartbeat is younger than STALE_AFTER_S, unless it is this very cluster job, requeued (the same
job id, a higher restart count), which takes its lock over.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any, Optional

from rnnexp.errors import RunDirError

LOCK = ".rnnexp.lock"
HEARTBEAT_S = 30.0       # the holder refreshes its lock this often
STALE_AFTER_S = 300.0    # a holder on another host is gone when its heartbeat is older than this


def this_job() -> tuple[Optional[str], int]:
    """(the cluster job this process belongs to, how often it was requeued): SLURM's, which
    submitit's jobs have too."""
    return os.environ.get("SLURM_JOB_ID"), int(os.environ.get("SLURM_RESTART_COUNT", "0") or 0)


def read_holder(directory: Path) -> Optional[dict[str, Any]]:
    """What the lock file says of its holder (with the heartbeat's age), None when unreadable."""
    path = Path(directory) / LOCK
    try:
        holder = json.loads(path.read_text())
        holder["age_s"] = time.time() - path.stat().st_mtime
        return holder if isinstance(holder, dict) else None
    except (OSError, ValueError):
        return None


def held_elsewhere(holder: Optional[dict[str, Any]]) -> bool:
    """A holder on another host that still beats, and is not this cluster job requeued."""
    if holder is None or holder.get("host") in (None, socket.gethostname()):
        return False
    job, restart = this_job()
    if job is not None and holder.get("job") == job and int(holder.get("restart") or 0) < restart:
        return False
    return float(holder.get("age_s", STALE_AFTER_S)) < STALE_AFTER_S


def in_use(directory: Path, holder: Optional[dict[str, Any]], resuming: bool = False) -> str:
    holder = holder or {}
    what = holder.get("what", "run")
    where = "" if holder.get("host") in (None, socket.gethostname()) else f" on {holder['host']}"
    who = f"the {what} of pid {holder['pid']}{where}, started {holder.get('started')}" if "pid" in holder \
        else f"another {what} (starting)"
    if resuming:
        return f"{directory} is in use by {who}; it is still running: resume it once it has stopped"
    key = "hydra.sweep.dir" if what == "sweep" else "hydra.run.dir"
    return f"{directory} is in use by {who}; wait for it to end, or choose another {key}"


def is_locked(directory: Path) -> bool:
    """Whether a live run holds `directory` (tried without taking it)."""
    try:
        fd = os.open(Path(directory) / LOCK, os.O_RDWR)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return held_elsewhere(read_holder(directory))


class RunLock:
    def __init__(self, directory: Path, what: str, resuming: bool = False):
        self.directory, self.path, self.what, self.resuming = Path(directory), Path(directory) / LOCK, what, resuming
        self.fd: Optional[int] = None
        self._stop = threading.Event()

    def acquire(self) -> None:
        """Take the lock, or raise a one-line RunDirError naming its holder."""
        for _ in range(10):
            fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise RunDirError(in_use(self.directory, read_holder(self.directory), self.resuming)) from None
            try:
                same_file = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same_file = False
            if not same_file:  # the holder released it (and removed the file) while we opened it
                os.close(fd)
                continue
            holder = read_holder(self.directory)
            if held_elsewhere(holder):
                os.close(fd)
                raise RunDirError(in_use(self.directory, holder, self.resuming))
            self._write(fd)
            self.fd = fd
            threading.Thread(target=self._beat, name="rnnexp-lock-heartbeat", daemon=True).start()
            return
        raise RunDirError(f"{self.directory}: could not take its lock {LOCK}: other runs keep taking and releasing it")

    def _write(self, fd: int) -> None:
        job, restart = this_job()
        content = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "what": self.what,
                              "started": time.strftime("%Y-%m-%d %H:%M:%S"), "job": job, "restart": restart,
                              "command": " ".join(sys.argv)}).encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, content, 0)
        os.fsync(fd)

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            try:
                os.utime(self.path)
            except OSError:
                return

    def release(self) -> None:
        """Remove the lock file, then let go of the lock (in this order: see `acquire`)."""
        self._stop.set()
        if self.fd is not None:
            self.path.unlink(missing_ok=True)
            os.close(self.fd)
            self.fd = None
