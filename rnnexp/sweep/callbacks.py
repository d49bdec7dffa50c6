"""Hydra callbacks, registered in conf/config.yaml under `hydra.callbacks`.

* `SummariseSweep`: at the start of a multirun, the plan of its jobs and its resume command
  (rnnexp.sweep.jobs) and the sweep's own Ctrl-C handling; at the end, the sweep summary
  (rnnexp.sweep.summary). Hydra skips the end hook when a job failed or the sweep was stopped;
  the CLI then writes the summary itself.
"""

from __future__ import annotations

from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig


class SummariseSweep(Callback):
    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        from rnnexp.sweep import summary as sweep
        from rnnexp.sweep.jobs import SweepState, catch_stop_signals, write_plan

        sweep.current_sweep_dir = SweepState.directory = str(config.hydra.sweep.dir)
        write_plan(config)
        catch_stop_signals()

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from rnnexp.sweep.summary import summarise_after_sweep

        summarise_after_sweep(config.hydra.sweep.dir)
