"""A finite explosion is "diverged", not "completed" (issue 17, item 2): the reference loss, the
epoch and interval rules, exit codes, sweeps, and no false alarm on the presets."""

from __future__ import annotations

import json

import pytest

from rnnexp.engine.divergence import DivergenceRule, reference_loss
from rnnexp.engine.loop import LoopState
from rnnexp.errors import DivergedError
from tests.conftest import SHAKESPEARE

SMALL = ["task.train_size=320", "task.val_size=200", "task.test_size=200", "train.insight_every=0"]


def test_the_reference_is_the_larger_of_baseline_and_initial_loss():
    assert reference_loss({"loss": 0.173}, 2.30) == 2.30        # a fresh copy model starts far above its baseline
    assert reference_loss({"loss": 1.386}, 1.39) == 1.39
    assert reference_loss({"loss": 0.167}, 0.05) == 0.167       # never below what learning nothing scores
    assert reference_loss({}, 0.4) == 0.4


def test_the_epoch_rule_starts_at_epoch_2_and_the_interval_rule_at_once():
    rule, state = DivergenceRule(10, {"loss": 1.0}), LoopState()
    rule.first_step(state, 2.0)
    assert state.reference_loss == 2.0
    rule.epoch(state, 50.0)                    # epoch 1: 25x, still settling
    state.epoch = 2
    rule.epoch(state, 19.9)                    # 9.95x: fine
    with pytest.raises(DivergedError, match="epoch 2 .*10x"):
        rule.epoch(state, 20.1)
    rule.interval(state, 199.0, "epoch 1, steps 1-10")
    with pytest.raises(DivergedError, match="steps 1-10.*100x"):
        rule.interval(state, 201.0, "epoch 1, steps 1-10")
    assert state.divergence["max_interval_ratio"] == pytest.approx(100.5)
    off = DivergenceRule(None, {"loss": 1.0})
    off.interval(state, 1e12, "anywhere")      # null: only NaN and infinity
    with pytest.raises(DivergedError, match="became nan"):
        off.interval(state, float("nan"), "here")


def test_a_finite_explosion_ends_diverged_not_completed(run_cfg, tmp_path):
    """Before: loss 2,514 at the end, status completed, exit 0 (train.lr=50)."""
    with pytest.raises(DivergedError, match="reached .* its reference"):
        run_cfg(tmp_path, "model=rnn", "train.optimizer=sgd", "train.lr=50", "task.difficulty=normal", *SMALL)
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["status"] == "diverged" and results["divergence"]["reference_loss"] >= 1.386


def test_an_epoch_mean_far_above_the_reference_is_diverged(run_cfg, tmp_path, monkeypatch):
    """Each interval stays under 100x; the epoch's mean, 20x, is caught from epoch 2 on."""
    from rnnexp.tasks.qrsu import QRSUTask

    score = QRSUTask.score

    def twenty_times_the_loss_from_the_second_epoch(self, outputs, batch):
        result = score(self, outputs, batch)
        if outputs.requires_grad and getattr(self, "_epoch", 1) >= 2:
            result.sums["loss"] = result.sums["loss"] * 20
        return result

    train_batches = QRSUTask.train_batches

    def remember_epoch(self, epoch):
        self._epoch = epoch
        return train_batches(self, epoch)

    monkeypatch.setattr(QRSUTask, "score", twenty_times_the_loss_from_the_second_epoch)
    monkeypatch.setattr(QRSUTask, "train_batches", remember_epoch)
    with pytest.raises(DivergedError, match="epoch 2 \\(its mean\\)"):
        run_cfg(tmp_path, "train.epochs=3", "train.target_accuracy=null", *SMALL)
    monkeypatch.undo()
    monkeypatch.setattr(QRSUTask, "score", twenty_times_the_loss_from_the_second_epoch)
    monkeypatch.setattr(QRSUTask, "train_batches", remember_epoch)
    done = run_cfg(tmp_path, "train.epochs=3", "train.target_accuracy=null", "train.divergence_factor=null", *SMALL,
                   name="off")
    assert done["status"] == "completed" and done["divergence"]["max_epoch_ratio"] > 10
    assert "not called diverged" in done["warning"], "an exploded run that completed says so"


def test_a_diverging_job_is_marked_in_a_sweep_and_the_sweep_still_exits_0(tmp_path, monkeypatch, capsys):
    from tests.test_cli import run_main

    code, _, err = run_main(monkeypatch, capsys, tmp_path, "-m", "model=rnn", "train.optimizer=sgd",
                            "train.lr=0.01,1e30", "train.epochs=1", "task.train_size=320", "task.val_size=64",
                            "train.insight_every=0")
    assert code == 0, err
    sweep = tmp_path / "outputs" / "multirun"
    # (each job's directory names what differs: the learning rate)
    assert json.loads(next(sweep.rglob("lr=0.01/results.json")).read_text())["status"] == "completed"
    assert json.loads(next(sweep.rglob("lr=1e+30/results.json")).read_text())["status"] == "diverged"
    assert "diverged" in next(sweep.rglob("summary.md")).read_text()


def test_a_resumed_sweep_keeps_its_diverged_jobs_as_they_are(tmp_path, monkeypatch, capsys):
    from tests.test_cli import run_main

    sweep = tmp_path / "S"
    args = ["-m", "model=rnn", "train.optimizer=sgd", "train.lr=0.01,1e30", "train.epochs=1", "task.train_size=320",
            "task.val_size=64", "train.insight_every=0", f"hydra.sweep.dir={sweep}"]
    assert run_main(monkeypatch, capsys, tmp_path, *args)[0] == 0
    diverged = sweep / "lr=1e+30"
    results = (diverged / "results.json").read_text()
    code, _, err = run_main(monkeypatch, capsys, tmp_path, *args, "train.resume=auto")
    assert code == 0, err
    assert (diverged / "results.json").read_text() == results, "not trained again"
    assert (diverged / "run.log").read_text().count("run directory:") == 1


def test_the_reference_comes_from_the_first_batch_that_scores_something(run_cfg, tmp_path, monkeypatch):
    from rnnexp.tasks.qrsu import QRSUTask
    from rnnexp.tasks.scoring import nothing_scored

    score, calls = QRSUTask.score, {"n": 0}

    def nothing_then_three_times_the_loss(self, outputs, batch):
        result = score(self, outputs, batch)
        if outputs.requires_grad:
            calls["n"] += 1
            if calls["n"] == 1:
                return nothing_scored(outputs.device)
            if calls["n"] == 2:
                result.sums["loss"] = result.sums["loss"] * 3
        return result

    monkeypatch.setattr(QRSUTask, "score", nothing_then_three_times_the_loss)
    results = run_cfg(tmp_path, "train.epochs=1", "train.target_accuracy=null", *SMALL)
    assert results["divergence"]["reference_loss"] > 3.5  # 3 x ~1.39, not the baseline 1.386 (nor 0)


def test_a_failed_job_makes_the_sweep_exit_non_zero(tmp_path, monkeypatch, capsys):
    from tests.test_cli import run_main

    code, _, err = run_main(monkeypatch, capsys, tmp_path, "-m", "task=charlm", "task.corpus=/nonexistent,also_missing.txt",
                            "train.epochs=1")
    assert code == 1 and "did not complete" in err


PRESETS = {
    # The lecture's QRSU settings and the long-lags preset: the first epochs, where a rate too high shows.
    "lecture_qrsu": ["experiment=lecture_qrsu", "hydra.mode=RUN", "model=rnn", "task.difficulty=moderate",
                     "train.epochs=8"],
    "lecture_qrsu_lstm": ["experiment=lecture_qrsu", "hydra.mode=RUN", "model=lstm", "task.difficulty=easy",
                          "train.epochs=8"],
    "long_lags_rnn": ["experiment=long_lags", "model=rnn", "train.epochs=3"],
    "long_lags_lstm": ["experiment=long_lags", "model=lstm", "train.epochs=3"],
    "long_lags_gru": ["experiment=long_lags", "model=gru", "train.epochs=3"],
    "adding_long": ["experiment=adding_long", "model=rnn", "train.epochs=3", "task.train_size=1000"],
    "copy_long": ["experiment=copy_long", "model=lstm", "train.epochs=3", "task.train_size=1000"],
    "lecture_echo": ["experiment=lecture_echo", "hydra.mode=RUN", "model=gru", "task.delay=10",
                     "model.hidden_size=32", "task.series_length=2000"],
    "charlm_quick": ["experiment=charlm_quick", "train.epochs=8"],
    "charlm_cpu": ["experiment=charlm_cpu", "train.epochs=2", "train.batches_per_epoch=3", "train.batch_size=16"],
    "charlm_gpu": ["experiment=charlm_gpu", "train.epochs=2", "train.batches_per_epoch=2", "train.batch_size=8",
                   "task.chunk_length=32", "model.hidden_size=256"],
    "lecture_charlm": ["experiment=lecture_charlm", "train.epochs=3", "train.batches_per_epoch=4",
                       "train.batch_size=16", "model.hidden_size=128"],
}


@pytest.mark.slow
@pytest.mark.parametrize("preset", list(PRESETS))
def test_no_preset_trips_the_rule(run_cfg, tmp_path, preset):
    """The first epochs of every preset (cut down to fit a test), and of the lecture and long-lags
    runs: the rule stays quiet. (The full runs are in the README's tables; each reports its
    largest ratios in results.json.)"""
    corpus = [f"task.corpus={SHAKESPEARE}"] if "charlm" in preset and SHAKESPEARE.is_file() else \
        ["task.corpus=python_reference"] if "charlm" in preset else []
    results = run_cfg(tmp_path, *PRESETS[preset], *corpus, "train.insight_every=0", "train.time_limit_minutes=null")
    assert results["status"] == "completed"
    ratios = results["divergence"]
    assert (ratios["max_epoch_ratio"] or 0) < 10 and (ratios["max_interval_ratio"] or 0) < 100
