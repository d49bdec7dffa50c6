"""The thread policy: how many CPU threads torch (and BLAS/OpenMP) may use for one run.

For the small models here the cost of a step is Python and OpenMP overhead, not FLOPs: on a
2-core machine a hidden-4 LSTM runs as fast on one thread as on two, and 10-100x slower on two
when another process keeps a core busy (the OpenMP workers spin waiting for it). So `auto`
gives small models one thread, large ones a fair share of the cores, and parallel sweep jobs
cores / jobs each. `scripts/bench_threads.py` measures the trade-off on a machine.
"""

from __future__ import annotations

import os
from typing import Any

from threadpoolctl import threadpool_limits

from rnnexp.lazy import torch  # on first use: parallel_jobs() needs no torch

# Below this many parameters a second thread gains < 10% on an idle machine and loses 3-5x beside a
# busy process (scripts/bench_threads.py; numbers in README.md).
SMALL_MODEL_PARAMS = 50_000

_limits = None  # keeps the threadpoolctl limit alive for the process


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def choose_threads(setting: str, num_params: int, device: torch.device, parallel_jobs: int = 1) -> tuple[int, str]:
    """(threads, reason) for `train.threads` = `setting` ("auto" or a count)."""
    if setting != "auto":
        return int(setting), "set by train.threads"
    if device.type == "cuda":
        return 1, "the GPU computes; one CPU thread feeds it"
    cores = available_cores()
    share = max(1, cores // max(1, parallel_jobs))
    if num_params < SMALL_MODEL_PARAMS:
        return 1, f"small model ({num_params:,} parameters): one thread avoids OpenMP waits"
    if parallel_jobs > 1:
        return share, f"{share} of {cores} cores for each of {parallel_jobs} parallel jobs"
    return share, f"all {cores} cores for a large model ({num_params:,} parameters)"


def parallel_jobs(launcher_cfg: Any) -> int:
    """How many jobs of a sweep run at once on this machine (joblib's n_jobs, -1 = all cores,
    -2 = all but one; a launcher without n_jobs, e.g. submitit on a cluster, runs one per allocation)."""
    n_jobs = int(launcher_cfg.get("n_jobs", 1) or 1) if launcher_cfg is not None else 1
    return max(1, available_cores() + 1 + n_jobs if n_jobs < 0 else n_jobs)


def apply_threads(threads: int) -> None:
    """Limit torch's intra-op pool and every BLAS/OpenMP pool threadpoolctl finds."""
    global _limits
    torch.set_num_threads(threads)
    _limits = threadpool_limits(limits=threads)
