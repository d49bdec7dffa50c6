"""Stop requests: Ctrl-C and SIGTERM (and, under submitit, the cluster's pre-emption signal).

A handler only records the signal; the loop looks at the record after every step, between
validation batches and between epochs, hands its state to the callbacks (a checkpoint) and
raises `Interrupted`. The first signal puts the old handler back, so a second Ctrl-C stops a
stuck run at once. A stop after the last epoch (during the test) changes nothing.

Under submitit (a SLURM or local submitit job) the pre-emption/time-out signal (USR2) belongs
to submitit: it requeues the job. We record it like the others so the run checkpoints first,
then (`Interrupted.hand_back`, once results.json says "interrupted") hand the signal back to
submitit's own handler, which requeues the job and exits; the
requeued job finds its checkpoint and resumes by itself (see `run.resume_target`). SIGTERM is
left to submitit there too (it only logs it).
"""

from __future__ import annotations

import os
import signal
from contextlib import contextmanager
from typing import Any, Callable, Iterator

from rnnexp.errors import Interrupted


def under_submitit() -> bool:
    return bool(os.environ.get("SUBMITIT_EXECUTOR"))


def _preemption_signal() -> int:
    return getattr(signal, "SIG" + os.environ.get("SUBMITIT_PREEMPT_SIGNAL", "USR2"), signal.SIGUSR2)


@contextmanager
def stop_on_signals() -> Iterator[Callable[[], int]]:
    """Yield `stop_requested()`: the number of the first signal received, or 0.

    Nested use shares the outermost record: the CLI opens one before a job's start-up (its torch
    import takes seconds), so a Ctrl-C that reaches a sweep job then is not a KeyboardInterrupt
    that leaves the job without results, but a stop the loop honours after its first step.
    A handler that records a stop for a whole sweep (`records_stop`, the sweep's own process)
    is told too: the sweep starts no further job, and a second Ctrl-C stops it at once."""
    if _open:
        yield from _stop_requests(*_open[0])
        return
    received: list[int] = []
    previous: dict[int, Any] = {}
    signals = [signal.SIGINT] + ([_preemption_signal()] if under_submitit() else [signal.SIGTERM])

    def handler(signum: int, frame: Any) -> None:
        received.append(signum)
        signal.signal(signum, previous[signum])
        if getattr(previous[signum], "records_stop", False):
            previous[signum](signum, frame)

    try:
        for sig in signals:
            previous[sig] = signal.signal(sig, handler)
    except ValueError:  # not the main thread: leave the signals (and the shared record) alone
        _restore(previous, handler)
        yield lambda: 0
        return
    _open.append((received, previous))
    try:
        yield from _stop_requests(received, previous)
    finally:
        _open.clear()
        _restore(previous, handler)


_open: list[tuple[list[int], dict[int, Any]]] = []  # the outermost stop_on_signals while it is open


def _stop_requests(received: list[int], previous: dict[int, Any]) -> Iterator[Callable[[], int]]:
    try:
        yield lambda: received[0] if received else 0
    except Interrupted as stop:
        owner = previous.get(stop.signum)
        if stop.signum != signal.SIGINT and under_submitit() and callable(owner):
            # submitit's handler requeues the job and exits: the run calls it once its results are written
            signum = stop.signum
            stop.hand_back = lambda: owner(signum, None)
        raise


def _restore(previous: dict[int, Any], ours: Any) -> None:
    """Put back the handlers found, unless one was changed since (a sweep's handler that, told of
    a stop, made the next Ctrl-C stop at once)."""
    for sig, old in previous.items():
        if signal.getsignal(sig) in (ours, old):
            signal.signal(sig, old)
