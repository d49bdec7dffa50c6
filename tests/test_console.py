"""What the terminal shows: each epoch's line once, above the live bar; the run's start lines too."""

from __future__ import annotations

import io
import logging
import sys

import pytest
from rich.console import Console

from rnnexp.report.console import ConsoleProgress, route_console_logging, start_log

METRICS = {"epoch": 1, "train/loss": 0.69, "train/accuracy": 0.5, "val/loss": 0.68, "val/accuracy": 0.51,
           "train/targets_per_second": 1000.0}


@pytest.fixture
def terminal(monkeypatch):
    """A terminal-like console, and the loggers as a fresh process has them (Hydra then adds a
    stderr handler to the root)."""
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=120, color_system=None)
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [])
    monkeypatch.setattr(root, "level", logging.INFO)
    for name in ("rnnexp", "rnnexp.start", "rnnexp.epoch"):  # (as a fresh process has them: runs in this one set them up)
        logger = logging.getLogger(name)
        for key, value in (("handlers", []), ("propagate", True), ("disabled", False), ("level", logging.NOTSET)):
            monkeypatch.setattr(logger, key, value)
    monkeypatch.setattr(logging.root.manager, "disable", 0)
    logging.root.manager._clear_cache()  # (isEnabledFor caches what earlier levels allowed)
    yield console, out
    monkeypatch.undo()
    logging.root.manager._clear_cache()


def engine():
    return type("E", (), {"state": type("S", (), {"epoch": 1, "batch": 0})(),
                          "cfg": type("C", (), {"time_limit_minutes": None, "target_accuracy": None})()})()


def test_on_a_terminal_each_epoch_line_is_printed_once(terminal):
    console, out = terminal
    logging.getLogger().addHandler(logging.StreamHandler(sys.stderr))  # (here: pytest swaps sys.stderr per phase)
    route_console_logging(console, "bar")
    progress = ConsoleProgress(console, "bar", "seqs", epochs=3, batches_per_epoch=10)
    progress.on_fit_start(engine())
    start_log.info("task: parity of 8 bits")
    progress.on_epoch_end(engine(), dict(METRICS))
    progress.progress.stop()
    shown = out.getvalue()
    assert shown.count("train loss 0.6900") == 1, shown
    assert "task: parity of 8 bits" in shown, "the start lines still reach the terminal"


def test_in_lines_mode_the_log_prints_each_epoch_line(terminal, caplog):
    console, out = terminal
    route_console_logging(console, "lines")
    with caplog.at_level(logging.INFO):
        ConsoleProgress(console, "lines", "seqs", epochs=3, batches_per_epoch=10).on_epoch_end(engine(), dict(METRICS))
    assert [r.name for r in caplog.records if "train loss 0.6900" in r.getMessage()] == ["rnnexp.epoch"]
    assert "train loss" not in out.getvalue(), "no bar: the log's line is the only one"
