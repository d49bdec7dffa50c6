"""A sweep as a whole: its planned jobs, Ctrl-C in the sweep's own process, the command that resumes it.

At the start of a multirun (the `SummariseSweep` callback) rnnexp writes `jobs.json` into the sweep
directory: every job the basic sweeper will run (the product of the swept values, presets included),
and the one command that resumes the whole sweep:

    rnnexp -m <the sweep's own overrides> hydra.sweep.dir=<that directory> train.resume=auto

With `train.resume=auto` each job looks at its own directory: a completed job is kept (its
objective is read back), an interrupted one continues from its checkpoint, one that never ran
starts. The summary lists every planned job, also those that never started.
"""

from __future__ import annotations

import json
import shlex
import signal
import sys
from pathlib import Path
from typing import Any, Optional

from omegaconf import DictConfig, OmegaConf

PLAN = "jobs.json"
#: Overrides that say how a job ran, not what it is (not part of a plan, a column or a group).
HOW_IT_RAN = ("hydra", "train.resume", "train.overwrite")
STOP = ".stop"  # written when the sweep's own process is stopped; removed when the sweep (re)starts


class SweepState:
    """The sweep running in this process (set by the callback at the start of a multirun)."""

    directory: Optional[str] = None
    stop_signal: int = 0  # a Ctrl-C / SIGTERM the sweep's own process received


def planned_jobs(config: DictConfig) -> Optional[list[list[str]]]:
    """Each job's overrides, in launch order, for Hydra's basic sweeper; None for sweepers that
    decide as they go (Optuna)."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    if not str(OmegaConf.select(config, "hydra.sweeper._target_", default="")).endswith("BasicSweeper"):
        return None
    params = OmegaConf.select(config, "hydra.sweeper.params", default=None) or {}
    arguments = [f"{key}={value}" for key, value in params.items()] + list(config.hydra.overrides.task)
    overrides = OverridesParser.create().parse_overrides(arguments)
    return [job for batch in BasicSweeper.split_arguments(overrides, None) for job in batch]


def resume_command(config: DictConfig) -> str:
    """The one command that resumes this sweep, quoted so that it pastes into a shell."""
    task = [o for o in config.hydra.overrides.task if not o.startswith(("train.resume=", "train.overwrite="))]
    own = [o for o in config.hydra.overrides.hydra
           if not o.startswith(("hydra.sweep.dir=", "hydra.mode=", "hydra.job_logging", "hydra.hydra_logging"))]
    words = ["rnnexp", "-m", *task, *own, f"hydra.sweep.dir={config.hydra.sweep.dir}", "train.resume=auto"]
    return " ".join(shlex.quote(w) for w in words)


def write_plan(config: DictConfig) -> None:
    directory = Path(str(config.hydra.sweep.dir))
    directory.mkdir(parents=True, exist_ok=True)
    jobs = planned_jobs(config)
    plan = {"resume": resume_command(config),
            "jobs": None if jobs is None else [{"job": n, "overrides": o} for n, o in enumerate(jobs)]}
    (directory / PLAN).write_text(json.dumps(plan, indent=2))


def check_same_sweep(directory: Path, config: DictConfig) -> None:
    """A sweep resumed into `directory` (train.resume=auto) must plan the jobs that are there:
    another plan would put a second sweep beside the first (Hydra names job directories by their
    overrides), not continue it."""
    from rnnexp.errors import RunDirError

    old, new = read_plan(directory), planned_jobs(config)
    if not old.get("jobs") or new is None:
        return

    def what(jobs: list[list[str]]) -> list[list[str]]:
        return [sorted(o for o in job if not o.startswith(HOW_IT_RAN)) for job in jobs]

    if what([job["overrides"] for job in old["jobs"]]) != what(new):
        raise RunDirError(f"{directory} holds another sweep than this command plans ({len(old['jobs'])} jobs of "
                          f"other settings); resume it with its own command: {old.get('resume')}, or choose another "
                          f"hydra.sweep.dir")


def read_plan(directory: Path) -> dict[str, Any]:
    path = Path(directory) / PLAN
    try:
        return json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, json.JSONDecodeError):
        return {}


def mark_stopped(directory: Path, signum: int) -> None:
    """Tell the jobs of a parallel sweep, each in a process of its own, that the sweep is stopping."""
    try:
        (Path(directory) / STOP).write_text(str(signum))
    except OSError:
        pass  # a job that starts anyway is stopped by the next Ctrl-C


def clear_stop(directory: Path) -> None:
    """A sweep that (re)starts: an earlier, stopped attempt's mark no longer holds."""
    (Path(directory) / STOP).unlink(missing_ok=True)


def stop_requested_for(directory: Path) -> int:
    """The signal that stopped the sweep in `directory`, 0 if none: a job of a parallel sweep looks
    before it starts, since the pool goes on handing out jobs while the running ones save."""
    try:
        return int((Path(directory) / STOP).read_text() or signal.SIGINT)
    except (OSError, ValueError):
        return 0


def catch_stop_signals() -> None:
    """In the sweep's own process: the first Ctrl-C (or SIGTERM) is recorded, not raised, so the
    running jobs (which get it too) can save their checkpoints and report back; the sweep then
    stops with a summary. A second Ctrl-C stops at once."""

    def record(signum: int, frame: Any) -> None:
        SweepState.stop_signal = SweepState.stop_signal or signum
        if SweepState.directory:  # for parallel jobs, each in a process of its own
            mark_stopped(Path(SweepState.directory), SweepState.stop_signal)
        print("rnnexp: stopping the sweep; running jobs save their checkpoints (Ctrl-C again to stop at once)",
              file=sys.stderr)
        signal.signal(signal.SIGINT, signal.default_int_handler)

    record.records_stop = True  # a job's own handler (engine.signals) passes the signal on
    try:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, record)
    except ValueError:  # not the main thread
        pass
