"""Where a result came from: what ran it, on what, how it was started (results.json's `provenance`).

A number in a results file is only as good as what can be said about the run behind it: which
rnnexp (and, run from a checkout, which commit, and whether the tree had uncommitted changes),
which torch and Python, which processor or GPU, how many threads, and the command line. The
data's own provenance (a corpus's sha256, a hash split's space) is the task's `data_report`.
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import subprocess
import sys
import time
from functools import lru_cache
from pathlib import Path
from typing import Any, Optional, Sequence

import torch

#: The checkout (or site-packages) this rnnexp runs from: found from this file, not from
#: `rnnexp.__file__`, which a folder named rnnexp in the working directory can shadow.
SOURCE = Path(__file__).resolve().parents[2]


def provenance(device: torch.device, threads: int, overrides: Sequence[str]) -> dict[str, Any]:
    return {
        "rnnexp": _version(),
        "git": git_state(SOURCE),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cpu": cpu_model(),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "threads": threads,
        "command": shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]]) if sys.argv else None,
        "host": platform.node(),
        "pid": os.getpid(),  # (a sweep's units run side by side in several processes)
        "overrides": list(overrides),
    }


def with_resumes(run_dir: Path, current: dict[str, Any], resumed: bool) -> dict[str, Any]:
    """results.json's `provenance` (the run's first start) and `resumes` (each later start): a
    resumed run keeps where it began, and says where it went on."""
    if not resumed:
        return {"provenance": current}
    try:
        earlier = json.loads((Path(run_dir) / "results.json").read_text())
    except (OSError, ValueError):
        earlier = {}
    first = earlier.get("provenance") or current
    return {"provenance": first, "resumes": [*earlier.get("resumes", []), {**current, "at": time.strftime("%Y-%m-%d %H:%M:%S")}]}


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("rnnexp")
    except Exception:  # not installed (run from a source tree on sys.path)
        from rnnexp import __version__

        return __version__


@lru_cache(maxsize=4)
def git_state(source: Path) -> Optional[dict[str, Any]]:
    """{"commit", "dirty"} of the checkout rnnexp runs from, None when it is no git checkout (an
    installed wheel) or git is missing. Dirty: tracked files differ from the commit."""
    if not (source / ".git").exists():
        return None
    try:
        commit = subprocess.run(["git", "-C", str(source), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        status = subprocess.run(["git", "-C", str(source), "status", "--porcelain", "--untracked-files=no"],
                                capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit, "dirty": bool(status.strip())}


@lru_cache(maxsize=1)
def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
