"""A sweep's units side by side (rnnexp.sweep.side_by_side): the same results as one after another,
in more than one process; a stop saves every running unit and one command resumes the sweep."""

from __future__ import annotations

import json
import math
import os
import shlex
import signal
import subprocess
import threading
import time

import pytest

from rnnexp.sweep.side_by_side import Units
from tests.test_cli import ENV
from tests.test_sweep_stop import QUICK_THEN_LONG, job_dirs, wait_for


def test_units_go_in_the_jobs_order_and_given_back_jobs_after_every_group_the_longest_first():
    units = Units([[0, 2, 4], [1, 3, 5], [6], [7, 8, 9]])
    first = units.take()
    assert first == (0, (0, 2, 4), False)
    second = units.take()
    assert second == (1, (1, 3, 5), False)
    units.done({0: 5.0, 2: 5.0, 4: 5.0})  # (the first group's probe chose one by one)
    assert units.take() == (6, (6,), False), "every group before a job given back"
    units.done({})
    assert units.take() == (7, (7, 8, 9), False)
    units.done({7: 20.0, 8: 20.0, 9: math.inf})  # (a longer job's group, probed later; a job with no estimate)
    assert [units.take()[1] for _ in range(6)] == [(9,), (7,), (8,), (0,), (2,), (4,)], \
        "a job of unknown length as early as the jobs' order allows, then the longest first"
    for _ in range(6):
        units.done({})
    units.done({})  # the second group trained packed
    assert units.take() is None


def test_a_caller_waits_while_a_running_unit_may_still_give_jobs_back():
    units = Units([[0, 1]])
    assert units.take() is not None
    taken = []
    waiter = threading.Thread(target=lambda: taken.append(units.take()))
    waiter.start()
    time.sleep(0.2)
    assert waiter.is_alive(), "the queue is empty, but the group may give its jobs back"
    units.done({0: 0.0, 1: 0.0})
    waiter.join(timeout=5)
    assert taken == [(0, (0,), True)]


def test_a_closed_queue_starts_nothing_more():
    units = Units([[0], [1]])
    units.take()
    units.close()
    assert units.take() is None


def _results(sweep) -> dict[str, dict]:
    return {d.name: json.loads((d / "results.json").read_text()) for d in sweep.iterdir() if (d / "results.json").is_file()}


@pytest.mark.slow
def test_units_side_by_side_give_the_results_of_one_after_another(tmp_path):
    # (long enough for a helper to start: it waits side_by_side.HELPER_AFTER_S, 3 s)
    args = ["task=qrsu", "model=rnn,lstm", "train.seed=1,2,3", "model.hidden_size=5", "train.epochs=8",
            "train.target_accuracy=null", "train.insight_every=0", "train.pack_seeds=off"]  # (the probe's verdict is the machine's: packed is close to, not bit for bit, alone)
    runs = {}
    for n_jobs in (1, 2):
        sweep = tmp_path / f"n{n_jobs}"
        proc = subprocess.run(["rnnexp", "-m", *args, f"hydra.launcher.n_jobs={n_jobs}", f"hydra.sweep.dir={sweep}"],
                              cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
        runs[n_jobs] = _results(sweep)
        assert ("up to 2 units at a time" in proc.stdout + proc.stderr) == (n_jobs == 2)
    assert sorted(runs[1]) == sorted(runs[2]) and len(runs[1]) == 6
    for name, alone in runs[1].items():
        beside = runs[2][name]
        assert beside["status"] == alone["status"] == "completed"
        assert beside["test"] == alone["test"], name
        assert [e["val/loss"] for e in beside["history"]] == [e["val/loss"] for e in alone["history"]], name
    assert len({r["provenance"]["pid"] for r in runs[1].values()}) == 1
    assert len({r["provenance"]["pid"] for r in runs[2].values()}) == 2, "the second unit ran in a helper process"


@pytest.mark.slow
@pytest.mark.parametrize("how", ["ctrl-c", "sigterm-to-the-sweep"])
def test_a_stop_saves_the_units_on_every_core_and_one_command_resumes_the_sweep(tmp_path, how):
    """Ctrl-C reaches every process; a SIGTERM (a scheduler's, `kill`) only the sweep's, which
    passes it on to its helpers."""
    # (HYDRA_FULL_ERROR: an error on the way out would show its traceback, not pass for the stop)
    proc = subprocess.Popen(["rnnexp", "-m", *QUICK_THEN_LONG, "hydra.launcher.n_jobs=2", "train.epochs=60,61,2"],
                            cwd=tmp_path, env={**ENV, "HYDRA_FULL_ERROR": "1"}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    wait_for("outputs/multirun/*/*/epochs=61/run.log", tmp_path, proc)  # (the helper's first unit trains)
    wait_for("outputs/multirun/*/*/epochs=60/run.log", tmp_path, proc)
    if how == "ctrl-c":
        os.killpg(proc.pid, signal.SIGINT)
    else:
        os.kill(proc.pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == (130 if how == "ctrl-c" else 143), err
    assert "Traceback" not in err, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("rnnexp: sweep stopped (3 jobs: 2 interrupted, 1 not started"), last
    jobs = job_dirs(tmp_path)
    for n in "01":  # (both were training, one in each process)
        res = json.loads((jobs[n] / "results.json").read_text())
        assert res["status"] == "interrupted" and (jobs[n] / "checkpoint.pt").is_file(), res
    assert len({json.loads((jobs[n] / "results.json").read_text())["provenance"]["pid"] for n in "01"}) == 2
    time.sleep(1.5)  # (a helper left behind would still be here, in the sweep's process group)
    ps = subprocess.run(["ps", "-eo", "pgid=,args="], capture_output=True, text=True)
    left = [line for line in ps.stdout.splitlines() if line.split()[0] == str(proc.pid)]
    assert not left, f"no process outlives the sweep: {left}"

    command = last.split("resume the whole sweep with: ", 1)[1]
    resumed = subprocess.run(shlex.split(command), cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    results = {n: json.loads((d / "results.json").read_text()) for n, d in job_dirs(tmp_path).items()}
    assert [results[n]["status"] for n in "012"] == ["completed"] * 3
    assert [results[n]["epochs_run"] for n in "012"] == [60, 61, 2]
    for n in "01":
        assert "resuming at epoch" in (job_dirs(tmp_path)[n] / "run.log").read_text()


def test_a_wrong_n_jobs_is_one_line_before_the_sweep_makes_its_directory(tmp_path):
    from tests.test_cli import rnnexp

    for wrong in ("two", "0"):
        proc = rnnexp("-m", "model=rnn,lstm", f"hydra.launcher.n_jobs={wrong}", f"hydra.sweep.dir={tmp_path / 'S'}",
                      cwd=tmp_path)
        assert proc.returncode == 2
        assert proc.stderr.strip().splitlines() == [
            f"rnnexp: error: hydra.launcher.n_jobs={wrong}: use auto (one unit per free core), 1 (one after another) "
            "or a number of units side by side (-1: every core)"]
        assert not (tmp_path / "S").exists()


def test_n_jobs_auto_plans_a_unit_per_core_and_one_on_a_gpu(monkeypatch):
    from omegaconf import OmegaConf

    from rnnexp.sweep import launcher

    monkeypatch.setattr("rnnexp.engine.threads.available_cores", lambda: 4)
    monkeypatch.setattr("rnnexp.engine.threads.busy_cores_elsewhere", lambda: 1.2)

    def config(n_jobs, device="cpu"):
        return OmegaConf.create({"hydra": {"launcher": {"n_jobs": n_jobs}}, "train": {"device": device}})

    assert launcher.side_by_side(config("auto"), jobs=10)[0] == 4
    assert launcher.side_by_side(config("auto"), jobs=2)[0] == 2, "no more units than groups"
    assert launcher.side_by_side(config("auto", "cuda"), jobs=10)[0] == 1
    assert launcher.side_by_side(config(-1), jobs=10)[0] == 4
    assert launcher.side_by_side(config(1), jobs=10)[0] == 1
    assert launcher.cores_free() == 3, "one core is busy elsewhere: a helper less"


def test_a_helper_starts_only_where_a_core_is_free(monkeypatch):
    """(In-process: the helpers never start, so this process runs every unit.)"""
    from rnnexp.sweep import side_by_side as sbs

    monkeypatch.setattr(sbs, "HELPER_AFTER_S", 0.0)
    units, ran = Units([[0], [1], [2]]), []

    def run_unit(unit):
        time.sleep(0.3)  # (long enough for a helper to take the next unit, were it started)
        ran.append(unit[1])
        return {unit[0]: unit[0]}, {}

    runs = sbs.run_side_by_side(units, run_unit, helpers=1, payload=b"", stop_signal=lambda: 0, cores_free=lambda: 1)
    assert sorted(runs) == [0, 1, 2] and ran == [(0,), (1,), (2,)]


@pytest.mark.slow
def test_a_sweep_of_a_few_seconds_starts_no_helper(tmp_path):
    """A helper costs ~2 s of imports: a sweep shorter than side_by_side.HELPER_AFTER_S runs alone,
    and its pictures go to the drawing process (no unit trains beside it)."""
    sweep = tmp_path / "S"
    proc = subprocess.run(["rnnexp", "-m", "task=qrsu", "model=rnn,lstm", "train.epochs=1", "task.train_size=64",
                           "train.target_accuracy=null", "hydra.launcher.n_jobs=2", f"hydra.sweep.dir={sweep}"],
                          cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    runs = _results(sweep)
    assert len(runs) == 2 and len({r["provenance"]["pid"] for r in runs.values()}) == 1
    assert all((sweep / name / "states.png").is_file() for name in runs)
    assert all("pictures: by a process of their own" in (sweep / name / "run.log").read_text() for name in runs)


def helper_threads(monkeypatch, seconds: float) -> list:
    """The helper process as a thread whose unit's work is a sleep; the units it ran."""
    import pickle
    from concurrent.futures import ThreadPoolExecutor

    from rnnexp.sweep import side_by_side as sbs

    class Threads(ThreadPoolExecutor):
        def __init__(self, max_workers, mp_context=None, initializer=None, initargs=()):
            super().__init__(max_workers)

    ran = []

    def helper_unit(unit):
        time.sleep(seconds)
        ran.append(unit[1])
        return pickle.dumps(({unit[0]: unit[0]}, {}))

    monkeypatch.setattr(sbs, "ProcessPoolExecutor", Threads)
    monkeypatch.setattr(sbs, "helper_unit", helper_unit)
    return ran


def test_this_process_gets_the_summary_ready_while_a_helper_trains_the_last_unit(monkeypatch):
    """Out of units while a helper still trains, this process imports and warms up what the summary
    needs (~1 s of a sweep's end otherwise); with nothing to wait for, it does not."""
    from rnnexp.sweep import side_by_side as sbs

    helper_threads(monkeypatch, 1.0)
    monkeypatch.setattr(sbs, "HELPER_AFTER_S", 0.0)
    for work, expected in ((0.3, ["ready"]), (3.0, [])):  # (this process's units last longer than the helper's)
        events = []

        def run_unit(unit, work=work):
            time.sleep(work)
            return {unit[0]: unit[0]}, {}

        runs = sbs.run_side_by_side(Units([[0], [1]]), run_unit, helpers=1, payload=b"", stop_signal=lambda: 0,
                                    while_waiting=lambda: events.append("ready"))
        assert sorted(runs) == [0, 1] and events == expected


def test_a_sweep_that_plans_many_epochs_starts_its_helper_at_once(monkeypatch):
    """A helper waits HELPER_AFTER_S (a sweep of a few short jobs runs alone), unless the plan is long:
    then it starts at once and takes the second unit while this process trains the first."""
    from omegaconf import OmegaConf

    from rnnexp.sweep import side_by_side as sbs
    from rnnexp.sweep.launcher import planned_epochs

    configs = [OmegaConf.create({"train": {"epochs": 450}}), OmegaConf.create({"train": {"epochs": 50}}),
               OmegaConf.create({"train": {"epochs": "${oops}"}}), OmegaConf.create({"task": {}})]
    assert planned_epochs(configs) == 500 and sbs.helper_after(500) == 0.0
    assert sbs.helper_after(planned_epochs(configs[1:])) == sbs.HELPER_AFTER_S
    assert sbs.helper_after(200) == sbs.HELPER_AFTER_S, "rnnexp -m model=rnn,lstm: two jobs of 100 epochs at most"
    for after, helped in ((None, []), (0.0, [(1,)])):
        ran = helper_threads(monkeypatch, 0.2)

        def run_unit(unit):
            time.sleep(0.5)
            return {unit[0]: unit[0]}, {}

        runs = sbs.run_side_by_side(Units([[0], [1]]), run_unit, helpers=1, payload=b"", stop_signal=lambda: 0,
                                    start_after=after)
        assert sorted(runs) == [0, 1] and ran == helped
