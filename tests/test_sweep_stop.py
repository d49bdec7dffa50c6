"""Ctrl-C on a whole sweep, as a terminal sends it (to the process group), and resuming the sweep
as a whole with the one command it prints."""

import json
import os
import shlex
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.test_cli import ENV

QUICK_THEN_LONG = ["task=qrsu", "task.difficulty=normal", "task.train_size=3000", "model.hidden_size=6",
                   "train.target_accuracy=null", "train.insight_every=0"]


def start_sweep(cwd: Path, *args: str) -> subprocess.Popen:
    # A session of its own, so that the test can signal the whole group as a terminal's Ctrl-C does.
    return subprocess.Popen(["rnnexp", "-m", *args], cwd=cwd, env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def wait_for(path_glob: str, cwd: Path, proc: subprocess.Popen, text: str = "] epoch ", timeout: float = 120) -> Path:
    deadline = time.time() + timeout
    while time.time() < deadline:
        for path in cwd.glob(path_glob):
            if text in path.read_text():
                return path.parent
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    raise AssertionError(f"nothing matched {path_glob}")


def job_dirs(cwd: Path) -> dict[str, Path]:
    """Each job's directory by its number in the sweep's plan (jobs.json); the directories that exist."""
    sweep = next(cwd.glob("outputs/multirun/*/*/jobs.json")).parent
    plan = json.loads((sweep / "jobs.json").read_text())["jobs"]
    return {str(job["job"]): sweep / job["dir"] for job in plan if (sweep / job["dir"]).is_dir()}


@pytest.mark.slow
def test_ctrl_c_on_a_sweep_saves_every_job_and_one_command_resumes_the_whole_sweep(tmp_path):
    proc = start_sweep(tmp_path, *QUICK_THEN_LONG, "train.epochs=2,60,61", "hydra.launcher.n_jobs=1")  # (tests/test_side_by_side.py: 2)
    wait_for("outputs/multirun/*/*/epochs=60/run.log", tmp_path, proc)  # job 0 done, job 1 training
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    last = err.strip().splitlines()[-1]
    assert "Traceback" not in err and last.startswith("rnnexp: sweep stopped (3 jobs: 1 completed, 1 interrupted, "
                                                      "1 not started"), last
    summary = next(tmp_path.glob("outputs/multirun/*/*/summary.md")).read_text()
    assert "not started" in summary and "interrupted" in summary and "completed" in summary
    jobs = job_dirs(tmp_path)
    assert (jobs["1"] / "checkpoint.pt").is_file()
    assert json.loads((jobs["1"] / "results.json").read_text())["status"] == "interrupted"
    done_before = (jobs["0"] / "results.json").read_bytes()

    command = last.split("resume the whole sweep with: ", 1)[1]
    resumed = subprocess.run(shlex.split(command), cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    jobs = job_dirs(tmp_path)
    assert (jobs["0"] / "results.json").read_bytes() == done_before, "a completed job is kept as it was"
    assert "resuming at epoch" in (jobs["1"] / "run.log").read_text(), "an interrupted job continues"
    results = {n: json.loads((d / "results.json").read_text()) for n, d in jobs.items()}
    assert [results[n]["status"] for n in "012"] == ["completed"] * 3
    assert [results[n]["epochs_run"] for n in "012"] == [2, 60, 61], "the job that never started ran"
    assert "3 jobs: 3 completed" in resumed.stdout


@pytest.mark.slow
@pytest.mark.parametrize("when", ["] epoch ", "run directory: "], ids=["while-training", "while-starting"])
def test_ctrl_c_on_a_parallel_sweep_is_one_clean_line_and_exit_130(tmp_path, when):
    """Every job of the pool saves and says what happened to it: Hydra's joblib launcher would kill
    the whole pool when the first job raised, also a job still importing torch."""
    proc = start_sweep(tmp_path, "hydra/launcher=local_parallel", "hydra.launcher.n_jobs=2", *QUICK_THEN_LONG,
                       "train.epochs=60", "model=rnn,gru,lstm")
    wait_for("outputs/multirun/*/*/model=*/run.log", tmp_path, proc, text=when)
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    lines = [line for line in err.strip().splitlines() if line.startswith("rnnexp:")]
    assert "Traceback" not in err and "KeyboardInterrupt" not in err and "Error executing job" not in err, err
    assert lines[-1].startswith("rnnexp: sweep stopped (3 jobs:") and "train.resume=auto" in lines[-1]
    plan = json.loads(next(tmp_path.glob("outputs/multirun/*/*/jobs.json")).read_text())
    assert len(plan["jobs"]) == 3
    rows = next(tmp_path.glob("outputs/multirun/*/*/summary.csv")).read_text().strip().splitlines()
    assert len(rows) == 1 + 3, "every job is in the summary, also one that never started"
    statuses = []
    for job in job_dirs(tmp_path).values():
        res = json.loads((job / "results.json").read_text())
        statuses.append(res["status"])
        if res["status"] == "interrupted":
            assert (job / "checkpoint.pt").is_file() and "train.resume=" in res["resume"]
        else:
            assert res["status"] == "not started" and not (job / "checkpoint.pt").exists(), res
    assert "interrupted" in statuses, "the job that was training (or building) saved its checkpoint"


@pytest.fixture
def sweep_signals(tmp_path):
    """The sweep's own Ctrl-C handling, as a sequential sweep's process has it; put back after."""
    from rnnexp.sweep.jobs import SweepState, catch_stop_signals

    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    SweepState.directory, SweepState.stop_signal = str(tmp_path), 0
    catch_stop_signals()
    yield SweepState
    for sig, handler in before.items():
        signal.signal(sig, handler)
    SweepState.directory, SweepState.stop_signal = None, 0


def test_a_job_of_a_sequential_sweep_passes_ctrl_c_on_to_the_sweep(sweep_signals, tmp_path, capsys):
    """Else a stop the job records but has no step left to act on (during its test, or before it
    fails) would be lost and the next job would start; and a second Ctrl-C would not stop at once."""
    from rnnexp.engine.signals import stop_on_signals
    from rnnexp.sweep.jobs import stop_requested_for

    with stop_on_signals() as stop_requested:
        os.kill(os.getpid(), signal.SIGINT)
        assert stop_requested() == signal.SIGINT
    assert sweep_signals.stop_signal == signal.SIGINT and stop_requested_for(tmp_path) == signal.SIGINT
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler, "a second Ctrl-C stops at once"
    assert "stopping the sweep" in capsys.readouterr().err


def test_a_job_marked_not_started_that_then_fails_says_why(tmp_path):
    from tests.conftest import compose_config

    from rnnexp.errors import ConfigError
    from rnnexp.run import run_experiment

    (tmp_path / "results.json").write_text(json.dumps({"status": "not started", "error": "the sweep was stopped"}))
    with pytest.raises(ConfigError):
        run_experiment(compose_config("train.lr=-1"), tmp_path, in_sweep=True)
    res = json.loads((tmp_path / "results.json").read_text())
    assert res["status"] == "failed" and "train.lr" in res["error"]


def test_a_sweep_run_in_process_leaves_the_signal_handlers_and_stop_record_as_it_found_them(
        tmp_path, monkeypatch, capsys):
    """main() called from Python (a notebook, a test): its sweep's Ctrl-C handler must not outlive it,
    or a later Ctrl-C in that process would be recorded as a stop of a sweep long finished, and the
    next group trained there would stop at its first step."""
    from rnnexp.sweep.jobs import SweepState
    from tests.test_cli import run_main
    from tests.test_names import TINY

    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    code, _, err = run_main(monkeypatch, capsys, tmp_path, "-m", "train.seed=1,2", f"hydra.sweep.dir={tmp_path / 'S'}",
                            *TINY)
    assert code == 0, err
    assert {sig: signal.getsignal(sig) for sig in before} == before
    assert SweepState.stop_signal == 0


def test_main_run_in_process_leaves_no_logging_handler_on_its_streams(tmp_path, monkeypatch, capsys):
    """Hydra's job logging points the root logger at the stdout of that call and at run.log; a run
    after it in the same process (a notebook, the next test) must not log into those closed streams."""
    import logging

    from tests.test_cli import run_main
    from tests.test_names import TINY

    before = list(logging.getLogger().handlers)
    code, _, err = run_main(monkeypatch, capsys, tmp_path, *TINY, f"hydra.run.dir={tmp_path / 'R'}")
    assert code == 0, err
    assert logging.getLogger().handlers == before
    assert "result:" in (tmp_path / "R" / "run.log").read_text(), "run.log flushed and complete"
