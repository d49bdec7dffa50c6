"""The echo task and the streaming mechanism: delayed targets, carried and detached state."""

import pytest
import torch
from torch import nn

from rnnexp.config import TrainConfig, typed
from rnnexp.models.recurrent_net import RecurrentModel
from rnnexp.tasks.streams import chunk_streams, split_into_streams
from rnnexp.tasks.echo import EchoConfig, EchoTask
from rnnexp.engine.callbacks import Callbacks
from rnnexp.engine.loop import Engine, Sums


def echo_task(compose_cfg, *overrides, batch_size=5):
    cfg = compose_cfg("task=echo", *overrides)
    task_cfg = typed(EchoConfig, cfg.task, "task")
    task_cfg.validate()
    return EchoTask(task_cfg, batch_size=batch_size, seed=0), cfg


def test_targets_are_inputs_delayed_per_stream_across_chunks(compose_cfg):
    task, _ = echo_task(compose_cfg, "task.delay=5", "task.chunk_length=8", "task.series_length=50")
    batches = list(task.train_batches(1))
    assert len(batches) == task.train_batch_count() == 7  # 6 chunks of 8, one of 2
    assert [b.reset for b in batches] == [True] + [False] * 6
    inputs = torch.cat([b.inputs[..., 0] for b in batches], 1).long()
    targets = torch.cat([b.targets for b in batches], 1)
    # A chunk scored at every step carries no mask (None: all scored).
    mask = torch.cat([torch.ones_like(b.targets, dtype=torch.bool) if b.mask is None else b.mask for b in batches], 1)
    assert batches[0].mask is not None and all(b.mask is None for b in batches[1:])
    assert inputs.shape == (5, 50)
    assert torch.equal(targets[:, 5:], inputs[:, :-5])
    assert not mask[:, :5].any() and mask[:, 5:].all()
    assert not torch.equal(inputs[0], inputs[1]), "streams are independent"


def test_carry_state_false_resets_every_chunk(compose_cfg):
    task, _ = echo_task(compose_cfg, "task.carry_state=false", "task.series_length=40")
    assert all(b.reset for b in task.train_batches(1))
    assert all(b.reset for b in task.eval_batches("val"))


class Recorder(nn.Module):
    """Wraps a model and records the state each chunk starts from and ends with."""

    def __init__(self, model):
        super().__init__()
        self.model, self.calls = model, []

    def forward(self, inputs, state=None):
        outputs, new_state = self.model(inputs, state)
        self.calls.append((state, new_state))
        return outputs, new_state


@pytest.mark.parametrize("cell", ["rnn", "lstm"])
def test_state_entering_a_chunk_is_the_detached_state_that_left_the_last(compose_cfg, cell, tmp_path):
    task, cfg = echo_task(compose_cfg, "task.series_length=60", "task.chunk_length=20")
    train = typed(TrainConfig, cfg.train, "train")
    train.epochs = 1
    model = Recorder(RecurrentModel(cell, 1, 2, 3))
    Engine(task, model, train, torch.device("cpu")).fit(Callbacks([]))
    calls = model.calls[:3]  # the 3 training chunks (validation follows)
    assert calls[0][0] is None
    for (_, left), (entered, _) in zip(calls, calls[1:]):
        pairs = zip(left, entered) if isinstance(left, tuple) else [(left, entered)]
        for out, into in pairs:
            assert out.grad_fn is not None, "the state leaving a chunk is part of its graph"
            assert into.grad_fn is None and not into.requires_grad, "the carried state has no history"
            assert torch.equal(out.detach(), into)


class ConstantModel(nn.Module):
    """Always predicts class 1; accuracy then equals the share of ones among scored targets."""

    def forward(self, inputs, state=None):
        logits = torch.zeros(*inputs.shape[:2], 2)
        logits[..., 1] = 1.0
        return logits, torch.zeros(1, inputs.shape[0], 1)


@pytest.mark.parametrize("batch_size,chunk", [(3, 7), (1, 20), (7, 9)])
def test_accuracy_is_the_fraction_of_correct_scored_bits_whatever_the_batch_size(compose_cfg, batch_size, chunk):
    task, cfg = echo_task(compose_cfg, "task.delay=4", f"task.chunk_length={chunk}", "task.val_length=101",
                          "task.eval_streams=6", batch_size=batch_size)
    _, targets, mask = task.heldout["val"]
    expected = targets[mask].float().mean().item()
    engine = Engine(task, RecurrentModel("gru", 1, 2, 3), typed(TrainConfig, cfg.train, "train"), torch.device("cpu"))
    assert engine.evaluate("val", ConstantModel())["val/accuracy"] == pytest.approx(expected)
    sums = Sums(torch.device("cpu"))
    for batch in task.eval_batches("val"):
        sums.add(task.score(ConstantModel()(batch.inputs)[0], batch).sums)
    assert sums.to_host()["count"] == 6 * (101 - 4), "validation never depends on train.batch_size"
    assert not torch.equal(task.heldout["val"][0], task.heldout["test"][0]), "test is its own data"


def test_split_into_streams_keeps_text_consecutive():
    seq = torch.arange(103)
    streams = split_into_streams(seq, 4)
    assert streams.shape == (4, 25)
    assert torch.equal(streams.flatten(), seq[:100])
    chunks = list(chunk_streams(streams, streams, 10))
    assert torch.equal(torch.cat([c.inputs for c in chunks], 1), streams)


def test_delay_at_or_beyond_the_chunk_warns_and_still_runs(compose_cfg, caplog, run_cfg, tmp_path):
    with caplog.at_level("WARNING"):
        echo_task(compose_cfg, "task.delay=20", "task.chunk_length=20")
    assert "cannot be learned" in caplog.text
    # The first chunk of each series then scores nothing: no loss there, the state still carries.
    res = run_cfg(tmp_path, "task=echo", "task.delay=20", "task.chunk_length=20", "task.series_length=200",
                  "task.val_length=200", "train.epochs=2")
    assert res["status"] == "completed"
    assert 0.3 < res["final"]["val/accuracy"] < 0.7, "no gradient path spans the delay: chance level"


def test_carried_state_learns_delay_5_in_chunks_of_8_and_reset_state_cannot(run_cfg, tmp_path):
    common = ["task=echo", "model=gru", "model.hidden_size=16", "task.delay=5", "task.chunk_length=8",
              "task.series_length=2000", "task.val_length=400", "train.optimizer=adam", "train.lr=1e-2",
              "train.batch_size=16", "train.epochs=6"]
    carried = run_cfg(tmp_path, *common, name="carried")
    reset = run_cfg(tmp_path, *common, "task.carry_state=false", name="reset")
    assert carried["best"]["val/accuracy"] >= 0.97
    # 5 of every 8 targets have their source in the previous chunk: at best 3/8 + 5/8 * 1/2.
    assert reset["best"]["val/accuracy"] <= 0.72
