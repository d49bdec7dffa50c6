"""The command line: `rnnexp [group=option ...] [key=value ...]`, `rnnexp -m ...` for sweeps.

    rnnexp task=qrsu model=lstm
    python -m rnnexp task=qrsu model=gru
    rnnexp train.resume=outputs/runs/2026-11-27/14-05-00_qrsu-easy_lstm
    rnnexp --help

Hydra composes the config from `conf/` (installed as `rnnexp.conf`); `ValidateBeforeRun` checks
it before any directory exists; `run_experiment` does the work; `report.errors` turns every
problem into one line and an exit code.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any, Optional

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from rnnexp import run_dirs
from rnnexp.argv import RNNEXP_FREE_TEXT, RNNEXP_SWEEPABLE, quote_free_text
from rnnexp.sweep import summary as sweep
from rnnexp.config import known_keys, load_run_config
from rnnexp.engine.signals import stop_on_signals
from rnnexp.errors import ConfigError, DivergedError, Interrupted, Rejected, RnnexpError, RunDirError
from rnnexp.report import help_keys
from rnnexp.report.errors import run_reporting_errors
from rnnexp.sweep.jobs import SweepState, mark_stopped, read_plan, stop_requested_for

# Start-up: `rnnexp --help` and a config error must not wait for `import torch` (1-2 s, several
# times the rest). Nothing imported above imports torch (the task modules name it through
# rnnexp.lazy); what does (the run, checkpoints, the thread policy) is imported where it is used.

run_dirs.register()
help_keys.register()


@hydra.main(version_base="1.3", config_path="pkg://rnnexp.conf", config_name="config")
def hydra_main(cfg: DictConfig) -> float:
    # From here on a Ctrl-C or SIGTERM is recorded, not raised: one that reaches a job during its
    # start-up (importing torch takes seconds) stops it after its first step, with a checkpoint
    # and results.json like any stopped job, instead of a KeyboardInterrupt mid-import.
    with stop_on_signals():
        return _job(cfg)


def _job(cfg: DictConfig) -> float:
    from rnnexp.engine.threads import parallel_jobs
    from rnnexp.run import run_experiment

    hydra_cfg = HydraConfig.get()
    in_sweep = hydra_cfg.mode == RunMode.MULTIRUN
    jobs = parallel_jobs(hydra_cfg.launcher) if in_sweep else 1
    run_dir = Path(hydra_cfg.runtime.output_dir)
    # (hydra.sweep.dir only in a sweep: resolving it claims a fresh directory)
    sweep_dir = Path(hydra_cfg.sweep.dir) if in_sweep else run_dir
    # Hydra's joblib launcher kills every job of the pool, mid-start or mid-save, as soon as one
    # raises a BaseException. In a parallel sweep of the basic sweeper a stopped job (results and
    # checkpoint saved) returns instead and marks the sweep stopped; the others stop too, later
    # ones do not start, and the sweep's process ends it as stopped (SummariseSweep.on_multirun_end).
    # (Optuna would take the returned value for a result: there a stop still raises.)
    basic_sweeper = str(hydra_cfg.sweeper.get("_target_", "")).endswith("BasicSweeper")
    returns_on_stop = in_sweep and jobs > 1 and basic_sweeper
    if in_sweep and SweepState.stop_signal:  # Ctrl-C between two jobs of a sequential sweep
        raise Interrupted(SweepState.stop_signal)
    if in_sweep and jobs > 1 and (signum := stop_requested_for(sweep_dir)):
        not_started(run_dir, signum)  # the pool hands out jobs while the running ones save
        if returns_on_stop:
            return float("nan")
        raise Interrupted(signum)
    try:
        # Jobs run one after another in this process (Hydra's basic launcher): a job's last
        # pictures are drawn while the next one trains (the sweep's end waits for them).
        in_process = in_sweep and str(hydra_cfg.launcher.get("_target_", "")).endswith(("BasicLauncher", "PackingLauncher"))
        return run_experiment(cfg, run_dir, overrides=list(hydra_cfg.overrides.task),
                              parallel_jobs=jobs, in_sweep=in_sweep, defer_pictures=in_process)
    except Interrupted as stop:
        if in_sweep and jobs > 1:
            mark_stopped(sweep_dir, stop.signum)
        if returns_on_stop:
            return float("nan")
        if in_sweep:
            raise  # a sequential sweep stops at once
        raise Rejected(stop) from stop
    except RnnexpError as err:
        if in_sweep and isinstance(err, DivergedError) and basic_sweeper:
            # A diverged job is a result of the sweep, not a failure of it (its results.json says
            # "diverged", the summary counts it): the sweep goes on and can end with exit 0.
            logging.getLogger("rnnexp").warning(f"diverged: {err}")
            return float("nan")
        if in_sweep:
            raise  # Hydra marks the job failed and runs the others
        raise Rejected(err) from err  # a single run: straight to main(), without Hydra's job report


def not_started(run_dir: Path, signum: int) -> None:
    """A job the stopped sweep would have started next says so in its own directory (Hydra made
    it); `train.resume=auto` starts it from the beginning."""
    from rnnexp.files import write_json

    if not (run_dir / "results.json").exists():
        write_json(run_dir / "results.json", {"status": "not started", "run_dir": str(run_dir),
                                              "error": f"the sweep was stopped (signal {signum}) before this job began"})


class ValidateBeforeRun(Callback):
    """A Hydra callback (conf/config.yaml): a single run's config is checked before Hydra creates
    its output directory, so a mistyped value costs one line and leaves no half-made run behind.
    On resume, what is checked is the run's own saved config with the command line's changes."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        try:
            resume = OmegaConf.select(config, "train.resume")
            if resume == "auto":
                raise ConfigError("train.resume=auto resumes each job of a sweep in its own directory "
                                  "(rnnexp -m ... train.resume=auto); for a single run give its directory")
            run_dirs.check_instructions(config)
            if resume is None:
                start_drawing(load_run_config(config))
            else:
                from rnnexp.engine.checkpoint import alone_refused, check_not_finished, done_in_group, resume_config
                from rnnexp.run_lock import in_use, is_locked, read_holder

                run_dir = Path(str(resume)).expanduser()
                if is_locked(run_dir):  # (before its checkpoint is looked for: a live run may have none yet)
                    raise RunDirError(in_use(run_dir, read_holder(run_dir), resuming=True))
                cfg, payload = resume_config(config, list(config.hydra.overrides.task), run_dir)
                if (payload.get("packed_with") and OmegaConf.select(cfg, "train.pack_seeds") != "off"
                        and not done_in_group(run_dir)):
                    raise RunDirError(alone_refused(run_dir, payload))
                run = load_run_config(cfg)
                check_not_finished(run, payload, run_dir)
                start_drawing(run)
        except RnnexpError as err:
            raise Rejected(err) from err  # Hydra would only warn about an Exception here
        # The directory is this run's alone from here on, before Hydra writes into it.
        run_dirs.claim_for_hydra(str(config.hydra.run.dir), config, what="run")


def finish_pictures() -> None:
    """The last pictures of a sweep's jobs (drawn while later jobs trained): completed before the
    sweep ends. (Never imports the run's modules where no job ran in this process.)"""
    if (run := sys.modules.get("rnnexp.run")) is not None:
        run.finish_deferred(wait=True)


def start_drawing(run: Any) -> None:
    """A valid single run that will draw pictures: its drawing process starts now and gets ready
    (matplotlib) while the run imports torch and builds, not after (issue 20: a run of a second
    waited ~1 s for it at its end)."""
    from rnnexp.models.family import family_class

    # (where the training will take every core it draws between epochs itself: no process then)
    spare_core = len(os.sched_getaffinity(0)) > 1 if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1) > 1
    if run.train.insight_every and family_class(run.model.family).replay and spare_core:
        from rnnexp.insight.drawing import start_drawing_process

        start_drawing_process()


def _summarise_failed_sweep(message: str) -> Optional[str]:
    """Hydra skips on_multirun_end when a job failed or the sweep was stopped: write the sweep
    summary here instead; a stopped sweep says how to resume it as a whole."""
    if sweep.current_sweep_dir is None:
        return None
    finish_pictures()
    rows = sweep.summarise_after_sweep(sweep.current_sweep_dir)
    if message == "interrupted" or SweepState.stop_signal:
        resume = read_plan(Path(sweep.current_sweep_dir)).get("resume", "rnnexp -m ... train.resume=auto")
        return (f"sweep stopped ({sweep.count_line(rows)}; checkpoints saved, summary in "
                f"{sweep.current_sweep_dir}/summary.md); resume the whole sweep with: {resume}")
    failed = [r for r in rows if r["status"] not in ("completed", "diverged")]
    if not failed:
        return message
    return (f"{len(failed)} of {len(rows)} sweep jobs did not complete (see {sweep.current_sweep_dir}/summary.md); "
            f"first: {failed[0]['job']}: {failed[0]['error'] or failed[0]['status']}")


def rnnexp_launcher_ran() -> bool:
    """Whether this process's sweep ran on rnnexp's own launcher (its helpers end with it)."""
    launcher = sys.modules.get("rnnexp.sweep.launcher")
    return launcher is not None and launcher.LAUNCHED["sweep"]


def console() -> None:
    """The `rnnexp` command (and `python -m rnnexp`): `main()`, then, for a single run, an exit
    without the interpreter's teardown. Everything is written and closed by then (results,
    checkpoints, TensorBoard, run.log, the lock; the drawing process has ended), and unloading
    torch's modules one by one would only add ~0.45 s to every command (issue 20). So does a sweep
    of rnnexp's own launcher (its helpers have ended; with the summary's matplotlib and scipy the
    teardown took ~2 s); one of another launcher (joblib, submitit, Hydra's basic one) exits the
    usual way: their workers may end in their own atexit hooks."""
    try:
        main()
        code: object = 0
    except SystemExit as exit_:
        code = exit_.code if exit_.code is not None else 0
        if not isinstance(code, int) or sweep.current_sweep_dir is not None:
            end_children()
            raise
    end_children()
    if sweep.current_sweep_dir is not None and not rnnexp_launcher_ran():
        return
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass  # a closed pipe (rnnexp ... | head): nothing more to say there
    os._exit(int(code))  # type: ignore[arg-type]


def end_children() -> None:
    """No process outlives the command: the drawing process, then multiprocessing's resource
    tracker (the drawing process's and a sweep's helpers' start began it), ended and waited for;
    the usual exit leaves the tracker to end by itself, and where nothing reaps orphans it stayed
    as a zombie."""
    if (drawing := sys.modules.get("rnnexp.insight.drawing")) is not None:
        drawing.shutdown_drawing_process()
    if "joblib.externals.loky" in sys.modules:
        return  # (Hydra's joblib launcher: its workers, ended at exit by loky, keep the tracker open)
    if (tracker := sys.modules.get("multiprocessing.resource_tracker")) is not None:
        getattr(tracker._resource_tracker, "_stop", lambda: None)()


def register_launcher() -> None:
    """rnnexp's launcher (conf/hydra/launcher/packing.yaml) for Hydra: its scan of the hydra_plugins
    namespace does not see an editable install's packages (pip install -e .), registering does."""
    from hydra.core.plugins import Plugins

    from hydra_plugins.rnnexp_launcher.packing_launcher import PackingLauncher

    Plugins.instance().register(PackingLauncher)


def main() -> None:
    sweep.current_sweep_dir = SweepState.directory = None  # set by SummariseSweep if this is a sweep
    register_launcher()
    SweepState.stop_signal = 0
    # A sweep records Ctrl-C in a handler of its own; main() called from Python (a notebook, a test)
    # puts the process's handlers back after, or a later Ctrl-C there would stop a sweep long ended.
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    root = logging.getLogger()
    logging_before = (list(root.handlers), root.level)  # (Hydra's job logging adds the console's and run.log's)

    def entry() -> object:
        # Paths and other free text work as typed in the shell (quotes, spaces, any letter).
        sys.argv[1:] = quote_free_text(sys.argv[1:], RNNEXP_FREE_TEXT, RNNEXP_SWEEPABLE)
        return hydra_main()

    try:
        run_reporting_errors(entry, "rnnexp", on_error=_summarise_failed_sweep,
                             in_sweep=lambda: sweep.current_sweep_dir is not None, known_keys=known_keys(),
                             stopped=lambda: SweepState.stop_signal)
    finally:
        finish_pictures()  # (a sweep's last jobs' pictures, however it ended)
        run_dirs.release_all()  # the run (or sweep) directory's lock
        for sig, handler in handlers.items():
            if handler is not None:  # (None: a handler not set from Python, left as it is)
                signal.signal(sig, handler)
        SweepState.stop_signal = 0  # (the sweep's directory stays: `console` reads it to exit as a sweep)
        # The handlers Hydra's job logging put in place write to this call's stdout and run.log: closed
        # (run.log flushed) and replaced by the ones before, so that a later run in the same process
        # does not log into a closed stream.
        for handler in [h for h in root.handlers if h not in logging_before[0]]:
            root.removeHandler(handler)
            handler.close()
        for handler in logging_before[0]:  # (and the ones it replaced come back)
            root.addHandler(handler)
        root.setLevel(logging_before[1])
