"""A directory holds one run (issue 17, item 1): the lock, stale holders, finished runs, overwrite.

Before: `hydra.run.dir=X` for an LSTM and a GRU 0.3 s apart both exited 0 into one directory
(results.json said lstm, overrides.yaml gru, two event files made one TensorBoard run), and a
third run into X replaced the first one's results and checkpoints."""

from __future__ import annotations

import json
import multiprocessing
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from rnnexp import run_dirs, run_lock
from rnnexp.errors import RunDirError
from rnnexp.run_lock import LOCK, STALE_AFTER_S
from tests.test_cli import ENV, run_main, snapshot

ONE_EPOCH = ["train.epochs=1", "train.target_accuracy=null", "train.insight_every=0", "task.train_size=320",
             "task.val_size=200", "task.test_size=200", "train.progress=lines"]


@pytest.fixture(autouse=True)
def release_locks():
    yield
    run_dirs.release_all()


def write_lock(directory: Path, age_s: float = 0.0, **holder) -> None:
    """A lock file as a run elsewhere left it (nobody here holds its flock)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / LOCK).write_text(json.dumps({"host": socket.gethostname(), "started": "then", **holder}))
    then = time.time() - age_s
    os.utime(directory / LOCK, (then, then))


def hold(directory: Path, seconds: float = 60) -> subprocess.Popen:
    """Another process that claims `directory` and keeps it."""
    code = (f"import time; from rnnexp import run_dirs; run_dirs.claim({str(directory)!r}, what='run', "
            f"resume=False, overwrite=False); print('held', flush=True); time.sleep({seconds})")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def claim_after(directory: str, start: float) -> bool:
    """(In its own process.) Claim `directory` at `start` sharp; hold it a moment; True if claimed."""
    from rnnexp import run_dirs as dirs
    from rnnexp.errors import RunDirError as Refused

    time.sleep(max(0.0, start - time.time()))
    try:
        dirs.claim(directory, what="run", resume=False, overwrite=False)
    except Refused:
        return False
    time.sleep(1.0)
    return True


def test_a_finished_run_is_refused_and_left_untouched(tmp_path, monkeypatch, capsys):
    target = tmp_path / "X"
    code, _, err = run_main(monkeypatch, capsys, tmp_path, "model=lstm", f"hydra.run.dir={target}", *ONE_EPOCH)
    assert code == 0, err
    assert not (target / LOCK).exists(), "released at the end"
    before = snapshot(target)
    code, _, err = run_main(monkeypatch, capsys, tmp_path, "model=gru", f"hydra.run.dir={target}", *ONE_EPOCH)
    assert code == 2
    (line,) = err.strip().splitlines()
    assert f"{target} already holds a completed run" in line
    assert f"train.resume={target}" in line and "train.overwrite=true" in line
    assert snapshot(target) == before, "nothing in the directory is touched (not even run.log)"


def test_overwrite_moves_the_old_run_aside_never_deletes_it(tmp_path, monkeypatch, capsys):
    target = tmp_path / "X"
    assert run_main(monkeypatch, capsys, tmp_path, "model=lstm", f"hydra.run.dir={target}", *ONE_EPOCH)[0] == 0
    before = snapshot(target)
    code, _, err = run_main(monkeypatch, capsys, tmp_path, "model=gru", f"hydra.run.dir={target}",
                            "train.overwrite=true", *ONE_EPOCH)
    assert code == 0, err
    (aside,) = tmp_path.glob("X.replaced-*")
    assert snapshot(aside) == before
    assert json.loads((target / "results.json").read_text())["cell"] == "gru"
    assert yaml.safe_load((target / ".hydra" / "overrides.yaml").read_text())[0] == "model=gru"
    assert len(list(target.glob("events.out.tfevents.*"))) == 1 and "lstm" not in (target / "run.log").read_text()


def test_a_live_holder_is_refused_and_a_killed_one_is_taken_over(tmp_path):
    busy = tmp_path / "busy"
    holder = hold(busy)
    try:
        with pytest.raises(RunDirError, match=f"{busy} is in use by the run of pid {holder.pid}, started"):
            run_dirs.claim(busy, what="run", resume=False, overwrite=False)
        with pytest.raises(RunDirError, match=f"{busy} is in use by the run of pid {holder.pid}"):
            run_dirs.claim(busy / "job", what="run", resume=True, overwrite=False)  # inside it, too
    finally:
        holder.kill()
        holder.wait()
    # Killed with -9: the kernel released its lock; the next run takes the directory over.
    run_dirs.claim(busy, what="run", resume=True, overwrite=False)
    assert json.loads((busy / LOCK).read_text())["pid"] == os.getpid()


def test_of_runs_started_at_the_same_instant_exactly_one_gets_the_directory(tmp_path):
    start = time.time() + 3.0  # after the processes have started
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        claimed = pool.starmap(claim_after, [(str(tmp_path / "X"), start)] * 4)
    assert sorted(claimed) == [False, False, False, True]


def test_a_lock_file_nobody_holds_is_no_lock(tmp_path):
    for name, content in (("empty", ""), ("torn", '{"pid": 12'), ("no-pid", '{"host": "%s"}' % socket.gethostname())):
        (tmp_path / name).mkdir()
        (tmp_path / name / LOCK).write_text(content)
        run_dirs.claim(tmp_path / name, what="run", resume=False, overwrite=False)


def test_a_holder_on_another_host_is_judged_by_its_heartbeat(tmp_path):
    away = tmp_path / "away"
    write_lock(away, pid=1, host="node-7")
    with pytest.raises(RunDirError, match="in use by the run of pid 1 on node-7"):
        run_dirs.claim(away, what="run", resume=False, overwrite=False)
    write_lock(away, age_s=STALE_AFTER_S + 60, pid=1, host="node-7")
    run_dirs.claim(away, what="run", resume=False, overwrite=False)


def test_only_the_same_job_requeued_takes_a_live_lock_over(tmp_path, monkeypatch):
    """A requeued submitit/SLURM job (a higher restart count) takes its lock over; another step of
    the same allocation (same job id, same count) does not."""
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    monkeypatch.setenv("SLURM_RESTART_COUNT", "0")
    write_lock(tmp_path / "step", pid=1, host="node-7", job="4242", restart=0)
    with pytest.raises(RunDirError, match="on node-7"):
        run_dirs.claim(tmp_path / "step", what="run", resume=False, overwrite=False)
    monkeypatch.setenv("SLURM_RESTART_COUNT", "1")
    run_dirs.claim(tmp_path / "step", what="run", resume=False, overwrite=False)
    assert json.loads((tmp_path / "step" / LOCK).read_text())["restart"] == 1


def test_the_heartbeat_is_refreshed_while_the_run_lives(tmp_path, monkeypatch):
    monkeypatch.setattr(run_lock, "HEARTBEAT_S", 0.05)
    run_dirs.claim(tmp_path / "beating", what="run", resume=False, overwrite=False)
    lock = tmp_path / "beating" / LOCK
    old = time.time() - 1000
    os.utime(lock, (old, old))
    time.sleep(0.3)
    assert time.time() - lock.stat().st_mtime < 5


def test_a_second_sweep_into_the_same_directory_is_refused_unless_resumed(tmp_path, monkeypatch, capsys):
    sweep = tmp_path / "S"
    args = ["-m", "model=lstm,gru", f"hydra.sweep.dir={sweep}", *ONE_EPOCH]
    assert run_main(monkeypatch, capsys, tmp_path, *args, "train.overwrite=true")[0] == 0
    before = snapshot(sweep)
    code, _, err = run_main(monkeypatch, capsys, tmp_path, *args)
    assert code == 2 and f"{sweep} already holds a sweep (2 job results)" in err
    resume = json.loads((sweep / "jobs.json").read_text())["resume"]
    assert f"resume it with {resume}" in err and "train.overwrite" not in resume
    assert snapshot(sweep) == before
    # Another sweep (other jobs) is not let in by train.resume=auto: it names the sweep's own command.
    code, _, err = run_main(monkeypatch, capsys, tmp_path, "-m", "model=rnn,gru", f"hydra.sweep.dir={sweep}",
                            *ONE_EPOCH, "train.resume=auto")
    assert code == 2 and "holds another sweep than this command plans" in err and resume in err
    assert snapshot(sweep) == before
    code, _, err = run_main(monkeypatch, capsys, tmp_path, *args, "train.resume=auto")
    assert code == 0, err
    assert sorted(p.name for p in sweep.glob("model=*")) == ["model=gru", "model=lstm"]


def test_a_run_started_with_overwrite_resumes_with_its_own_command(tmp_path, monkeypatch, capsys):
    target = tmp_path / "X"
    args = [f"hydra.run.dir={target}", "train.epochs=1", "train.target_accuracy=null", "train.insight_every=0",
            "task.train_size=320", "task.val_size=200", "task.test_size=200"]
    assert run_main(monkeypatch, capsys, tmp_path, *args, "train.overwrite=true")[0] == 0
    code, _, err = run_main(monkeypatch, capsys, tmp_path, f"train.resume={target}", "train.epochs=2")
    assert code == 0, err
    code, _, err = run_main(monkeypatch, capsys, tmp_path, f"train.resume={target}", "train.epochs=3",
                            "train.overwrite=true")
    assert code == 2 and "choose one" in err


def test_resuming_a_run_that_is_still_running_says_so(tmp_path, monkeypatch, capsys):
    busy = tmp_path / "busy"
    holder = hold(busy)
    try:
        code, _, err = run_main(monkeypatch, capsys, tmp_path, f"train.resume={busy}")
    finally:
        holder.kill()
        holder.wait()
    assert code == 2 and "it is still running: resume it once it has stopped" in err


@pytest.mark.slow
def test_two_runs_started_together_into_one_directory_one_is_refused(tmp_path):
    target = tmp_path / "X"
    common = [f"hydra.run.dir={target}", "train.epochs=3", "train.target_accuracy=null", "train.progress=lines"]
    first = subprocess.Popen(["rnnexp", "model=lstm", *common], cwd=tmp_path, env=ENV, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    time.sleep(0.3)
    second = subprocess.run(["rnnexp", "model=gru", *common], cwd=tmp_path, env=ENV, capture_output=True, text=True)
    out, err = first.communicate(timeout=120)
    assert first.returncode == 0, err
    assert second.returncode == 2 and f"{target} is in use by the run of pid {first.pid}" in second.stderr
    assert json.loads((target / "results.json").read_text())["cell"] == "lstm"
    assert yaml.safe_load((target / ".hydra" / "overrides.yaml").read_text())[0] == "model=lstm"
    assert len(list(target.glob("events.out.tfevents.*"))) == 1 and "gru" not in (target / "run.log").read_text()
