"""What is specific to parity (the contract test covers the rest): the target is the XOR of the
bits, short curriculum stages are not split and say so, and a curriculum solves what plain
training does not leave chance at."""

import pytest
import torch

from rnnexp.errors import ConfigError
from rnnexp.tasks.parity import ParityConfig, ParityTask


def task(length: int = 12, **sizes: int) -> ParityTask:
    cfg = ParityConfig(name="parity", length=length, train_size=sizes.get("train", 300), val_size=200,
                       test_size=200, heldout_seed=1994, label=f"parity-T{length}")
    return ParityTask(cfg, batch_size=50, seed=1)


def test_the_target_is_the_parity_of_the_bits():
    batch = next(task().train_batches(1))
    bits = batch.inputs[..., 0].long()
    assert torch.equal(batch.targets, bits.sum(1) % 2) and set(bits.unique().tolist()) == {0, 1}
    assert task().example("1011").batch.targets.tolist() == [1]
    assert task().example("1001").labels == ["1", "0", "0", "1"]
    with pytest.raises(ConfigError, match="is not a bit string; use 0s and 1s, e.g. example=1011001"):
        task().example("10a1")


def test_short_stages_draw_from_every_string_and_report_their_overlap():
    t = task(12)
    t.set_stage(3)
    assert {tuple(b.inputs[..., 0].long().tolist()[0]) for b in t.train_batches(1)} and t.train_cfg.length == 3
    report = t.data_report(2)
    assert report["overlap"] == {"val_in_train": 0, "test_in_train": 0, "test_in_val": 0}  # 2^12: split
    assert report["stages"]["3"] == {"space": 8, "split": False, "distinct_val": 8, "val_in_train": 8,
                                     "overlap_checked_over_epochs": 1}
    short = task(4).data_report(1)
    assert short["split"].startswith("none: 16 distinct sequences are too few")


def test_a_curriculum_solves_parity_where_plain_training_stays_at_chance(run_cfg, tmp_path):
    common = ["task=parity", "task.length=16", "model=lstm", "train.epochs=15", "train.insight_every=0"]
    plain = run_cfg(tmp_path, *common, name="plain")
    taught = run_cfg(tmp_path, *common, "train.curriculum=[2,3,5,10]", name="taught")
    assert plain["best"]["val/accuracy"] < 0.65
    assert taught["target_epoch"] is not None and taught["test"]["test/accuracy"] >= 0.99


@pytest.mark.parametrize("model", ["rnn", "lstm", "gru", "mlp"])
def test_the_preset_teaches_20_bits_after_2_3_5_and_10_for_any_model(model, compose_cfg):
    from rnnexp.config import load_run_config

    run = load_run_config(compose_cfg("experiment=parity_curriculum", f"model={model}"))
    assert (run.task.name, run.task.length, run.train.curriculum) == ("parity", 20, [2, 3, 5, 10])
