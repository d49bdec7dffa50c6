"""Hydra callbacks, registered in conf/config.yaml under `hydra.callbacks`.

* `SummariseSweep`: at the end of a multirun, the sweep summary (see rnnexp.sweep). Hydra skips
  this hook when a job failed; the CLI then writes the summary itself.
"""

from __future__ import annotations

from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

class SummariseSweep(Callback):
    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        from rnnexp.sweep import summary as sweep

        sweep.current_sweep_dir = str(config.hydra.sweep.dir)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from rnnexp.sweep.summary import summarise_after_sweep

        summarise_after_sweep(config.hydra.sweep.dir)
