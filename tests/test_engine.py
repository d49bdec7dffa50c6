"""The engine: the five steps with the task's own scoring, callbacks from outside, validation that
selects and test that reports, checkpoints by time, stops honoured anywhere, resume from the run's
own config."""

import json
import signal

import pytest
import torch

from rnnexp.config import load_run_config
from rnnexp.engine import checkpoint as ckpt
from rnnexp.engine.callbacks import Callback, Callbacks
from rnnexp.engine.loop import Engine
from rnnexp.errors import Interrupted
from rnnexp.models.build import build_model
from rnnexp.tasks import build_task
from tests.test_cli import scalars
from tests.test_reliability import stop_at_check

SHORT = ["train.epochs=3", "train.target_accuracy=null", "task.train_size=320", "task.val_size=200",
         "task.test_size=300"]


def engine_for(compose_cfg, *overrides) -> Engine:
    run = load_run_config(compose_cfg(*overrides))
    torch.manual_seed(0)
    task = build_task(run.task, run.train.batch_size, run.train.seed)
    return Engine(task, build_model(run.model, task), run.train, torch.device("cpu"))


class Recorder(Callback):
    def __init__(self):
        self.calls = []

    def on_fit_start(self, engine):
        self.calls.append(("fit_start", engine.state.epoch))

    def on_log(self, engine, metrics):
        self.calls.append(("log", engine.state.global_step, sorted(metrics)))

    def on_epoch_end(self, engine, metrics):
        self.calls.append(("epoch_end", int(metrics["epoch"])))

    def on_fit_end(self, engine):
        self.calls.append(("fit_end", engine.state.epoch))


def test_callbacks_see_every_interval_and_epoch_in_order(compose_cfg):
    engine = engine_for(compose_cfg, *SHORT, "train.log_every_steps=4")
    recorder = Recorder()
    engine.fit(Callbacks([recorder]))
    kinds = [c[0] for c in recorder.calls]
    assert kinds[0] == "fit_start" and kinds[-1] == "fit_end"
    assert [c[1] for c in recorder.calls if c[0] == "epoch_end"] == [1, 2, 3]
    assert [c[1] for c in recorder.calls if c[0] == "log"] == [4, 8, 12, 16, 20, 24, 28]  # 10 batches an epoch
    assert recorder.calls[1][2] == ["train/step_accuracy", "train/step_loss"]


def test_grad_clip_bounds_the_update_and_each_optimizer_is_the_one_asked_for(compose_cfg):
    for name, kind in (("adam", torch.optim.Adam), ("sgd", torch.optim.SGD), ("rmsprop", torch.optim.RMSprop)):
        optimizer = engine_for(compose_cfg, f"train.optimizer={name}").optimizer
        assert type(optimizer).__mro__[2] is kind, "torch's own class (without its torch._dynamo wrappers)"
    clip = 1e-3
    engine = engine_for(compose_cfg, "train.optimizer=sgd", "train.lr=1.0", f"train.grad_clip={clip}",
                        "train.batches_per_epoch=1", "train.epochs=1", "task.val_size=10", "task.test_size=10")
    before = torch.cat([p.detach().flatten().clone() for p in engine.model.parameters()])
    engine.fit(Callbacks([]))
    after = torch.cat([p.detach().flatten() for p in engine.model.parameters()])
    step = float((after - before).norm())
    assert step == pytest.approx(clip, rel=1e-3), "plain SGD with lr 1 moves by the clipped gradient norm"
    assert engine.state.history[0]["train/grad_norm"] > 10 * clip, "the logged norm is the one before clipping"


def test_the_best_model_is_chosen_by_the_tasks_objective_and_tested_once(run_cfg, tmp_path):
    res = run_cfg(tmp_path, *SHORT, "train.epochs=6", "model.hidden_size=6")
    accs = [h["val/accuracy"] for h in res["history"]]
    best = max(range(6), key=lambda i: (accs[i], -res["history"][i]["val/loss"]))
    assert res["best"]["epoch"] == best + 1 and res["objective"]["value"] == accs[best]
    payload = torch.load(tmp_path / "run" / "best.pt", weights_only=True)
    assert payload["epoch"] == best + 1
    assert set(res["test"]) >= {"test/loss", "test/accuracy"} and 0 < res["test"]["test/accuracy"] <= 1
    # the test metrics are those of the best model, not of the last epoch's
    run = load_run_config(__import__("omegaconf").OmegaConf.create(payload["config"]))
    task = build_task(run.task, run.train.batch_size, run.train.seed)
    model = build_model(run.model, task)
    model.load_state_dict(payload["model"])
    engine = Engine(task, model, run.train, torch.device("cpu"))
    assert engine.evaluate("test") == pytest.approx(res["test"])
    assert engine.evaluate("val")["val/accuracy"] == res["best"]["val/accuracy"]


def test_learning_rate_test_metrics_and_hparams_reach_tensorboard(run_cfg, tmp_path):
    run_cfg(tmp_path, *SHORT, "train.lr_schedule=plateau", "train.lr_patience=0", "train.lr=0.05", "train.epochs=4")
    run_dir = tmp_path / "run"
    lrs = scalars(run_dir, "train/lr")
    assert [s for s, _ in lrs] == [1, 2, 3, 4] and lrs[0][1] == pytest.approx(0.05)
    assert len(scalars(run_dir, "test/accuracy")) == 1
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir))
    acc.Reload()
    assert not [t for t in acc.Tags()["scalars"] if t.startswith("hparam")], "no hparam/* charts"
    assert "_hparams_/session_start_info" in acc.summary_metadata, "the HParams tab has the run"


def test_checkpoints_are_written_by_time_not_every_epoch(run_cfg, tmp_path, monkeypatch):
    saved = []
    real = ckpt.save_checkpoint
    monkeypatch.setattr(ckpt, "save_checkpoint", lambda run_dir, engine, config, size, packed_with=None: (saved.append(engine.state.epoch),
                                                                                     real(run_dir, engine, config, size)))
    run_cfg(tmp_path, *SHORT, name="default")  # checkpoint_minutes=1: a short run saves once, at its end
    assert saved == [4]
    saved.clear()
    run_cfg(tmp_path, *SHORT, "train.checkpoint_minutes=0", name="every")
    assert saved == [2, 3, 4]


# Looks at the stop flag in epoch 1: 10 after training steps (320 / 32), 3 in validation (600 / 250
# per batch), 1 between epochs.
THREE_VAL_BATCHES = [*SHORT, "task.val_size=600"]


@pytest.mark.parametrize("look", [11, 13])
def test_a_stop_during_validation_is_honoured_and_resumes_exactly(run_cfg, tmp_path, monkeypatch, look):
    from rnnexp import run as run_module

    clean = run_cfg(tmp_path, *THREE_VAL_BATCHES, name="clean")
    monkeypatch.setattr(run_module, "stop_on_signals", stop_at_check(look))
    with pytest.raises(Interrupted) as info:
        run_cfg(tmp_path, *THREE_VAL_BATCHES, name="stopped")
    assert info.value.signum == signal.SIGINT
    payload = torch.load(tmp_path / "stopped" / "checkpoint.pt", weights_only=True)
    assert (payload["loop"]["epoch"], payload["loop"]["batch"]) == (1, 10), "trained, not yet validated"
    assert payload["loop"]["history"] == []
    assert json.loads((tmp_path / "stopped" / "results.json").read_text())["status"] == "interrupted"
    monkeypatch.undo()
    resumed = run_cfg(tmp_path, *THREE_VAL_BATCHES, f"train.resume={tmp_path / 'stopped'}", name="stopped")
    strip = lambda r: [{k: v for k, v in h.items() if "second" not in k} for h in r["history"]]
    assert strip(resumed) == strip(clean) and resumed["test"] == clean["test"]


def test_a_stop_during_start_up_is_honoured_after_the_first_step(run_cfg, tmp_path):
    """The CLI records signals before a job imports torch: a Ctrl-C then is the loop's stop, with a
    checkpoint and results.json, not a KeyboardInterrupt that leaves the job without either."""
    import os

    from rnnexp.engine.signals import stop_on_signals

    with stop_on_signals():
        os.kill(os.getpid(), signal.SIGINT)  # arrives while the job is still starting
        with pytest.raises(Interrupted):
            run_cfg(tmp_path, *SHORT, name="stopped")
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler, "the handler is put back"
    payload = torch.load(tmp_path / "stopped" / "checkpoint.pt", weights_only=True)
    assert (payload["loop"]["epoch"], payload["loop"]["batch"]) == (1, 1)
    assert json.loads((tmp_path / "stopped" / "results.json").read_text())["status"] == "interrupted"


def test_a_stop_between_epochs_is_honoured(run_cfg, tmp_path, monkeypatch):
    from rnnexp import run as run_module

    monkeypatch.setattr(run_module, "stop_on_signals", stop_at_check(14))
    with pytest.raises(Interrupted):
        run_cfg(tmp_path, *THREE_VAL_BATCHES, name="stopped")
    payload = torch.load(tmp_path / "stopped" / "checkpoint.pt", weights_only=True)
    assert (payload["loop"]["epoch"], payload["loop"]["batch"]) == (2, 0)
    assert len(payload["loop"]["history"]) == 1


def test_resume_uses_the_runs_own_config_not_todays_yaml(run_cfg, tmp_path, compose_cfg):
    from rnnexp.run import run_experiment

    clean = run_cfg(tmp_path, *SHORT, name="clean")
    run_cfg(tmp_path, *SHORT, "train.epochs=1", name="edited")
    # Today's yaml now says something else (lr, width, data sizes); the command line only resumes.
    today = compose_cfg("train.progress=lines", "train.threads=1", *SHORT, "train.lr=0.5", "model.hidden_size=9",
                        "task.train_size=100", f"train.resume={tmp_path / 'edited'}")
    # model=lstm again on the command line names the same cell: not a change, whatever lstm.yaml now says
    run_experiment(today, tmp_path / "edited", overrides=["model=lstm", f"train.resume={tmp_path / 'edited'}",
                                                          "train.epochs=3"])
    resumed = json.loads((tmp_path / "edited" / "results.json").read_text())
    strip = lambda r: [{k: v for k, v in h.items() if "second" not in k} for h in r["history"]]
    assert strip(resumed) == strip(clean) and resumed["hidden_size"] == 4


def test_best_model_and_task_state_travel_in_the_checkpoint(run_cfg, tmp_path):
    run_cfg(tmp_path, *SHORT, "train.checkpoint_minutes=0")
    payload = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    assert payload["best_model"] is not None and payload["config"]["train"]["epochs"] == 3
    assert "task" in payload and payload["loop"]["best_epoch"] is not None


def test_a_run_that_reached_its_target_can_be_continued_past_it(run_cfg, tmp_path):
    from rnnexp.errors import RunDirError

    done = run_cfg(tmp_path, "model=lstm", "train.seed=0", "train.insight_every=0")
    reached = done["target_epoch"]
    assert reached is not None
    with pytest.raises(RunDirError, match="train.target_accuracy=null"):
        run_cfg(tmp_path, f"train.resume={tmp_path / 'run'}", "train.epochs=100")
    more = run_cfg(tmp_path, f"train.resume={tmp_path / 'run'}", "train.target_accuracy=null",
                   f"train.epochs={reached + 2}")
    assert more["epochs_run"] == reached + 2 and more["status"] == "completed"
