"""A directory holds one run (issue 17, item 1): the lock, stale holders, finished runs, overwrite.

Before: `hydra.run.dir=X` for an LSTM and a GRU 0.3 s apart both exited 0 into one directory
(results.json said lstm, overrides.yaml gru, two event files made one TensorBoard run), and a
third run into X replaced the first one's results and checkpoints."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from rnnexp import run_dirs
from rnnexp.errors import RunDirError
from tests.test_cli import ENV, run_main, snapshot

ONE_EPOCH = ["train.epochs=1", "train.target_accuracy=null", "train.insight_every=0", "task.train_size=320",
             "task.val_size=200", "task.test_size=200", "train.progress=lines"]


@pytest.fixture(autouse=True)
def release_locks():
    yield
    run_dirs.release_all()


def write_lock(directory: Path, **holder) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / run_dirs.LOCK).write_text(json.dumps({"host": socket.gethostname(), "started": "then", **holder}))


def a_dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_finished_run_is_refused_and_left_untouched(tmp_path, monkeypatch, capsys):
    target = tmp_path / "X"
    code, _, err = run_main(monkeypatch, capsys, tmp_path, "model=lstm", f"hydra.run.dir={target}", *ONE_EPOCH)
    assert code == 0, err
    assert not (target / run_dirs.LOCK).exists(), "released at the end"
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


def test_a_live_holder_is_refused_a_stale_one_is_taken_over(tmp_path):
    busy = tmp_path / "busy"
    write_lock(busy, pid=os.getppid(), start=run_dirs._process_start(os.getppid()))
    with pytest.raises(RunDirError, match=f"{busy} is in use by the run of pid {os.getppid()}"):
        run_dirs.claim(busy, what="run", resume=False, overwrite=False)
    assert not (busy / ".hydra").exists()
    # A killed run (its pid gone), or a pid since reused by another process, does not hold it.
    for name, holder in (("killed", {"pid": a_dead_pid()}), ("reused", {"pid": os.getppid(), "start": "1"})):
        write_lock(tmp_path / name, **holder)
        run_dirs.claim(tmp_path / name, what="run", resume=False, overwrite=False)
        assert json.loads((tmp_path / name / run_dirs.LOCK).read_text())["pid"] == os.getpid()


def test_a_holder_on_another_host_is_judged_by_its_heartbeat(tmp_path):
    away = tmp_path / "away"
    write_lock(away, pid=1, host="node-7")
    with pytest.raises(RunDirError, match="on node-7"):
        run_dirs.claim(away, what="run", resume=False, overwrite=False)
    old = time.time() - run_dirs.STALE_AFTER_S - 60
    os.utime(away / run_dirs.LOCK, (old, old))
    run_dirs.claim(away, what="run", resume=False, overwrite=False)


def test_the_same_cluster_job_requeued_elsewhere_takes_its_lock_over(tmp_path, monkeypatch):
    mine = tmp_path / "mine"
    write_lock(mine, pid=1, host="node-7", job="4242")
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    run_dirs.claim(mine, what="run", resume=False, overwrite=False)
    assert json.loads((mine / run_dirs.LOCK).read_text())["job"] == "4242"


def test_the_heartbeat_is_refreshed_while_the_run_lives(tmp_path, monkeypatch):
    monkeypatch.setattr(run_dirs, "HEARTBEAT_S", 0.05)
    run_dirs.claim(tmp_path / "beating", what="run", resume=False, overwrite=False)
    lock = tmp_path / "beating" / run_dirs.LOCK
    old = time.time() - 1000
    os.utime(lock, (old, old))
    time.sleep(0.3)
    assert time.time() - lock.stat().st_mtime < 5


def test_a_second_sweep_into_the_same_directory_is_refused_unless_resumed(tmp_path, monkeypatch, capsys):
    sweep = tmp_path / "S"
    args = ["-m", "model=lstm,gru", f"hydra.sweep.dir={sweep}", *ONE_EPOCH]
    assert run_main(monkeypatch, capsys, tmp_path, *args)[0] == 0
    before = snapshot(sweep)
    code, _, err = run_main(monkeypatch, capsys, tmp_path, *args)
    assert code == 2 and f"{sweep} already holds a sweep (2 job results)" in err and "train.resume=auto" in err
    assert snapshot(sweep) == before
    code, _, err = run_main(monkeypatch, capsys, tmp_path, *args, "train.resume=auto")
    assert code == 0, err


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
