"""Sweep summaries (placeholder filled in by the sweeps issue)."""
from __future__ import annotations
from typing import Optional

current_sweep_dir: Optional[str] = None


def summarise_after_sweep(sweep_dir) -> None:
    pass


def main() -> None:
    pass
