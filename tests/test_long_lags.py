"""Long time lags: the initialisations reach the model through the config, the curriculum over
difficulty, and the recommended preset."""

import logging

import pytest
import torch

from rnnexp.config import load_run_config
from rnnexp.errors import ConfigError
from rnnexp.models.build import build_model
from rnnexp.tasks import build_task
from tests.test_reliability import stop_at_check


def built(compose_cfg, *overrides):
    run = load_run_config(compose_cfg(*overrides))
    task = build_task(run.task, run.train.batch_size, run.train.seed)
    return task, build_model(run.model, task)


def test_model_init_reaches_every_layer_through_the_config(compose_cfg):
    _, model = built(compose_cfg, "model=gru", "model.num_layers=2", "model.hidden_size=5",
                     "model.init=forget_bias", "model.forget_bias=3")
    for layer in (0, 1):
        assert torch.equal(getattr(model.rnn, f"bias_ih_l{layer}")[5:10], torch.full((5,), 3.0))  # z (update)
        assert torch.equal(getattr(model.rnn, f"bias_hh_l{layer}")[5:10], torch.zeros(5))


def test_chrono_takes_its_time_range_from_the_task_unless_given(compose_cfg):
    task, model = built(compose_cfg, "model=lstm", "model.hidden_size=64", "model.init=chrono",
                        "task.difficulty=hard")
    assert task.max_lag() == 110 - 10
    forget = model.rnn.bias_ih_l0[64:128]
    assert forget.min() >= 0 and forget.max() <= torch.log(torch.tensor(99.0)) + 1e-6
    assert forget.max() > torch.log(torch.tensor(30.0)), "draws spread over the task's whole range"
    _, small = built(compose_cfg, "model=lstm", "model.hidden_size=64", "model.init=chrono", "model.chrono_tmax=3")
    assert small.rnn.bias_ih_l0[64:128].max() <= torch.log(torch.tensor(2.0)) + 1e-6


def test_identity_is_the_irnn(compose_cfg):
    _, model = built(compose_cfg, "model=rnn", "model.hidden_size=6", "model.init=identity")
    assert torch.equal(model.rnn.weight_hh_l0, torch.eye(6)) and not model.rnn.bias_hh_l0.any()


CURRICULUM = ["task=qrsu", "task.difficulty=normal", "train.curriculum=[easy]", "train.curriculum_threshold=0.6",
              "model.hidden_size=8", "train.optimizer=adam", "train.lr=0.01", "train.epochs=4",
              "train.target_accuracy=null", "task.train_size=640", "task.val_size=300", "task.test_size=300",
              "train.insight_every=0"]


def test_the_curriculum_advances_logs_its_stage_and_validates_on_the_target(run_cfg, tmp_path, caplog):
    from tests.test_cli import scalars

    with caplog.at_level(logging.INFO):
        res = run_cfg(tmp_path, *CURRICULUM)
    stages = [h["train/stage"] for h in res["history"]]
    assert stages[0] == 0 and stages[-1] == 1 and stages == sorted(stages), stages
    first_target = stages.index(1)
    assert all("stage/accuracy" in h for h in res["history"][:first_target])
    assert res["history"][first_target - 1]["stage/accuracy"] >= 0.6, "it moved on at the threshold"
    assert [v for _, v in scalars(tmp_path / "run", "train/stage")] == stages
    assert res["curriculum"] == {"stages": ["easy"], "strategy": "naive", "threshold": 0.6, "passed_at_epoch": [first_target],
                                 "target_from_epoch": first_target + 1, "epochs_on_target": len(stages) - first_target}
    said = [r.getMessage() for r in caplog.records if r.name == "rnnexp.start.curriculum"]
    assert said == [f"curriculum: stage 0 (easy) passed at epoch {first_target} (its held-out accuracy "
                    f"{res['history'][first_target - 1]['stage/accuracy']:.4f} >= 0.6); next: the target (task.difficulty=normal)"]


def test_a_curriculum_that_never_reaches_the_target_says_so():
    """Its numbers are the target's (validation and test), but it never trained on it: the result says so."""
    from rnnexp.engine.curriculum import curriculum_report, curriculum_words

    history = [{"epoch": e, "train/stage": 0, "stage/accuracy": 0.4} for e in (1, 2, 3)]
    report = curriculum_report(["easy", "normal"], "naive", 0.95, history)
    assert report["passed_at_epoch"] == [None, None] and report["target_from_epoch"] is None
    assert curriculum_words(report) == "naive: NEVER ON THE TARGET (last trained on stage easy)"
    history += [{"epoch": 4, "train/stage": 0, "stage/accuracy": 0.97}, {"epoch": 5, "train/stage": 1, "stage/accuracy": 0.5}]
    assert curriculum_words(curriculum_report(["easy", "normal"], "combined", 0.95, history)) == \
        "combined: passed easy at epoch 4; NEVER ON THE TARGET (last trained on stage normal)"
    assert curriculum_report(["easy"], "none", 0.95, history) is None
    assert "mixed" in curriculum_report(["easy"], "mix", 0.95, [])


def test_validation_and_test_stay_on_the_target_while_training_data_follows_the_stage(compose_cfg):
    task, _ = built(compose_cfg, "task=qrsu", "task.difficulty=hard")
    val_steps = next(task.eval_batches("val")).inputs.shape[1]
    task.set_stage("easy")
    assert next(iter(task.train_batches(1))).inputs.shape[1] <= 8
    assert next(task.eval_batches("val")).inputs.shape[1] == val_steps >= 100
    assert next(task.eval_batches("stage")).inputs.shape[1] <= 8


def test_a_resumed_curriculum_continues_at_its_stage(run_cfg, tmp_path, monkeypatch):
    from rnnexp import run as run_module
    from rnnexp.errors import Interrupted

    clean = run_cfg(tmp_path, *CURRICULUM, name="clean")
    switch = [h["train/stage"] for h in clean["history"]].index(1)  # the epoch trained on the target first
    # 20 training looks + 2 validation looks (300 / 250 per batch) + 1 between epochs, per epoch:
    monkeypatch.setattr(run_module, "stop_on_signals", stop_at_check(23 * switch + 5))
    with pytest.raises(Interrupted):
        run_cfg(tmp_path, *CURRICULUM, name="stopped")
    payload = torch.load(tmp_path / "stopped" / "checkpoint.pt", weights_only=True)
    assert payload["task"]["stage"] is None, "the checkpoint holds the stage: past the curriculum"
    monkeypatch.undo()
    resumed = run_cfg(tmp_path, *CURRICULUM, f"train.resume={tmp_path / 'stopped'}", name="stopped")
    strip = lambda r: [{k: v for k, v in h.items() if "second" not in k} for h in r["history"]]
    assert strip(resumed) == strip(clean)
    assert resumed["curriculum"] == clean["curriculum"] and clean["curriculum"]["target_from_epoch"] == switch + 1


@pytest.mark.parametrize("bad,expected", [
    (["train.curriculum=[easy,impossible]"], "train.curriculum[1]='impossible' is not a valid task.difficulty"),
    (["task=echo", "train.curriculum=[3]"], "train.curriculum is not available for task=echo"),
])
def test_a_wrong_curriculum_is_one_line(compose_cfg, bad, expected):
    with pytest.raises(ConfigError, match=expected.replace("[", r"\[").replace("]", r"\]")):
        load_run_config(compose_cfg(*bad))


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_the_long_lags_preset_reaches_90_percent_on_qrsu_hard_quickly(run_cfg, tmp_path, cell):
    res = run_cfg(tmp_path, "experiment=long_lags", f"model={cell}", "train.seed=1", "train.epochs=30",
                  "train.target_accuracy=0.9", "train.insight_every=0")
    assert res["target_epoch"] is not None and res["best"]["val/accuracy"] >= 0.9, res["best"]
