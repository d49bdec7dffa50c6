"""Statistics across runs, defined once for every summary (the sweep table, summary.md, plots).

The rules, so that a number never mixes what it should not:

* means and spreads are over **completed** runs only, shown with "n of N completed";
* a **diverged** run is a result (the optimiser exploded): never averaged in, counted as
  "k diverged", and as not solved in "solved k of n", where n counts completed and diverged runs;
* a run that **stopped at its time limit** completed, but is flagged ("time-limited"): it may not
  have converged;
* **partial** runs (interrupted, failed, never started, no result) are listed by name, never
  averaged in and never counted as solved or unsolved;
* "solved" means the run reached `train.target_accuracy` on validation (tasks without a target
  have no solved count); a spread of one value is no spread ("-", not 0).
"""

from __future__ import annotations

import statistics
from typing import Any, Optional

COMPLETED, DIVERGED = "completed", "diverged"


def is_time_limited(row: dict[str, Any]) -> bool:
    return str(row.get("stopped_by") or "").startswith("time limit")


def group_stats(members: list[dict[str, Any]]) -> dict[str, Any]:
    """The statistics of one group of runs (rows of `summary.read_jobs`) by the rules above."""
    completed = [m for m in members if m["status"] == COMPLETED]
    diverged = [m for m in members if m["status"] == DIVERGED]
    partial = [m for m in members if m["status"] not in (COMPLETED, DIVERGED)]
    values = [m["objective"] for m in completed if m["objective"] is not None]
    has_target = any(m.get("target_accuracy") is not None for m in completed + diverged)
    solved = [m for m in completed if m["target_epoch"] is not None]
    judged = len(completed) + len(diverged)
    return {
        "runs": len(members), "completed": len(completed),
        "completed_of": f"{len(completed)} of {len(members)}",
        "metric": next((m["objective_name"] for m in completed if m["objective_name"]), ""),
        "mean": statistics.fmean(values) if values else None,
        "std": statistics.stdev(values) if len(values) > 1 else None,
        "solved": f"{len(solved)} of {judged}" if has_target and judged else None,
        "diverged": len(diverged),
        "time_limited": sum(is_time_limited(m) for m in completed),
        "mean_target_epoch": statistics.fmean(m["target_epoch"] for m in solved) if solved else None,
        "partial": [f"job {_number(m['job'])} ({m['status']}{_at_epoch(m)})" for m in partial],
    }


def _number(job: str) -> str:
    """A sweep job by its number (`3_model=gru,...` -> 3); other directories by their path."""
    head = job.rsplit("/", 1)[-1].split("_", 1)[0]
    return head if head.isdigit() else job


def _at_epoch(row: dict[str, Any]) -> str:
    return f" after {row['epochs']} epoch{'s' * (row['epochs'] != 1)}" if row.get("epochs") else ""


def notes(stats: dict[str, Any]) -> Optional[str]:
    """What a reader must know beside the numbers: diverged, time-limited and partial runs."""
    parts = []
    if stats["diverged"]:
        parts.append(f"{stats['diverged']} diverged")
    if stats["time_limited"]:
        parts.append(f"{stats['time_limited']} time-limited")
    if stats["partial"]:
        parts.append("not averaged: " + ", ".join(stats["partial"]))
    return "; ".join(parts) or None
