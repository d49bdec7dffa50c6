"""The command line: `rnnexp [group=option ...] [key=value ...]`, `rnnexp -m ...` for sweeps.

    rnnexp task=qrsu model=lstm
    python -m rnnexp task=qrsu model=gru
    rnnexp train.resume=outputs/runs/<date>/<time>_qrsu-easy_lstm
    rnnexp --help

Hydra composes the config from `conf/` (installed as `rnnexp.conf`); `run_experiment` does the
work; `reporting` turns every problem into one line and an exit code.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import hydra
import yaml
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from rnnexp import run_dirs
from rnnexp.sweep import summary as sweep
from rnnexp.config import known_keys
from rnnexp.errors import Rejected, RnnexpError
from rnnexp.run import run_experiment
from rnnexp.report.errors import run_reporting_errors
from rnnexp.engine.threads import parallel_jobs
from rnnexp.engine.loop import Interrupted

run_dirs.register()


@hydra.main(version_base="1.3", config_path="pkg://rnnexp.conf", config_name="config")
def hydra_main(cfg: DictConfig) -> float:
    hydra_cfg = HydraConfig.get()
    in_sweep = hydra_cfg.mode == RunMode.MULTIRUN
    jobs = parallel_jobs(hydra_cfg.launcher) if in_sweep else 1
    try:
        return run_experiment(cfg, Path(hydra_cfg.runtime.output_dir), parallel_jobs=jobs, in_sweep=in_sweep)
    except (RnnexpError, Interrupted) as err:
        if in_sweep:
            raise  # an error: Hydra marks the job failed and runs the others; a signal stops the sweep
        raise Rejected(err) from err  # a single run: straight to main(), without Hydra's job report


def with_resumed_overrides(argv: list[str]) -> list[str]:
    """`rnnexp train.resume=DIR [...]`: the run's own overrides first (from DIR/.hydra/overrides.yaml),
    then the command line's, so resuming needs no retyping and any new override still wins. A run
    resumes as a single run even when it came from a sweep preset."""
    resume = [a.split("=", 1)[1].strip("'\"") for a in argv if a.startswith("train.resume=")]
    saved = Path(resume[-1]).expanduser() / ".hydra" / "overrides.yaml" if resume else None
    if saved is None or not saved.is_file():
        return argv
    given = {a.split("=", 1)[0].lstrip("+~") for a in argv if "=" in a}
    earlier = [o for o in yaml.safe_load(saved.read_text()) or []
               if "=" in o and o.split("=", 1)[0].lstrip("+~") not in given and not o.startswith("hydra")]
    return earlier + argv + ["hydra.mode=RUN"]


def _summarise_failed_sweep(message: str) -> Optional[str]:
    """Hydra skips on_multirun_end when a job failed: write the sweep summary here instead."""
    if sweep.current_sweep_dir is None:
        return None
    rows = sweep.summarise_after_sweep(sweep.current_sweep_dir)
    failed = [r for r in rows if r["status"] != "completed"]
    if not failed:
        return message
    return (f"{len(failed)} of {len(rows)} sweep jobs did not complete (see {sweep.current_sweep_dir}/summary.md); "
            f"first: {failed[0]['job']}: {failed[0]['error'] or failed[0]['status']}")


def main() -> None:
    sweep.current_sweep_dir = None  # set by the SummariseSweep callback if this turns out to be a sweep
    sys.argv[1:] = with_resumed_overrides(sys.argv[1:])
    run_reporting_errors(hydra_main, "rnnexp", on_error=_summarise_failed_sweep,
                         in_sweep=lambda: sweep.current_sweep_dir is not None, known_keys=known_keys())
