"""Hydra callbacks, registered in conf/config.yaml under `hydra.callbacks`.

* `SummariseSweep`: at the start of a multirun, the plan of its jobs and its resume command
  (rnnexp.sweep.jobs) and the sweep's own Ctrl-C handling; at the end, the sweep summary
  (rnnexp.sweep.summary). Hydra skips the end hook when a job failed or a sequential sweep was
  stopped, and the hook itself ends a stopped parallel sweep: the CLI then writes the summary.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf


class SummariseSweep(Callback):
    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        from rnnexp import run_dirs
        from rnnexp.sweep import summary as sweep
        from rnnexp.sweep.jobs import SweepState, catch_stop_signals, clear_stop, write_plan

        if str(OmegaConf.select(config, "hydra.launcher._target_", default="")).endswith("PackingLauncher"):
            from rnnexp.errors import Rejected
            from rnnexp.sweep.launcher import n_jobs_setting

            try:
                n_jobs_setting(config)  # (before the sweep's directory is made)
            except Exception as err:
                raise Rejected(err) from err

        # The sweep directory is this sweep's alone, before Hydra writes multirun.yaml into it.
        run_dirs.claim_for_hydra(str(config.hydra.sweep.dir), config, what="sweep")
        sweep.current_sweep_dir = SweepState.directory = str(config.hydra.sweep.dir)
        clear_stop(Path(SweepState.directory))
        catch_stop_signals()
        write_plan(config)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from rnnexp.errors import Interrupted
        from rnnexp.sweep.jobs import SweepState, stop_requested_for
        from rnnexp.sweep.summary import summarise_after_sweep

        # The jobs of a stopped parallel sweep return (see cli._job): the sweep ends as stopped,
        # and the CLI writes the summary with the command that resumes it.
        from rnnexp.cli import finish_pictures

        finish_pictures()  # (the jobs' last pictures, drawn while later jobs trained)
        signum = SweepState.stop_signal or stop_requested_for(Path(str(config.hydra.sweep.dir)))
        if signum:
            raise Interrupted(signum)
        summarise_after_sweep(config.hydra.sweep.dir)
