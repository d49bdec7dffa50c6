"""task=adding and task=copy: targets, reproducible data, memoryless baselines, learnability,
config errors, examples. The learning tests use a tiny hand-written loop (not the engine)."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from rnnexp.errors import ConfigError
from rnnexp.models.recurrent_net import RecurrentModel
from rnnexp.tasks.adding import AddingConfig, AddingTask
from rnnexp.tasks.base import Task, task_class
from rnnexp.tasks.copy_memory import BLANK, DELIMITER, CopyConfig, CopyTask

torch.set_num_threads(1)

ADDING = AddingConfig(name="adding", length=10, train_size=300, val_size=600, test_size=400, heldout_seed=1997,
                      label="adding-T10")
COPY = CopyConfig(name="copy", delay=5, train_size=300, val_size=600, test_size=400, heldout_seed=2016, label="copy-T5")


def make_task(kind: str, batch_size: int = 50, seed: int = 0, **changes) -> Task:
    if kind == "adding":
        return AddingTask(replace(ADDING, **changes), batch_size, seed)
    return CopyTask(replace(COPY, **changes), batch_size, seed)


def stacked(batches) -> tuple[torch.Tensor, torch.Tensor]:
    batches = list(batches)
    return torch.cat([b.inputs for b in batches]), torch.cat([b.targets for b in batches])


def evaluate(task: Task, model, split: str = "val") -> dict[str, float]:
    """What the engine does: add up score.sums over the split, then task.metrics."""
    sums: dict[str, float] = {}
    with torch.no_grad():
        for batch in task.eval_batches(split):
            for key, value in task.score(model(batch.inputs), batch).sums.items():
                sums[key] = sums.get(key, 0.0) + float(value)
    return task.metrics(sums)


def train(task: Task, cell: str, hidden: int, lr: float, epochs: int) -> RecurrentModel:
    torch.manual_seed(0)
    model = RecurrentModel(cell, task.input_size, task.num_classes, hidden)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    for epoch in range(1, epochs + 1):
        for batch in task.train_batches(epoch):
            score = task.score(model(batch.inputs)[0], batch)
            optimizer.zero_grad()
            score.loss.backward()
            optimizer.step()
    return model


def test_both_tasks_register_by_name():
    assert task_class("adding") is AddingTask and task_class("copy") is CopyTask


# -- targets ------------------------------------------------------------------------------------
@pytest.mark.parametrize("length", [2, 7, 10])
def test_adding_target_is_the_sum_of_the_two_marked_values_one_per_half(length):
    task = make_task("adding", length=length)
    for inputs, targets in (stacked(task.train_batches(1)), stacked(task.eval_batches("val"))):
        values, markers = inputs[..., 0], inputs[..., 1]
        assert inputs.shape[1:] == (length, 2) and task.input_size == 2 and task.num_classes == 1
        assert ((values >= 0) & (values <= 1)).all()
        assert set(markers.unique().tolist()) <= {0.0, 1.0}
        assert (markers.sum(1) == 2).all()
        half = length // 2
        assert (markers[:, :half].sum(1) == 1).all() and (markers[:, half:].sum(1) == 1).all()
        assert torch.allclose(targets, (values * markers).sum(1))


@pytest.mark.parametrize("delay", [1, 7])
def test_copy_targets_are_the_first_ten_symbols_after_the_delimiter(delay):
    task = make_task("copy", delay=delay)
    for inputs, targets in (stacked(task.train_batches(1)), stacked(task.eval_batches("val"))):
        steps = delay + 20
        assert inputs.shape[1:] == (steps, 10) and targets.shape[1:] == (steps,)
        assert (inputs.sum(-1) == 1).all()  # one-hot
        read = inputs.argmax(-1)
        symbols = read[:, :10]
        assert ((symbols >= 1) & (symbols <= 8)).all()
        assert (read[:, 10:delay + 9] == BLANK).all()           # T - 1 blanks
        assert (read[:, delay + 9] == DELIMITER).all()         # then the delimiter
        assert (read[:, delay + 10:] == BLANK).all()           # then 10 blanks
        assert (targets[:, :delay + 10] == BLANK).all()
        assert torch.equal(targets[:, delay + 10:], symbols)
        assert len(symbols.unique()) == 8                      # all of 1..8 are drawn


# -- reproducible data --------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["adding", "copy"])
def test_training_data_is_fixed_by_seed_and_epoch(kind):
    first = stacked(make_task(kind).train_batches(3))
    again = stacked(make_task(kind).train_batches(3))
    assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])
    assert not torch.equal(first[0], stacked(make_task(kind).train_batches(4))[0])
    assert not torch.equal(first[0], stacked(make_task(kind, seed=1).train_batches(3))[0])
    # The epoch's sequences do not depend on how they are cut into batches either.
    assert torch.equal(first[0], stacked(make_task(kind, batch_size=7).train_batches(3))[0])
    assert make_task(kind, batch_size=7).train_batch_count() == len(list(make_task(kind, batch_size=7).train_batches(1)))


@pytest.mark.parametrize("kind", ["adding", "copy"])
def test_val_and_test_are_fixed_independent_of_batch_size_and_distinct(kind):
    small, large = make_task(kind, batch_size=3, seed=1), make_task(kind, batch_size=64, seed=2)
    for split, size in (("val", 600), ("test", 400)):
        a, b = stacked(small.eval_batches(split)), stacked(large.eval_batches(split))
        assert len(a[0]) == size
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
        assert torch.equal(a[0], stacked(small.eval_batches(split))[0])  # the same every call
    val, test = stacked(small.eval_batches("val"))[0], stacked(small.eval_batches("test"))[0]
    assert not torch.equal(val[:400], test)
    assert not torch.equal(val, stacked(make_task(kind, heldout_seed=5).eval_batches("val"))[0])


# -- memoryless baselines -----------------------------------------------------------------------
def test_adding_constant_answer_one_scores_the_baseline_mse():
    task = make_task("adding", val_size=5000)
    assert task.baseline() == {"loss": pytest.approx(1 / 6)}

    def answer_one(inputs):
        return torch.ones(inputs.shape[0], inputs.shape[1], 1)

    metrics = evaluate(task, answer_one)
    assert metrics["loss"] == pytest.approx(1 / 6, abs=0.01)
    assert metrics["accuracy"] < 0.15  # |S - 1| < 0.04 happens ~8% of the time


def test_copy_memoryless_strategy_scores_the_baseline_and_accuracy_counts_recalled_symbols():
    task = make_task("copy", delay=5)
    expected = 10 * math.log(8) / 25
    assert task.baseline()["loss"] == pytest.approx(expected)
    certain = 1e4  # a logit gap so large that the other classes get probability 0

    def memoryless(inputs):
        logits = torch.full((*inputs.shape[:2], 10), -certain)
        logits[:, :-10, BLANK] = certain      # blank with certainty for the first T + 10 steps
        logits[:, -10:, 1:9] = 0.0            # uniform over 1..8 for the last 10
        return logits

    def blank_only(inputs):
        return F.one_hot(torch.zeros(inputs.shape[:2], dtype=torch.long), 10).float() * certain

    assert evaluate(task, memoryless)["loss"] == pytest.approx(expected, abs=1e-3)
    # Every step right but the recalled ones: accuracy counts the 10 recalled symbols only.
    assert evaluate(task, blank_only)["accuracy"] == 0.0
    val = {id(b.inputs): b.targets for b in task.eval_batches("val")}

    def perfect(inputs):
        return F.one_hot(val[id(inputs)], 10).float() * certain

    assert evaluate(task, perfect) == {"loss": pytest.approx(0.0, abs=1e-6), "accuracy": 1.0}


# -- learnable ----------------------------------------------------------------------------------
def test_a_small_lstm_learns_the_adding_problem_at_t10():
    task = make_task("adding", length=10, train_size=2000)
    model = train(task, "lstm", hidden=16, lr=0.01, epochs=25)
    assert evaluate(task, lambda x: model(x)[0])["loss"] < 0.02  # baseline 0.167


def test_a_small_gru_learns_copy_at_t5():
    # Ten symbols (30 bits) to hold is slow to learn on one CPU thread: after 240 updates a GRU is
    # well off the memoryless plateau (loss 0.83, recall 1/8), not yet done (that takes ~1000).
    task = make_task("copy", delay=5, train_size=2000)
    model = train(task, "gru", hidden=128, lr=0.01, epochs=6)
    metrics = evaluate(task, lambda x: model(x)[0])
    assert metrics["loss"] < 0.9 * task.baseline()["loss"] and metrics["accuracy"] > 0.25, metrics


# -- config -------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind, key, value", [
    ("adding", "length", 0), ("adding", "length", 1), ("adding", "train_size", 0), ("adding", "val_size", 0),
    ("adding", "test_size", 0), ("adding", "heldout_seed", -1),
    ("copy", "delay", 0), ("copy", "train_size", 0), ("copy", "val_size", 0), ("copy", "test_size", 0),
    ("copy", "heldout_seed", -1),
])
def test_bad_config_value_is_a_one_line_error_naming_the_key(kind, key, value):
    cfg = replace(ADDING if kind == "adding" else COPY, **{key: value})
    with pytest.raises(ConfigError) as err:
        cfg.validate()
    assert f"task.{key}={value}" in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("task_name, override, label", [
    ("adding", "task.length=200", "adding-T200"), ("copy", "task.delay=7", "copy-T7")])
def test_yaml_composes_into_a_valid_run_config(task_name, override, label):
    from rnnexp.config import load_run_config
    from tests.conftest import compose_config

    run = load_run_config(compose_config(f"task={task_name}", override))
    assert run.task.label == label and run.train.optimizer == "adam" and run.train.target_accuracy is None
    assert "T=" in task_class(task_name)(run.task, run.train.batch_size, run.train.seed).describe()
    with pytest.raises(ConfigError, match=r"task\.(length|delay)=0"):
        load_run_config(compose_config(f"task={task_name}", override.split("=")[0] + "=0"))


# -- examples and lags --------------------------------------------------------------------------
def test_adding_example_labels_and_parsing():
    task = make_task("adding")
    example = task.example()
    assert example.batch.inputs.shape == (1, 10, 2) and len(example.labels) == 10
    assert sum(label.startswith("*") for label in example.labels) == 2
    parsed = task.example("0.1,*0.5,0.3,*0.9")
    assert parsed.labels == ["0.10", "*0.50", "0.30", "*0.90"]
    assert parsed.batch.targets.tolist() == [pytest.approx(1.4)]
    for bad, named in (("0.1,x,*0.2,*0.3", "'x'"), ("0.1,*1.5,*0.3", "'*1.5'"), ("0.1,*0.5,0.3", "marks 1")):
        with pytest.raises(ConfigError, match=named):
            task.example(bad)
    assert task.max_lag() == 10


def test_copy_example_labels_and_parsing():
    task = make_task("copy", delay=5)
    labels = task.example().labels
    assert len(labels) == 25 and all(c in "12345678" for c in labels[:10])
    assert labels[10:14] == ["_"] * 4 and labels[14] == ":" and labels[15:] == ["_"] * 10
    parsed = task.example("1234567812")
    assert "".join(parsed.labels[:10]) == "1234567812" and parsed.batch.targets[0, -10:].tolist() == [
        1, 2, 3, 4, 5, 6, 7, 8, 1, 2]
    for bad, named in (("123", "has 3 symbols"), ("1234567890", "'9'"), ("12345678a1", "'a'")):
        with pytest.raises(ConfigError, match=named):
            task.example(bad)
    assert task.max_lag() == 15
