"""The QRSU generator: Hochreiter & Schmidhuber's temporal-order sequences, at every difficulty."""

import pytest
import torch

from rnnexp.config import typed
from rnnexp.errors import ConfigError
from rnnexp.tasks.qrsu import BEGIN, DIFFICULTIES, END, QRSUConfig, QRSUTask, X, Y, batches_of, generate


def qrsu_cfg(compose_cfg, *overrides):
    cfg = compose_cfg("task=qrsu", *overrides)
    task_cfg = typed(QRSUConfig, cfg.task, "task")
    task_cfg.validate()
    return task_cfg


def decode(inputs):
    """(n, T, 8) one-hot with all-zero padding -> per sequence: list of symbol ids (padding dropped)."""
    out = []
    for seq in inputs:
        used = seq.sum(-1) > 0
        out.append(seq[used].argmax(-1).tolist())
    return out


@pytest.mark.parametrize("padding", ["right", "left"])
@pytest.mark.parametrize("difficulty", list(DIFFICULTIES))
def test_sequences_follow_the_definition(compose_cfg, difficulty, padding):
    cfg = qrsu_cfg(compose_cfg, f"task.difficulty={difficulty}", f"task.padding={padding}")
    (lmin, lmax), (t1min, t1max), (t2min, t2max) = DIFFICULTIES[difficulty]
    batches = list(batches_of(*generate(400, cfg, torch.Generator().manual_seed(0)), 64, padding))
    lengths = []
    for batch in batches:
        inputs, labels = batch.inputs, batch.targets
        # One-hot where used, all-zero padding on one side only, lengths carried in the batch.
        sums = inputs.sum(-1)
        assert ((inputs == 0) | (inputs == 1)).all() and set(sums.unique().tolist()) <= {0.0, 1.0}
        assert inputs.shape[1] == int(batch.lengths.max()), "trimmed to the batch's longest sequence"
        assert batch.left_padded == (padding == "left")
        for row, length in zip(sums, batch.lengths.tolist()):
            used = row.nonzero().flatten()
            assert len(used) == length
            if padding == "right":
                assert used[0] == 0 and used[-1] == length - 1, "padding only on the right"
            else:
                assert used[-1] == len(row) - 1 and used[0] == len(row) - length, "padding only on the left"
        for seq, label in zip(decode(inputs), labels.tolist()):
            lengths.append(len(seq))
            assert lmin <= len(seq) <= lmax
            assert seq[0] == BEGIN and seq[-1] == END
            marks = [i for i, s in enumerate(seq) if s in (X, Y)]
            assert len(marks) == 2
            t1, t2 = marks
            assert t1min <= t1 <= t1max and t2min <= t2 <= t2max
            assert label == 2 * (seq[t1] == Y) + (seq[t2] == Y)
            assert all(2 <= s <= 5 for i, s in enumerate(seq[1:-1], 1) if i not in marks)
    assert min(lengths) < max(lengths) or lmin == lmax, "a batch mixes lengths"
    assert set(torch.cat([b.targets for b in batches]).tolist()) == {0, 1, 2, 3}


@pytest.mark.parametrize("padding", ["right", "left"])
def test_a_mixing_curriculum_mixes_difficulties_as_the_padding_allows(compose_cfg, padding):
    """train.curriculum_strategy=mix: each sequence's difficulty drawn on its own (Learning to
    Execute's mixing) where it is read at its own last step (right padding), each batch's where
    all are read at the batch's last (left); the same epoch draws the same (an exact resume)."""
    def epoch(number):
        task = QRSUTask(qrsu_cfg(compose_cfg, "task.difficulty=moderate", f"task.padding={padding}"), 32, 1)
        task.mix(["easy", "normal", None], 1.0)
        return list(task.epoch_batches(number))

    batches, seen = epoch(1), set()
    for batch in batches:
        lengths = batch.lengths.tolist()
        assert batch.left_padded == (padding == "left") and batch.inputs.shape[1] == max(lengths)
        kinds = {next(name for name in ("easy", "normal", "moderate") if DIFFICULTIES[name][0][0] <= n <= DIFFICULTIES[name][0][1])
                 for n in lengths}
        if padding == "right":
            assert kinds == {"easy", "normal", "moderate"}, "each batch mixes them"
        else:  # (every answer read at the batch's last step: an easy sequence would sit behind ~70 steps of padding)
            assert len(kinds) == 1, "left padding: each batch from one difficulty"
        seen |= kinds
        assert [len(seq) for seq in decode(batch.inputs)] == lengths, "each sequence whole, padded on one side"
    assert seen == {"easy", "normal", "moderate"}
    again = epoch(1)
    assert all(torch.equal(a.inputs, b.inputs) and torch.equal(a.targets, b.targets) for a, b in zip(batches, again))
    assert not torch.equal(epoch(2)[0].targets, batches[0].targets)


def test_custom_ranges_and_their_validation(compose_cfg):
    cfg = qrsu_cfg(compose_cfg, "task.difficulty=custom", "task.length=[12,12]", "task.t1=[3,3]", "task.t2=[7,8]")
    symbols, _ = generate(50, cfg, torch.Generator().manual_seed(1))
    assert symbols.shape[1] == 12 and (symbols >= 0).all()
    for bad in (["task.t1=[0,2]"], ["task.t2=[2,3]"], ["task.length=[6,8]"], ["task.t1=[3,2]"],
                ["task.difficulty=custom"], ["task.padding=middle"]):
        with pytest.raises(ConfigError):
            qrsu_cfg(compose_cfg, *bad)


def test_generation_is_seeded_and_epochs_differ(compose_cfg):
    cfg = qrsu_cfg(compose_cfg)
    a, b = QRSUTask(cfg, 32, seed=3), QRSUTask(cfg, 32, seed=3)
    for x, y in zip(a.train_batches(2), b.train_batches(2)):
        assert torch.equal(x.inputs, y.inputs) and torch.equal(x.targets, y.targets)
    first = next(iter(a.train_batches(1))).inputs
    assert not torch.equal(first, next(iter(a.train_batches(2))).inputs)
    assert not torch.equal(first, next(iter(QRSUTask(cfg, 32, seed=4).train_batches(1))).inputs)


def test_epoch_and_validation_sizes(compose_cfg):
    cfg = qrsu_cfg(compose_cfg, "task.difficulty=moderate")
    task = QRSUTask(cfg, 32, seed=0)
    train = list(task.train_batches(1))
    assert sum(len(b.targets) for b in train) == 1000 and len(train) == task.train_batch_count() == 32
    val = list(task.eval_batches("val"))
    assert sum(len(b.targets) for b in val) == 1000
    assert all(torch.equal(a.inputs, b.inputs) for a, b in zip(val, task.eval_batches("val"))), "validation is fixed"
    test = list(task.eval_batches("test"))
    assert sum(len(b.targets) for b in test) == 1000 and not torch.equal(test[0].inputs, val[0].inputs)
    other_batch = QRSUTask(cfg, 7, seed=3)
    assert all(torch.equal(a.inputs, b.inputs) for a, b in zip(val, other_batch.eval_batches("val"))), \
        "validation does not depend on train.batch_size or the seed"
    # Each batch is trimmed to its own longest sequence (padded on the right: every row starts with B).
    for batch in train:
        assert (batch.inputs[:, 0].argmax(-1) == BEGIN).all() and batch.inputs.shape[1] == int(batch.lengths.max())
        assert batch.reset
