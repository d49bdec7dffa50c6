"""A sweep's units (a packed group, or one job) on every free core: this process takes one unit
at a time, as the sequential launcher does, and each helper process (spawned once per sweep)
another. One by one the study's slow jobs (an IRNN of hidden 64, a group that packs and trains
100 epochs) would leave the second core to the drawing process alone.

    rnnexp -m experiment=long_lags model=lstm,gru,rnn train.seed=101,102,103,104,105
    rnnexp -m ... hydra.launcher.n_jobs=1                    one unit after another, in this process

Units are handed out in the order of their first job. A group whose probe chose one by one gives
its jobs back as units of one job, so they spread over the cores too; they come after every group
(each group's probe is then known before they train), the longest first by the probe's step time
and the planned epochs, so the longest jobs start first and none trains alone at the end (the
long-lags study's five IRNN jobs came last in its order: the fifth trained ~10 s alone). A stop (Ctrl-C reaches every
process; a SIGTERM to this one is passed on) starts no further unit; the running ones save their
checkpoints, and the sweep then stops as a sequential one does.
"""

from __future__ import annotations

import heapq
import importlib
import os
import pickle
import signal
import threading
import time
from concurrent.futures import ProcessPoolExecutor, TimeoutError as FutureTimeout
from multiprocessing import get_context
from multiprocessing.util import Finalize
from typing import Any, Callable, Optional

from hydra.core.utils import JobReturn

from rnnexp.errors import Interrupted

#: (first job's index, the unit's job indices, whether its jobs were announced in the log)
Unit = tuple[int, tuple[int, ...], bool]
#: What running a unit gives: each job's JobReturn, the jobs it gives back to run one by one (each
#: with its estimated seconds: infinite where unknown, so such jobs keep their order ahead).
RunUnit = Callable[[Unit], tuple[dict[int, JobReturn], dict[int, float]]]


class Units:
    """The units not yet started, handed out in order to this process and the helpers; a caller
    waits while the queue is empty but a running unit may still give jobs back."""

    def __init__(self, units: list[list[int]], stopped: Callable[[], int] = lambda: 0):
        # (sort key, unit): groups by their first job; jobs given back after them, longest first
        self._heap: list[tuple[tuple[int, float, int], Unit]] = [((0, 0.0, unit[0]), (unit[0], tuple(unit), False))
                                                                 for unit in units]
        heapq.heapify(self._heap)
        self._running = 0
        self._closed = False
        self._cond = threading.Condition()
        self._stopped = stopped  # (a stop of the sweep closes the queue: looked at while waiting too)

    def take(self, while_waiting: Optional[Callable[[], None]] = None) -> Optional[Unit]:
        """The next unit; None when there is none and none can come back. `while_waiting` runs (here,
        outside the lock) where the caller would otherwise wait for a running unit to end."""
        if while_waiting is not None:
            with self._cond:
                waiting = not self._heap and self._running and not self._closed and not self._stopped()
            if waiting:
                while_waiting()
        with self._cond:
            while not self._heap and self._running and not self._closed and not self._stopped():
                self._cond.wait(timeout=0.2)
            if self._stopped():
                self._closed = True
            if self._closed or not self._heap:
                return None
            self._running += 1
            return heapq.heappop(self._heap)[1]

    def done(self, given_back: dict[int, float]) -> None:
        """A unit ended; `given_back`: its jobs to run one by one, each with its estimated seconds."""
        with self._cond:
            self._running -= 1
            for i, seconds in given_back.items():
                heapq.heappush(self._heap, ((1, -seconds, i), (i, (i,), True)))
            self._cond.notify_all()

    def finished(self) -> bool:
        """Nothing left to hand out, and nothing running that could give jobs back."""
        with self._cond:
            return self._closed or (not self._heap and not self._running)

    def close(self) -> None:
        """Start no further unit (a stop, or an error in a helper)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()


_STOPS = {signal.SIGINT, signal.SIGTERM}
#: A helper starts only once the sweep has run this long: spawning one costs ~2 s of imports, more
#: than a sweep of a few one-second jobs takes, which then runs as before, in this process alone.
HELPER_AFTER_S = 3.0
#: ... unless the sweep plans at least this many epochs over its jobs (train.epochs summed, a cap
#: where a target stops them earlier): then it starts at once, and imports while this process starts
#: the first unit (a study's second core otherwise idled its first ~5 s: lecture_qrsu's two long
#: groups then ended apart). `rnnexp -m model=rnn,lstm` (2 x 100, stopped at the target within
#: seconds) stays below it.
HELPER_AT_ONCE_EPOCHS = 500


def helper_after(planned_epochs: int) -> float:
    """Seconds into the sweep before a helper starts."""
    return 0.0 if planned_epochs >= HELPER_AT_ONCE_EPOCHS else HELPER_AFTER_S
#: Units this process runs at once (itself and its helpers with a unit): whether a job's pictures
#: go to a drawing process (a core left free) follows what runs now.
_RUNNING = {"units": 1}


def running_units() -> int:
    return _RUNNING["units"]


def run_side_by_side(units: Units, run_unit: RunUnit, helpers: int, payload: bytes,
                     stop_signal: Callable[[], int], cores_free: Optional[Callable[[], int]] = None,
                     while_waiting: Callable[[], None] = lambda: None,
                     start_after: Optional[float] = None) -> dict[int, JobReturn]:
    """Run `units` in this process and in up to `helpers` spawned processes; `payload`: what a helper
    needs to run a unit (`helper_unit`), pickled once; `cores_free`: where given, helper n starts
    only if at least n + 2 cores are free when it would (after `start_after` seconds, by default
    HELPER_AFTER_S); `while_waiting`:
    what this process does once no unit is left for it while helpers still train (the summary's
    imports). Raises what a unit raised (after the others ended), the stop first."""
    runs: dict[int, JobReturn] = {}
    errors: list[BaseException] = []
    executor = ProcessPoolExecutor(max_workers=helpers, mp_context=get_context("spawn"),
                                   initializer=_start_helper, initargs=(payload,))

    started, wait = time.monotonic(), HELPER_AFTER_S if start_after is None else start_after

    def feed(n: int) -> None:
        """One thread per helper: hands it units while there are any, and passes a stop on."""
        passed_on = False
        while time.monotonic() - started < wait and not units.finished():
            time.sleep(0.05)
        if units.finished() or (cores_free is not None and cores_free() < n + 2):
            return  # (the sweep is done, or other processes keep the core busy: this one goes on alone)
        while (unit := units.take()) is not None:
            _RUNNING["units"] += 1
            given_back: dict[int, float] = {}
            try:
                # (a helper starts on its first unit: a signal before its handler is in place would
                # kill it mid-import and break the pool; blocked here, the child inherits the mask
                # and `_start_helper` unblocks it once its handler records stops)
                signal.pthread_sigmask(signal.SIG_BLOCK, _STOPS)
                try:
                    future = executor.submit(helper_unit, unit)
                finally:
                    signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOPS)
                while True:
                    try:
                        done, given_back = pickle.loads(future.result(timeout=0.2))
                        break
                    except FutureTimeout:
                        if stop_signal() and not passed_on:
                            passed_on = True
                            _pass_on(executor)
                runs.update(done)
            except BaseException as err:
                errors.append(err)
                units.close()
            finally:
                _RUNNING["units"] -= 1
                units.done(given_back)

    ready: list[bool] = []

    def get_ready() -> None:
        """(once: the first time this process waits for the helpers' units)"""
        if not ready:
            ready.append(True)
            try:
                while_waiting()
            except Exception:  # noqa: BLE001 - a head start, never the sweep's end
                pass

    threads = [threading.Thread(target=feed, args=(n,), name=f"rnnexp-helper-{n}", daemon=True) for n in range(helpers)]
    first = units.take()  # (this process starts at once; a helper is ready after its imports, ~2 s)
    for thread in threads:
        thread.start()
    try:
        while (unit := first or units.take(get_ready)) is not None:
            first = None
            given_back = {}
            try:
                done, given_back = run_unit(unit)
                runs.update(done)
            except (Exception, Interrupted) as err:  # (a second Ctrl-C is a KeyboardInterrupt: below)
                errors.append(err)
                units.close()
            finally:
                units.done(given_back)
            if stop_signal():
                units.close()
        for thread in threads:
            while thread.is_alive():
                thread.join(timeout=0.2)
                if stop_signal():
                    units.close()
    except BaseException:  # a second Ctrl-C: stop at once, helpers included
        units.close()
        for process in list(getattr(executor, "_processes", {}).values()):
            process.kill()
        executor.shutdown(wait=False, cancel_futures=True)
        raise
    executor.shutdown(wait=True)
    if errors:
        raise next((e for e in errors if isinstance(e, Interrupted)), errors[0])
    return runs


def _pass_on(executor: ProcessPoolExecutor) -> None:
    """A stop this process received (a SIGTERM reaches only it) goes to the helpers as SIGTERM:
    each records it, as for its own signal, and its unit stops with its checkpoints saved.
    (ProcessPoolExecutor names its processes only in `_processes`.)"""
    for pid in list(getattr(executor, "_processes", {}).keys()):
        try:
            os.kill(pid, signal.SIGTERM)
        except OSError:
            pass


_helper: Any = None  # the launcher a helper process runs its units with


def _start_helper(payload: bytes) -> None:
    """A helper's start: the launcher as the sweep's process set it up (Hydra's state included),
    and a stop recorded, never raised, between and inside units (a job's own handler records it too)."""
    global _helper
    from hydra.core.plugins import Plugins
    from hydra.core.singleton import Singleton
    from hydra.core.utils import configure_log, setup_globals

    from rnnexp.sweep.jobs import SweepState

    def record(signum: int, frame: Any) -> None:
        SweepState.stop_signal = SweepState.stop_signal or signum

    record.records_stop = True  # type: ignore[attr-defined]
    for sig in _STOPS:
        signal.signal(sig, record)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOPS)  # (blocked by the thread that spawned it)
    launcher_class, setup, (module, name), instances, sweep_dir, state = pickle.loads(payload)
    # Hydra's state as the sweep's process has it (its plugins found again); the config resolvers,
    # local functions that do not pickle, are registered again by Hydra and by the task's module.
    Singleton._instances = instances
    Plugins.instance()
    setup_globals()
    configure_log(setup["config"].hydra.hydra_logging, setup["config"].hydra.verbose)
    SweepState.directory = sweep_dir
    task_function = getattr(importlib.import_module(module), name)
    # (by name: hydra.main's wrapper stands under the task function's name, the function in __wrapped__)
    # (a child's atexit does not run: its drawing process, if one started, ends before the
    # interpreter waits for its children)
    from rnnexp.insight.drawing import shutdown_drawing_process

    Finalize(None, shutdown_drawing_process, exitpriority=10)
    _helper = launcher_class()
    _helper.setup(task_function=getattr(task_function, "__wrapped__", task_function), **setup)
    _helper.__dict__.update(state)
    getattr(_helper, "_keep_compositions", lambda keep: None)(False)  # (it composes what it was not sent, and keeps nothing)


def helper_unit(unit: Unit) -> bytes:
    """Run one unit in a helper process; its JobReturns pickled (a failed job's error as itself
    where it pickles, otherwise as a RuntimeError with its message)."""
    from rnnexp.cli import finish_pictures
    from rnnexp.sweep.jobs import SweepState

    try:
        done, given_back = _helper.run_unit(unit)
    except Interrupted as stop:
        SweepState.stop_signal = SweepState.stop_signal or stop.signum
        raise Interrupted(stop.signum) from None
    finally:
        finish_pictures()  # (this process's last pictures, before the sweep's summary reads them)
    return pickle.dumps(({i: _plain(ret) for i, ret in done.items()}, given_back))


def _plain(ret: JobReturn) -> JobReturn:
    """A JobReturn that pickles: its status, value and job's place, without its configs (Hydra's
    structured-config classes do not pickle across processes; the sweeper reads only the value).
    A failed job's error as itself where it pickles, otherwise as a RuntimeError with its message."""
    value = getattr(ret, "_return_value", None)
    if isinstance(value, BaseException):
        try:
            pickle.loads(pickle.dumps(value))
        except Exception:
            value = RuntimeError(str(value))
    return JobReturn(overrides=ret.overrides, working_dir=ret.working_dir, task_name=ret.task_name,
                     status=ret.status, _return_value=value)
