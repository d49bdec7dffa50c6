"""Hydra callbacks, registered in conf/config.yaml under `hydra.callbacks`.

* `ValidateBeforeRun`: a single run's config is checked before Hydra creates its output
  directory, so a mistyped value costs a one-line message and leaves no half-made run behind.
* `SummariseSweep`: at the end of a multirun, the sweep summary (see rnnexp.sweep). Hydra skips
  this hook when a job failed; the CLI then writes the summary itself.
"""

from __future__ import annotations

from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from rnnexp.engine.checkpoint import check_resume
from rnnexp.config import load_run_config
from rnnexp.errors import Rejected, RnnexpError


class ValidateBeforeRun(Callback):
    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        try:
            run = load_run_config(config)
            if run.train.resume:
                check_resume(run)
        except RnnexpError as err:
            raise Rejected(err) from err  # Hydra would only warn about an Exception here


class SummariseSweep(Callback):
    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        from rnnexp.sweep import summary as sweep

        sweep.current_sweep_dir = str(config.hydra.sweep.dir)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from rnnexp.sweep.summary import summarise_after_sweep

        summarise_after_sweep(config.hydra.sweep.dir)
