"""What a seconds-scale run waits for (issue 20; timings in scripts/bench_time_to_answer.py, never
here): no torch._dynamo behind the optimizers, yet torch's own update, state and checkpoint format;
a drawing process that never imports torch; the final pictures after the result line, and no
process of the command left behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from concurrent.futures import Future

import pytest
import torch
from torch import nn

from tests.test_cli import ENV

TORCH_CLASSES = {"rmsprop": (torch.optim.RMSprop, {"momentum": 0.9, "foreach": True}),
                 "adam": (torch.optim.Adam, {"fused": True}),
                 "sgd": (torch.optim.SGD, {"momentum": 0.9, "foreach": True})}


@pytest.mark.parametrize("name", sorted(TORCH_CLASSES))
def test_the_optimizers_are_torchs_update_state_and_checkpoint_format(name):
    from rnnexp.engine.optimizers import make_optimizer

    torch_class, options = TORCH_CLASSES[name]
    torch.manual_seed(0)
    ours, theirs = nn.LSTM(3, 4), nn.LSTM(3, 4)
    theirs.load_state_dict(ours.state_dict())
    mine = make_optimizer(name, 1e-2, options.get("momentum", 0.0), 1e-4, ours.parameters())
    reference = torch_class(theirs.parameters(), lr=1e-2, weight_decay=1e-4, **options)
    for _ in range(4):
        x = torch.randn(5, 2, 3)
        for model, optimizer in ((ours, mine), (theirs, reference)):
            optimizer.zero_grad()
            model(x)[0].pow(2).sum().backward()
            optimizer.step()
    assert all(torch.equal(p, q) for p, q in zip(ours.parameters(), theirs.parameters())), "the same update, bit for bit"
    saved, expected = mine.state_dict(), reference.state_dict()
    assert saved["param_groups"] == expected["param_groups"]
    assert all(torch.equal(saved["state"][i][k], expected["state"][i][k]) for i in expected["state"]
               for k in expected["state"][i])
    # A checkpoint of either loads into the other (runs saved before this change resume).
    torch_class(theirs.parameters(), lr=1.0).load_state_dict(saved)
    make_optimizer(name, 1.0, 0.0, 0.0, ours.parameters()).load_state_dict(expected)


def test_a_run_with_a_schedule_and_a_resume_never_imports_torch_dynamo(tmp_path):
    """torch's optimizer classes import torch._dynamo (~1 s) on their first method call."""
    script = f"""
import sys
sys.path.insert(0, {str(os.getcwd())!r})
from tests.conftest import run_in_process
from pathlib import Path
run_in_process(Path({str(tmp_path)!r}), "train.epochs=2", "train.lr_schedule=plateau", "train.optimizer=adam",
               "task.train_size=64", "task.val_size=100", "task.test_size=100", "train.insight_every=0")
run_in_process(Path({str(tmp_path)!r}), "train.resume={tmp_path / 'run'}", "train.epochs=3", name="run")
print("dynamo" if "torch._dynamo" in sys.modules else "no dynamo")
"""
    proc = subprocess.run([sys.executable, "-c", script], env=ENV, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines()[-1] == "no dynamo"
    assert json.loads((tmp_path / "run" / "results.json").read_text())["epochs_run"] == 3


def test_the_drawing_process_draws_without_torch(tmp_path):
    from rnnexp.insight.drawing import _POOL, drawing_pool, start_drawing_process

    _POOL.pop("pool", None)
    try:
        start_drawing_process()
        loaded = drawing_pool().submit(eval, "sorted({m.split('.')[0] for m in __import__('sys').modules})").result(60)
    finally:
        if (pool := _POOL.pop("pool", None)) is not None:
            pool.shutdown()
    assert "matplotlib" in loaded, "ready to draw"
    assert "torch" not in loaded


class LaterFuture(Future):
    """A drawing that has not begun until someone waits for it (a busy drawing process)."""

    def __init__(self, work):
        super().__init__()
        self.work = work

    def result(self, timeout=None):
        if not self.done():
            self.set_result(self.work())
        return super().result(timeout)


class BusyPool:
    def submit(self, function, *args):
        return LaterFuture(lambda: function(*args))


def test_the_last_epochs_tensorboard_pictures_and_the_files_are_drawn_once(run_cfg, tmp_path, monkeypatch):
    from rnnexp.insight import callback, drawing
    from tests.test_inspect import images

    monkeypatch.setattr("rnnexp.run.available_cores", lambda: 2)  # drawn aside ...
    monkeypatch.setattr("rnnexp.run.start_drawing_process", lambda: None)
    monkeypatch.setattr(callback, "drawing_pool", BusyPool)  # ... by a process still busy at the end
    calls = []
    real = drawing.draw
    monkeypatch.setattr(drawing, "draw", lambda values, title=None, keep=False: calls.append(title) or real(values, title, keep))
    run_cfg(tmp_path, "train.epochs=2", "train.target_accuracy=null", "train.insight_every=1", "task.train_size=64")
    assert [t.rsplit(", ", 1)[-1] for t in calls] == ["epoch 1", "after epoch 2"]
    assert all((tmp_path / "run" / name).read_bytes()[:4] == b"\x89PNG" for name in drawing.FILES.values())
    assert images(tmp_path / "run", "insight/states") == [1, 2], "both epochs' pictures are in TensorBoard"


def test_a_sweeps_jobs_leave_their_last_pictures_to_draw_while_the_next_job_trains(tmp_path, monkeypatch, capsys):
    from rnnexp import run as experiment
    from rnnexp.insight import callback
    from tests.test_cli import run_main
    from tests.test_inspect import images

    monkeypatch.setattr("rnnexp.run.available_cores", lambda: 2)
    monkeypatch.setattr("rnnexp.run.start_drawing_process", lambda: None)
    monkeypatch.setattr("rnnexp.cli.start_drawing", lambda run: None)
    monkeypatch.setattr(callback, "drawing_pool", BusyPool)  # nothing is drawn until waited for
    events = []
    real_run, real_finish = experiment.run_experiment, callback.InsightCallback.finish
    monkeypatch.setattr(experiment, "run_experiment", lambda *a, **k: events.append("job") or real_run(*a, **k))
    monkeypatch.setattr(callback.InsightCallback, "finish", lambda self: events.append("pictures") or real_finish(self))
    code, _, err = run_main(monkeypatch, capsys, tmp_path, "-m", "train.seed=1,2", "train.epochs=1", "train.pack_seeds=off",
                            "task.train_size=64", "task.val_size=100", "task.test_size=100",
                            "train.target_accuracy=null", f"hydra.sweep.dir={tmp_path / 'S'}")
    assert code == 0, err
    assert events == ["job", "job", "pictures", "pictures"], "the first job's pictures were left to the sweep's end"
    for job in ("seed=1", "seed=2"):
        assert (tmp_path / "S" / job / "states.png").is_file()
        assert images(tmp_path / "S" / job, "insight/states") == [1]


@pytest.mark.slow
def test_the_command_ends_with_its_pictures_and_leaves_no_process_behind(tmp_path):
    proc = subprocess.Popen(["rnnexp", "train.epochs=3", "train.target_accuracy=null", "train.insight_every=1",
                             "task.train_size=64"], cwd=tmp_path, env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    (run,) = (tmp_path / "outputs" / "runs").glob("*/*")
    assert {"states.png", "gates.png", "gradients_through_time.png"} <= {p.name for p in run.iterdir()}
    time.sleep(0.2)
    left = subprocess.run(["pgrep", "-s", str(proc.pid)], capture_output=True, text=True).stdout.split()
    assert not left, "the drawing process ended with the command"
    assert "result: " in out + err


def test_a_sweeps_jobs_start_from_the_configs_the_sweeper_composed_to_check_them(tmp_path, monkeypatch, capsys):
    """Hydra's sweeper composes every job's config before the launch (~85 ms each); the launcher keeps
    those and does not compose them again."""
    from hydra._internal.config_loader_impl import ConfigLoaderImpl

    from tests.test_cli import run_main

    composed, real = [], ConfigLoaderImpl.load_sweep_config
    monkeypatch.setattr(ConfigLoaderImpl, "load_sweep_config",
                        lambda self, master_config, sweep_overrides: composed.append(tuple(sweep_overrides))
                        or real(self, master_config, sweep_overrides))
    code, _, err = run_main(monkeypatch, capsys, tmp_path, "-m", "train.seed=1,2", "model=rnn,lstm", "train.epochs=1",
                            "train.pack_seeds=off", "task.train_size=64", "task.val_size=100", "task.test_size=100",
                            "train.insight_every=0", "hydra.launcher.n_jobs=1", f"hydra.sweep.dir={tmp_path / 'S'}")
    assert code == 0, err
    jobs = [j for j in composed if any(o.startswith("train.seed=") for o in j)]
    assert len(jobs) == 4 and len(set(jobs)) == 4, jobs
    assert len(list((tmp_path / "S").glob("*/results.json"))) == 4
