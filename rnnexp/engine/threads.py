"""The thread policy: how many CPU threads torch (and BLAS/OpenMP) may use for one run.

For the small models here the cost of a step is Python and OpenMP overhead, not FLOPs: on a
2-core machine a hidden-4 LSTM runs as fast on one thread as on two, and 10-100x slower on two
when another process keeps a core busy (the OpenMP workers spin waiting for it). So `auto`
gives small models one thread, large ones a fair share of the cores, and parallel sweep jobs
cores / jobs each. A large model does not take the cores other processes keep busy either: at
the start `auto` measures, over a quarter of a second, how much of the machine the others use
(/proc/stat, less this process), and leaves those cores alone (beside one busy process on 2 cores
the LSTM 256 language model ran at 7.5k chars/s on one thread and 4.2k on two).
`scripts/bench.py threads` measures auto against every fixed choice, idle and beside 1 and 2
busy processes.
"""

from __future__ import annotations

import os
import time
from typing import Any, Callable, Optional

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


def choose_threads(setting: str, num_params: int, device: Any, parallel_jobs: int = 1,
                   busy_elsewhere: Optional[float] = None) -> tuple[int, str]:
    """(threads, reason) for `train.threads` = `setting` ("auto" or a count). `busy_elsewhere`:
    cores other processes keep busy (measured when None and it matters)."""
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
    if share > 1:
        busy = busy_cores_elsewhere() if busy_elsewhere is None else busy_elsewhere
        free = max(1, min(share, cores - round(busy)))
        if free < share:
            return free, f"{free} of {cores} cores: other processes keep {busy:.1f} busy"
    return share, f"all {cores} cores for a large model ({num_params:,} parameters)"


def parallel_jobs(launcher_cfg: Any) -> int:
    """How many jobs of a sweep run at once on this machine (joblib's n_jobs, -1 = all cores,
    -2 = all but one; a launcher without n_jobs, e.g. submitit on a cluster, runs one per allocation)."""
    n_jobs = launcher_cfg.get("n_jobs", 1) if launcher_cfg is not None else 1
    n_jobs = int(n_jobs or 1) if str(n_jobs).lstrip("-").isdigit() else 1  # (rnnexp's launcher resolves "auto" first)
    return max(1, available_cores() + 1 + n_jobs if n_jobs < 0 else n_jobs)


#: The jobs of a sweep training on this machine now, where a launcher knows it better than its
#: planned count (rnnexp's launcher: a helper process starts only once the sweep has run a while).
jobs_running_now: Optional[Callable[[], int]] = None


def apply_threads(threads: int) -> None:
    """Limit torch's intra-op pool and every BLAS/OpenMP pool threadpoolctl finds."""
    global _limits
    torch.set_num_threads(threads)
    _limits = threadpool_limits(limits=threads)
def busy_cores_elsewhere(seconds: float = 0.25) -> float:
    """How many of this process's cores (its affinity set) other processes keep busy: their busy
    time over `seconds` (Linux's per-CPU lines of /proc/stat; steal time is the host's, not a
    neighbour's) less this process's own. 0 where /proc/stat cannot be read."""
    try:
        cpus = {f"cpu{n}" for n in os.sched_getaffinity(0)}
        before, own_before = _busy_and_total(cpus), time.process_time()
        time.sleep(seconds)
        after, own_after = _busy_and_total(cpus), time.process_time()
    except (OSError, ValueError, IndexError, AttributeError):
        return 0.0
    elapsed = (after[1] - before[1]) / max(1, len(cpus))  # wall seconds, as /proc/stat counts them
    busy = (after[0] - before[0]) - (own_after - own_before)
    return max(0.0, busy / max(elapsed, 1e-9))


def _busy_and_total(cpus: set[str]) -> tuple[float, float]:
    """(busy, total) CPU seconds since boot, summed over the CPUs named in `cpus` ("cpu0", ...)."""
    busy = total = 0
    with open("/proc/stat", encoding="ascii") as stat:
        for line in stat:
            name, *values = line.split()
            if name not in cpus:
                continue
            fields = [int(v) for v in values[:8]] + [0] * (8 - len(values[:8]))
            # user nice system idle iowait irq softirq steal
            total += sum(fields[:7])
            busy += sum(fields[:7]) - fields[3] - fields[4]
    tick = os.sysconf("SC_CLK_TCK")
    return busy / tick, total / tick
