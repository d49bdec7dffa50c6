"""The command line: `rnnexp [group=option ...] [key=value ...]`, `rnnexp -m ...` for sweeps.

    rnnexp task=qrsu model=lstm
    python -m rnnexp task=qrsu model=gru
    rnnexp --help

Hydra composes the config from `conf/` (installed as `rnnexp.conf`); `run_experiment` does the
work. Every user mistake ends as one line on stderr and a non-zero exit (2: bad input, 1: a failed
sweep job or run, 3: a diverged run, 130/143: interrupted); HYDRA_FULL_ERROR=1 shows tracebacks.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Callable, Optional

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import HydraException
from hydra.types import RunMode
from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException

from rnnexp import run_dirs  # noqa: F401  (registers the run-directory resolvers)
from rnnexp.errors import Rejected, RnnexpError
from rnnexp.experiment import EXIT_CODES, run_experiment
from rnnexp.train import Interrupted


@hydra.main(version_base="1.3", config_path="pkg://rnnexp.conf", config_name="config")
def hydra_main(cfg: DictConfig) -> float:
    hydra_cfg = HydraConfig.get()
    in_sweep = hydra_cfg.mode == RunMode.MULTIRUN
    jobs = int(hydra_cfg.launcher.get("n_jobs", 1) or 1) if in_sweep else 1
    if jobs < 0:  # joblib's -1: all cores
        jobs = os.cpu_count() or 1
    try:
        return run_experiment(cfg, Path(hydra_cfg.runtime.output_dir), parallel_jobs=jobs, in_sweep=in_sweep)
    except (RnnexpError, Interrupted) as err:
        if in_sweep:
            raise  # Hydra marks this job failed and runs the others
        raise Rejected(err) from err  # a single run: straight to main(), without Hydra's job report


def one_line_hydra_error(err: BaseException) -> str:
    """Hydra's and OmegaConf's multi-line messages, folded into one line that keeps the options."""
    text = str(err)
    cause = err.__cause__
    if isinstance(cause, OmegaConfBaseException) and str(cause) not in text:
        text = f"{text}: {getattr(cause, 'msg', cause)}"
    options = re.search(r"Available options in '([^']+)':\s*\n((?:\s+\S+\n?)+)", text)
    head = text.split("\n\n")[0].split("\nConfig search path")[0]
    head = re.sub(r"^In '[^']+': ", "", " ".join(head.split())).split(" full_key:")[0]
    if options:
        names = ", ".join(options.group(2).split())
        return f"{head}; choose {options.group(1)}= one of {names}"
    return head


def run_reporting_errors(entry: Callable[[], object], prog: str,
                         on_error: Callable[[str], Optional[str]] = lambda message: None) -> None:
    """Run a Hydra entry point; print any user error as one line and exit non-zero."""
    show_traceback = os.environ.get("HYDRA_FULL_ERROR") == "1"
    os.environ["HYDRA_FULL_ERROR"] = "1"  # let errors reach us instead of Hydra's multi-line report
    try:
        try:
            entry()
        except Rejected as rejected:
            raise rejected.error from None
    except Interrupted as stop:
        print(f"{prog}: interrupted by signal {stop.signum}; checkpoint saved. Resume with the same command "
              f"and train.resume={stop.run_dir or '<run dir>'}", file=sys.stderr)
        sys.exit(EXIT_CODES.get(stop.signum, 130))
    except (RnnexpError, HydraException, OmegaConfBaseException) as err:
        if show_traceback:
            raise
        message = str(err) if isinstance(err, RnnexpError) else one_line_hydra_error(err)
        message = on_error(message) or message
        print(f"{prog}: error: {message}", file=sys.stderr)
        sys.exit(getattr(err, "exit_code", 2) if not _in_sweep() else 1)
    except OSError as err:  # Hydra could not create or write the output directory (permissions, disk)
        if show_traceback:
            raise
        where = f" {err.filename}" if err.filename else ""
        print(f"{prog}: error: cannot write the output directory{where}: {err.strerror or err}; run from a "
              f"writable directory or choose another with hydra.run.dir=... (or hydra.sweep.dir=...)", file=sys.stderr)
        sys.exit(2)
    except Exception as err:  # a job of a sweep crashed: summarise, then report it as one line
        if show_traceback or not _in_sweep():
            raise
        message = on_error(f"{type(err).__name__}: {err}")
        print(f"{prog}: error: {message}", file=sys.stderr)
        sys.exit(1)
    finally:
        if not show_traceback:
            os.environ.pop("HYDRA_FULL_ERROR", None)


def with_resumed_overrides(argv: list[str]) -> list[str]:
    """`rnnexp train.resume=DIR [...]`: the run's own overrides first (from DIR/.hydra/overrides.yaml),
    then the command line's, so resuming needs no retyping and any new override still wins."""
    resume = [a.split("=", 1)[1] for a in argv if a.startswith("train.resume=")]
    saved = Path(resume[-1]).expanduser() / ".hydra" / "overrides.yaml" if resume else None
    if saved is None or not saved.is_file():
        return argv
    import yaml

    given = {a.split("=", 1)[0].lstrip("+~") for a in argv if "=" in a}
    earlier = [o for o in yaml.safe_load(saved.read_text()) or []
               if "=" in o and o.split("=", 1)[0].lstrip("+~") not in given and not o.startswith("hydra")]
    return earlier + argv


def main() -> None:
    sys.argv[1:] = with_resumed_overrides(sys.argv[1:])
    run_reporting_errors(hydra_main, "rnnexp", on_error=_summarise_failed_sweep)


def _in_sweep() -> bool:
    from rnnexp import sweep

    return sweep.current_sweep_dir is not None


def _summarise_failed_sweep(message: str) -> Optional[str]:
    """Hydra skips on_multirun_end when a job failed: write the sweep summary here instead."""
    from rnnexp import sweep

    if sweep.current_sweep_dir is None:
        return None
    rows = sweep.summarise_after_sweep(sweep.current_sweep_dir)
    failed = [r for r in rows if r["status"] != "completed"]
    return (f"{len(failed)} of {len(rows)} sweep jobs did not complete (see {sweep.current_sweep_dir}/summary.md); "
            f"first: {failed[0]['job']}: {failed[0]['error'] or failed[0]['status']}" if failed else message)
