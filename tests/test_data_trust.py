"""Data a researcher can trust: hash splits (no test sequence is trained on), padding that never
changes a sequence's score, and random streams that never share a key (issue 17, items 6-8)."""

from __future__ import annotations

import itertools
from dataclasses import replace

import pytest
import torch

from rnnexp.config import typed
from rnnexp.models.recurrent_net import RecurrentModel
from rnnexp.tasks.copy_memory import CopyConfig, CopyTask
from rnnexp.tasks.echo import EchoConfig, EchoTask
from rnnexp.tasks.qrsu import BEGIN, END, PAD, QRSUConfig, QRSUTask, batches_of, draw, space_size
from rnnexp.tasks.splits import PARTS, part_of, stream

torch.set_num_threads(1)


def qrsu(compose_cfg, *overrides) -> QRSUConfig:
    cfg = typed(QRSUConfig, compose_cfg("task=qrsu", *overrides).task, "task")
    cfg.validate()
    return cfg


def symbols_of(batch) -> torch.Tensor:
    """A right-padded QRSU batch back to symbol ids, PAD after each end."""
    ids = batch.inputs.argmax(-1)
    return torch.where(batch.inputs.sum(-1) > 0, ids, PAD)


def easy_space() -> torch.Tensor:
    """Every one of QRSU easy's distinct sequences (lengths 7-8, t1 1-2, t2 4-5), PAD-padded to 8."""
    rows = []
    for length, t1, t2, first, second in itertools.product((7, 8), (1, 2), (4, 5), (0, 1), (0, 1)):
        for distractors in itertools.product(range(2, 6), repeat=length - 4):
            seq, rest = [BEGIN] + [None] * (length - 2) + [END], iter(distractors)
            seq[t1], seq[t2] = first, second
            rows.append([s if s is not None else next(rest) for s in seq] + [PAD] * (8 - length))
    return torch.tensor(rows)


# -- item 6: hash splits ------------------------------------------------------------------------
def test_qrsu_easy_trains_on_about_3600_of_its_5120_sequences(compose_cfg):
    space = easy_space()
    assert len(space) == len({tuple(r) for r in space.tolist()}) == space_size(qrsu(compose_cfg)) == 5120
    counts = torch.bincount(part_of(space), minlength=3).tolist()
    assert counts == [3572, 766, 782]  # train, val, test: 70 / 15 / 15 %
    # Every class is in every part, in about the same share (the hash does not follow the label).
    order = space[(space == 0) | (space == 1)].view(-1, 2)  # X = 0, Y = 1, in the order read
    labels, parts = 2 * order[:, 0] + order[:, 1], part_of(space)
    for part in range(3):
        shares = torch.bincount(labels[parts == part], minlength=4) / (parts == part).sum()
        assert ((shares - 0.25).abs() < 0.04).all()


@pytest.mark.parametrize("difficulty", ["easy", "moderate"])
def test_training_never_draws_a_held_out_qrsu_sequence(compose_cfg, difficulty):
    cfg = qrsu(compose_cfg, f"task.difficulty={difficulty}")
    task = QRSUTask(cfg, 32, seed=5)
    train = torch.cat([torch.nn.functional.pad(symbols_of(b), (0, 200), value=PAD)[:, :cfg.ranges()[0][1]]
                       for epoch in range(1, 14) for b in task.train_batches(epoch)])
    assert (part_of(train) == PARTS.index("train")).all()
    for split in ("val", "test"):
        assert (part_of(task.heldout[split][0]) == PARTS.index(split)).all()
    seen = {tuple(r) for r in train.tolist()}
    for split in ("val", "test"):
        assert not seen & {tuple(r) for r in task.heldout[split][0].tolist()}
    report = task.data_report(13)
    assert report["overlap"] == {"val_in_train": 0, "test_in_train": 0, "test_in_val": 0}
    assert report["space"] == (5120 if difficulty == "easy" else float(space_size(cfg)))


def test_copy_sequences_are_split_by_their_symbols():
    cfg = CopyConfig(name="copy", delay=5, train_size=500, val_size=300, test_size=300, heldout_seed=1,
                     label="copy-T5")
    task = CopyTask(cfg, 50, seed=1)
    train = torch.cat([b.inputs[:, :10].argmax(-1) for b in task.train_batches(1)])
    assert (part_of(train) == 0).all()
    assert (part_of(task.heldout["val"][0]) == 1).all() and (part_of(task.heldout["test"][0]) == 2).all()
    # The part follows the symbols, not the delay: a curriculum's stages keep the split.
    longer = CopyTask(replace(cfg, delay=50), 50, seed=1)
    assert torch.equal(longer.heldout["test"][0], task.heldout["test"][0])
    assert task.data_report(3)["space"] == 8 ** 10


def test_results_json_gives_the_space_and_the_measured_overlap(run_cfg, tmp_path):
    results = run_cfg(tmp_path, "task.train_size=320", "task.val_size=200", "task.test_size=200", "train.epochs=2",
                      "train.target_accuracy=null", "train.insight_every=0")
    data = results["data"]
    assert data["space"] == 5120 and data["shares"] == {"train": 0.7, "val": 0.15, "test": 0.15}
    assert data["overlap"] == {"val_in_train": 0, "test_in_train": 0, "test_in_val": 0}
    assert data["overlap_checked_over_epochs"] == 2 and 0 < data["distinct"]["test"] <= 200


def test_a_space_too_small_for_its_held_out_part_is_one_clear_error(compose_cfg):
    from rnnexp.errors import ConfigError

    # Length 4: B X X E and its three siblings, four sequences in all: three hash to train, one to
    # validation, none to test.
    cfg = qrsu(compose_cfg, "task.difficulty=custom", "task.length=[4,4]", "task.t1=[1,1]", "task.t2=[2,2]")
    assert sorted(part_of(draw(200, cfg, stream(0, "val"))[0].unique(dim=0)).tolist()) == [0, 0, 0, 1]
    with pytest.raises(ConfigError, match="task.length, task.t1 and task.t2 allow too few distinct sequences for a "
                                          "test set: 0 of [0-9,]+ draws"):
        QRSUTask(cfg, 32, seed=0)


# -- item 7: padding ----------------------------------------------------------------------------
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_a_sequence_scores_the_same_alone_and_in_any_batch(compose_cfg, cell):
    cfg = qrsu(compose_cfg, "task.difficulty=normal")
    task = QRSUTask(cfg, 32, seed=0)
    torch.manual_seed(0)
    model = RecurrentModel(cell, task.input_size, task.num_classes, 8).eval()
    symbols, labels = task.heldout["val"]
    with torch.no_grad():
        batched = torch.cat([task.readout(model(b.inputs)[0], b)[0] for b in batches_of(symbols[:96], labels[:96], 32)])
        alone = torch.cat([task.readout(model(b.inputs)[0], b)[0] for b in batches_of(symbols[:96], labels[:96], 1)])
        shuffled = torch.randperm(96)
        other = torch.cat([task.readout(model(b.inputs)[0], b)[0]
                           for b in batches_of(symbols[shuffled], labels[shuffled], 7)])
    assert torch.allclose(batched, alone, atol=1e-5) and torch.allclose(other, alone[shuffled], atol=1e-5)
    # The lecture's left padding does not have this property: the biases move the state over the
    # zeros before B, and a network that keeps its state (here an identity recurrence) remembers that.
    if cell == "rnn":
        with torch.no_grad():
            model.rnn.weight_hh_l0.copy_(torch.eye(8))
            alone = torch.cat([task.readout(model(b.inputs)[0], b)[0] for b in batches_of(symbols[:96], labels[:96], 1)])
            left = torch.cat([task.readout(model(b.inputs)[0], b)[0]
                              for b in batches_of(symbols[:96], labels[:96], 32, "left")])
        assert (left - alone).abs().max() > 1e-2


# -- item 8: streams ----------------------------------------------------------------------------
def test_no_two_purposes_share_a_stream_whatever_the_seeds():
    first = {}
    for root, purpose, index in itertools.product((0, 1, 1997, 7919), ("weights", "train", "val", "test", "stage"),
                                                  (0, 1, 2, 7919)):
        first[(root, purpose, index)] = tuple(torch.randint(0, 2**31, (4,), generator=stream(root, purpose, index)).tolist())
    assert len(set(first.values())) == len(first)


def test_train_seed_equal_to_the_held_out_seed_never_trains_on_the_test_series():
    """Before: epoch 7919 under train.seed = s drew from the test split's generator of task.heldout_seed = s."""
    cfg = EchoConfig(name="echo", delay=2, chunk_length=10, series_length=200, carry_state=True, val_length=200,
                     eval_streams=1, heldout_seed=1997, label="echo")
    task = EchoTask(cfg, batch_size=1, seed=1997)
    trained = torch.cat([b.inputs for b in task.train_batches(7919)], dim=1).flatten()
    test = task.heldout["test"][0].flatten()
    assert not torch.equal(trained[:200], test[:200])
    assert (trained[:200] == test[:200]).float().mean() < 0.7  # independent bits agree about half the time


def test_held_out_sets_are_the_same_for_every_train_seed(compose_cfg):
    cfg = qrsu(compose_cfg)
    a, b = QRSUTask(cfg, 32, seed=1), QRSUTask(cfg, 32, seed=2)
    assert all(torch.equal(x, y) for x, y in zip(a.heldout["test"], b.heldout["test"]))
    assert not torch.equal(next(iter(a.train_batches(1))).inputs, next(iter(b.train_batches(1))).inputs)


def test_an_older_checkpoint_is_refused_by_name(run_cfg, tmp_path):
    from rnnexp.engine.checkpoint import CHECKPOINT, save_torch
    from rnnexp.errors import RunDirError

    run_cfg(tmp_path, "train.epochs=1", "train.target_accuracy=null", "train.insight_every=0", name="old")
    payload = torch.load(tmp_path / "old" / CHECKPOINT, weights_only=True)
    payload["format"] = 3
    save_torch(tmp_path / "old" / CHECKPOINT, payload)
    with pytest.raises(RunDirError, match="format 3.*other random streams"):
        run_cfg(tmp_path, f"train.resume={tmp_path / 'old'}", "train.epochs=2", "train.target_accuracy=null", name="old")
