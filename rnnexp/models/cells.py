"""The recurrent cells by name, without torch: what checking a config needs to know about them.

`rnnexp.models.recurrent.CELLS` pairs each name with its torch layer; the config check
(`model.cell`, the memory estimate) reads this table instead, so that `rnnexp --help` and a
mistyped value do not wait for `import torch` (1.4-2 s).
"""

from __future__ import annotations

import os
from typing import Any

from rnnexp.errors import ResourceError

# name -> gate blocks per weight matrix. An RNN has one block; a GRU three (reset, update,
# candidate); an LSTM four (input, forget, cell, output): hence the 4x weights.
GATE_BLOCKS: dict[str, int] = {"rnn": 1, "gru": 3, "lstm": 4}


def available_memory() -> int:
    """Bytes this process could still allocate (MemAvailable on Linux, else physical memory)."""
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def check_fits_in_memory(model_cfg: Any) -> None:
    """Refuse, before anything is allocated, a model whose weights, gradients and optimizer state
    (4 float32 copies) cannot fit in free memory. The count is a lower bound (the recurrent
    layers alone), so the check needs no task and runs with the config's validation."""
    h, layers = model_cfg.hidden_size, model_cfg.num_layers
    params = GATE_BLOCKS[model_cfg.cell] * h * (h + 2) * (2 * layers - 1)  # layers above the first read h inputs
    need, have = 4 * 4 * params, available_memory()
    if need > have:
        raise ResourceError(f"model.hidden_size={h} with {layers} layer(s) has over {params:,} parameters and needs "
                            f"~{need / 2**30:.1f} GiB for weights, gradients and optimizer state, but "
                            f"{have / 2**30:.1f} GiB are free; use a smaller model.hidden_size or model.num_layers")
