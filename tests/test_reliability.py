"""Reliability: exact resume after SIGKILL, clean stops on SIGINT/SIGTERM, divergence, refusals."""

import json
import multiprocessing
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

from rnnexp.run_dirs import claim_fresh_dir
from tests.test_cli import ENV, rnnexp, scalars, snapshot

LONG = ["task=qrsu", "task.difficulty=normal", "task.train_size=3000", "model.hidden_size=6", "train.epochs=6",
        "train.checkpoint_minutes=0",
        "train.target_accuracy=null", "train.progress=lines"]


def start(cwd: Path, *args) -> subprocess.Popen:
    return subprocess.Popen(["rnnexp", *args], cwd=cwd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def wait_for_epochs(cwd: Path, epochs: int, proc: subprocess.Popen, timeout: float = 120,
                    pattern: str = "runs/*/*/run.log") -> Path:
    deadline = time.time() + timeout
    while time.time() < deadline:
        for results in (cwd / "outputs").glob(pattern):
            if results.read_text().count("] epoch ") >= epochs:
                return results.parent
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    raise AssertionError("the run did not get going")


def history(run_dir: Path) -> list[dict]:
    res = json.loads((run_dir / "results.json").read_text())
    return [{k: v for k, v in h.items() if "second" not in k} for h in res["history"]]


def curves(run_dir: Path) -> dict[str, list]:
    tags = ["train/loss", "train/accuracy", "val/loss", "val/accuracy"]
    out = {tag: scalars(run_dir, tag) for tag in tags}
    out["train/step_loss"] = scalars(run_dir, "train/step_loss")
    return out


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory) -> Path:
    """The uninterrupted reference run."""
    clean = tmp_path_factory.mktemp("clean")
    assert rnnexp(*LONG, cwd=clean).returncode == 0
    (clean_dir,) = list((clean / "outputs" / "runs").glob("*/*"))
    return clean_dir


@pytest.mark.slow
def test_sigkill_then_resume_equals_an_uninterrupted_run(tmp_path, clean_run):
    killed = tmp_path / "killed"
    killed.mkdir()
    proc = start(killed, *LONG)
    run_dir = wait_for_epochs(killed, 2, proc)
    time.sleep(0.05)  # somewhere inside epoch 3
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    torch.load(run_dir / "checkpoint.pt", weights_only=False)  # never torn
    resumed = rnnexp(f"train.resume={run_dir}", cwd=killed)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming at epoch" in resumed.stdout
    clean_dir = clean_run
    assert history(run_dir) == history(clean_dir)
    assert len(history(run_dir)) == 6
    got, want = curves(run_dir), curves(clean_dir)
    for tag in want:
        assert [s for s, _ in got[tag]] == [s for s, _ in want[tag]], f"{tag}: steps differ (duplicates?)"
        assert [v for _, v in got[tag]] == [v for _, v in want[tag]], f"{tag}: values differ"
    assert list((run_dir / ".hydra").glob("resume-*/overrides.yaml")), "the resume is recorded beside the original"


@pytest.mark.slow
@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_sigint_and_sigterm_checkpoint_and_exit_with_the_documented_code(tmp_path, sig, code, clean_run):
    proc = start(tmp_path, *LONG)
    run_dir = wait_for_epochs(tmp_path, 1, proc)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert f"train.resume='{run_dir}'" in err.strip().splitlines()[-1]
    payload = torch.load(run_dir / "checkpoint.pt", weights_only=False)
    assert payload["loop"]["global_step"] > 0, "the stop saved the position it came at (mid-epoch, mostly)"
    res = json.loads((run_dir / "results.json").read_text())
    assert res["status"] == "interrupted"
    assert scalars(run_dir, "val/accuracy"), "the TensorBoard log was closed with its data"
    resumed = rnnexp(f"train.resume={run_dir}", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads((run_dir / "results.json").read_text())["epochs_run"] == 6
    # The stop came mid-epoch (the checkpoint holds the batch and the carried state): still exact.
    assert history(run_dir) == history(clean_run)
    assert curves(run_dir) == curves(clean_run)


@pytest.mark.slow
def test_divergence_stops_with_a_message_and_exit_3(tmp_path):
    proc = rnnexp("model=rnn", "train.optimizer=sgd", "train.lr=1e30", "train.epochs=2", cwd=tmp_path)
    assert proc.returncode == 3
    line = proc.stderr.strip().splitlines()[-1]
    assert "the training loss became" in line and "epoch 1, steps" in line and "train.lr" in line and "grad_clip" in line
    (run_dir,) = list((tmp_path / "outputs" / "runs").glob("*/*"))
    assert json.loads((run_dir / "results.json").read_text())["status"] == "diverged"


def test_a_run_that_diverges_keeps_its_last_good_checkpoint(run_cfg, tmp_path, monkeypatch):
    from rnnexp.errors import DivergedError
    from rnnexp.tasks.qrsu import QRSUTask

    score, steps = QRSUTask.score, {"n": 0}

    def nan_from_the_fifth_step_of_epoch_3(self, outputs, batch):  # 10 training steps an epoch
        result = score(self, outputs, batch)
        if outputs.requires_grad:  # a training step (evaluation runs without gradients)
            steps["n"] += 1
            if steps["n"] > 24:
                result.loss = result.loss * float("nan")
                result.sums["loss"] = result.sums["loss"] * float("nan")
        return result

    monkeypatch.setattr(QRSUTask, "score", nan_from_the_fifth_step_of_epoch_3)
    with pytest.raises(DivergedError, match="at epoch 3, steps 21-30"):
        run_cfg(tmp_path, "task.train_size=320", "task.val_size=100", "task.test_size=100", "train.epochs=4",
                "train.target_accuracy=null", "train.checkpoint_minutes=0", "train.insight_every=0")
    payload = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    assert (payload["loop"]["epoch"], payload["loop"]["batch"]) == (3, 0), "the checkpoint after epoch 2 stays"
    assert json.loads((tmp_path / "run" / "results.json").read_text())["status"] == "diverged"


def test_two_runs_in_the_same_second_never_share_a_directory(tmp_path):
    base = str(tmp_path / "runs" / "12-00-00_qrsu-easy_lstm")
    with multiprocessing.get_context("spawn").Pool(4) as pool:  # separate processes, at the same time
        claimed = pool.map(claim_fresh_dir, [base] * 8)
    assert len(set(claimed)) == 8 and all(Path(p).is_dir() for p in claimed)
    assert base in claimed


def resumed_and_clean(run_cfg, tmp_path, monkeypatch, args, look: int) -> tuple[dict, dict]:
    """`args` run once through, and once stopped at the loop's `look`-th look at the stop flag and
    resumed from its checkpoint: (the resumed results, the clean ones), histories without seconds."""
    from rnnexp import run as run_module
    from rnnexp.errors import Interrupted

    clean = run_cfg(tmp_path, *args, name="clean")
    monkeypatch.setattr(run_module, "stop_on_signals", stop_at_check(look))
    with pytest.raises(Interrupted):
        run_cfg(tmp_path, *args, name="stopped")
    monkeypatch.undo()
    resumed = run_cfg(tmp_path, *args, f"train.resume={tmp_path / 'stopped'}", name="stopped")
    for result in (clean, resumed):
        result["history"] = [{k: v for k, v in h.items() if "second" not in k} for h in result["history"]]
    return resumed, clean


def stop_at_check(n: int):
    """Stands in for `stop_on_signals`: a SIGINT 'arrives' at the loop's n-th look at the stop flag."""
    from contextlib import contextmanager

    @contextmanager
    def stop_on_signals():
        looks = {"n": 0}

        def stop_requested() -> int:
            looks["n"] += 1
            return signal.SIGINT if looks["n"] >= n else 0

        yield stop_requested

    return stop_on_signals


def test_a_stop_mid_chunk_stream_resumes_exactly_with_the_carried_state(tmp_path, monkeypatch, run_cfg):
    from rnnexp import run as experiment
    from rnnexp.errors import Interrupted

    args = ["task=echo", "model=lstm", "model.hidden_size=8", "task.delay=4", "task.series_length=400",
            "task.val_length=200", "train.epochs=3"]
    clean = run_cfg(tmp_path, *args, name="clean")

    # The loop looks after each of epoch 1's 20 chunks, each of its 10 validation chunks and once
    # after the epoch: the 39th look is after epoch 2's 8th chunk, in the middle of its series.
    monkeypatch.setattr(experiment, "stop_on_signals", stop_at_check(39))
    with pytest.raises(Interrupted):
        run_cfg(tmp_path, *args, name="stopped")
    payload = torch.load(tmp_path / "stopped" / "checkpoint.pt", weights_only=True)
    assert (payload["loop"]["epoch"], payload["loop"]["batch"]) == (2, 8)
    assert isinstance(payload["loop"]["carried"], (tuple, list)) and len(payload["loop"]["carried"]) == 2
    monkeypatch.undo()
    resumed = run_cfg(tmp_path, *args, f"train.resume={tmp_path / 'stopped'}", name="stopped")
    strip = lambda r: [{k: v for k, v in h.items() if "second" not in k} for h in r["history"]]
    assert strip(resumed) == strip(clean)


def test_a_refused_resume_leaves_the_earlier_run_as_it_was(tmp_path, run_cfg):
    from rnnexp.errors import RunDirError

    run_cfg(tmp_path, "train.epochs=1", "train.target_accuracy=null", name="done")
    before = snapshot(tmp_path / "done")
    for extra in (["train.epochs=1"], ["train.epochs=2", "model.hidden_size=5"]):
        with pytest.raises(RunDirError):
            run_cfg(tmp_path, "train.target_accuracy=null", f"train.resume={tmp_path / 'done'}", *extra, name="done")
        assert snapshot(tmp_path / "done") == before


@pytest.mark.slow
def test_the_resume_command_printed_for_an_interrupted_sweep_works(tmp_path):
    import shlex

    proc = start(tmp_path, "-m", "model=rnn,gru", *LONG, "hydra.launcher.n_jobs=1")  # (the rnn job first)
    run_dir = wait_for_epochs(tmp_path, 1, proc, pattern="multirun/*/*/*/run.log")
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    command = err.strip().splitlines()[-1].split("resume the whole sweep with: ", 1)[1]
    assert "train.resume=auto" in command and "model=rnn,gru" in command
    resumed = subprocess.run(shlex.split(command), cwd=tmp_path, env=ENV, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    res = json.loads((run_dir / "results.json").read_text())
    assert res["status"] == "completed" and res["cell"] == "rnn" and res["epochs_run"] == 6
    assert "resuming at epoch" in (run_dir / "run.log").read_text()

@pytest.mark.slow
def test_a_preempted_submitit_job_checkpoints_is_requeued_and_resumes_by_itself(tmp_path, run_cfg):
    """SLURM pre-empts with USR2 (submitit's signal); submitit's local executor behaves the same way."""
    args = [*LONG, "train.epochs=20"]
    proc = start(tmp_path, "-m", "hydra/launcher=submitit_local", *args)
    job_dir = wait_for_epochs(tmp_path, 1, proc, pattern="multirun/*/*/*/run.log")
    found = subprocess.run(["pgrep", "-f", "submitit.core._submit"], capture_output=True, text=True).stdout.split()
    assert found, "the job runs in a submitit process"
    for pid in found:
        os.kill(int(pid), signal.SIGUSR2)  # what the cluster sends before pre-empting the job
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, err
    log = (job_dir / "run.log").read_text()
    assert "resuming at epoch" in log, "the requeued job found its checkpoint by itself"
    assert list(tmp_path.glob("outputs/multirun/*/*/.submitit/*/*_log.err"))
    submitit_log = "".join(p.read_text() for p in tmp_path.glob("outputs/multirun/*/*/.submitit/*/*_log.*"))
    assert "Requeued job" in submitit_log, "submitit's own requeue, not a home-made one"
    res = json.loads((job_dir / "results.json").read_text())
    assert res["status"] == "completed" and res["epochs_run"] == 20
    clean = run_cfg(tmp_path / "clean", *[a for a in args if a != "train.progress=lines"])
    strip = lambda r: [{k: v for k, v in h.items() if "second" not in k} for h in r["history"]]
    assert strip(res) == strip(clean), "and exactly as if it had never been stopped"


def children_of(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-eo", "pid=,ppid="], capture_output=True, text=True).stdout.split()
    return [int(child) for child, parent in zip(out[::2], out[1::2]) if int(parent) == pid]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] if Path(f"/proc/{pid}/stat").exists() else "X"
    return state != "Z"


@pytest.mark.slow
def test_a_run_killed_with_sigkill_leaves_no_process_behind(tmp_path):
    """Before: the drawing process (260-300 MB) ignored SIGTERM and outlived its killed run for ever."""
    # Pictures after epoch 1 only: when the run is killed (after epoch 3), its drawing process waits
    # idle. (With OpenMP's default thread count, as users run it: with OMP_NUM_THREADS=1 the idle
    # process happened to end by itself once its queue broke.)
    env = {k: v for k, v in ENV.items() if k != "OMP_NUM_THREADS"}
    proc = subprocess.Popen(["rnnexp", *LONG, "train.threads=1", "train.insight_every=1000", "train.epochs=30"],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for_epochs(tmp_path, 3, proc)
    deadline = time.time() + 30
    while not (helpers := children_of(proc.pid)) and time.time() < deadline:
        time.sleep(0.1)
    assert helpers, "the run draws its pictures in a process of its own"
    proc.kill()
    proc.wait()
    deadline = time.time() + 5
    while any(map(alive, helpers)) and time.time() < deadline:
        time.sleep(0.1)
    assert not any(map(alive, helpers)), [Path(f"/proc/{p}/cmdline").read_text() for p in helpers if alive(p)]


def test_the_drawing_process_ends_on_sigterm():
    from rnnexp.insight.drawing import drawing_pool, start_drawing_process, _POOL

    _POOL.clear()
    try:
        start_drawing_process()
        pool = drawing_pool()
        (worker,) = pool._processes.values()
        pool.submit(int).result(timeout=60)  # started and set up
        os.kill(worker.pid, signal.SIGTERM)
        # The executor's own thread may reap the dead worker first (then this join's waitpid finds
        # no child and leaves exitcode unset until that thread's join sets it): wait for either.
        deadline = time.monotonic() + 10
        worker.join(timeout=10)
        while worker.exitcode is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert worker.exitcode == -signal.SIGTERM
    finally:
        _POOL.pop("pool", None)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_resume_restores_the_random_state_of_dropout_and_dropconnect(tmp_path, monkeypatch, run_cfg, precision):
    """Dropout between layers, on the outputs and DropConnect on the recurrent weights draw from
    torch's RNG at every step: a resumed run equals an uninterrupted one only if the checkpoint
    restores that state (before: removing set_rng_states left every resume test green)."""
    from rnnexp import run as experiment
    from rnnexp.errors import Interrupted

    args = ["task=echo", "model=lstm", "model.hidden_size=8", "model.num_layers=2", "model.dropout=0.3",
            "model.weight_drop=0.3", "task.delay=2", "task.series_length=400", "task.val_length=200",
            "train.epochs=2", "train.insight_every=0", f"train.precision={precision}"]
    clean = run_cfg(tmp_path, *args, name="clean")
    monkeypatch.setattr(experiment, "stop_on_signals", stop_at_check(5))  # after epoch 1's 5th chunk
    with pytest.raises(Interrupted):
        run_cfg(tmp_path, *args, name="stopped")
    monkeypatch.undo()
    torch.manual_seed(12345)  # whatever state the resuming process happens to be in
    resumed = run_cfg(tmp_path, *args, f"train.resume={tmp_path / 'stopped'}", name="stopped")
    strip = lambda r: [{k: v for k, v in h.items() if "second" not in k} for h in r["history"]]
    assert strip(resumed) == strip(clean)
