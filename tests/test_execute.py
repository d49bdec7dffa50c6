"""Learning to execute (task=execute): programs Python agrees with, both forms of model, the metrics
of the paper and of greedy decoding, and the curriculum strategies (none, naive, mix, combined)."""

import random

import pytest
import torch

from rnnexp.errors import ConfigError

SMALL = ["task=execute", "task.length=2", "task.nesting=1", "task.train_size=640", "task.val_size=200",
         "task.test_size=200", "model.hidden_size=16", "model.num_layers=1", "train.insight_every=0"]


def task_of(compose_cfg, *overrides):
    from rnnexp.config import load_run_config
    from rnnexp.tasks import build_task

    run = load_run_config(compose_cfg(*SMALL, *overrides))
    return run, build_task(run.task, run.train.batch_size, run.train.seed)


@pytest.mark.parametrize("length,nesting", [(1, 1), (4, 2), (3, 4)])
def test_every_generated_program_prints_what_its_answer_says(length, nesting):
    from rnnexp.tasks.execute import ExecuteConfig, program

    rng = random.Random(length * 10 + nesting)
    cfg = ExecuteConfig("execute", 1, 1, 1, 0, "x", length, nesting, "all")
    for _ in range(300):
        text, value = program(rng, cfg)
        printed = []
        exec(text, {"__builtins__": {"print": printed.append, "range": range}})
        assert printed == [value], text


def test_a_batch_holds_programs_and_their_answers_and_a_typed_program_is_run_for_its_answer(compose_cfg):
    from rnnexp.tasks.execute import ANSWER_CHARS, PROGRAM_CHARS

    _, task = task_of(compose_cfg)
    batch = next(task.train_batches(1))
    for b in range(8):
        text = "".join(PROGRAM_CHARS[int(k)] for k in batch.inputs[b, :int(batch.lengths[b])])
        printed = []
        exec(text, {"__builtins__": {"print": printed.append, "range": range}})
        answer = "".join(ANSWER_CHARS[int(k)] for k in batch.targets[b, :int(batch.mask[b].sum())])
        assert answer == f"{printed[0]}."
    example = task.example("a=12;print((a*3))")
    assert example.batch.targets.tolist() == [[3, 6, 11]] and "".join(example.labels) == "a=12\nprint((a*3))"
    for bad in ("print(1/2)", "import os", "print(x)", "a=0;for _ in range(10000000):a+=1;print(a)"):
        with pytest.raises(ConfigError, match="example"):
            task.example(bad)
    with pytest.raises(ConfigError, match="does not finish within 2 s"):
        task.example("while 1: pass")
    with pytest.raises(ConfigError, match="uses '\\*\\*', which these programs never do"):
        task.example("print(9**9**9)")
    with pytest.raises(ConfigError, match="prints 51 characters; answers here have at most 39"):
        task.example("print((10000000000*10000000000*10000000000*10000000000*10000000000))")


def test_the_one_sequence_form_reads_each_answer_right_after_its_own_program(compose_cfg):
    """A program's outputs must not depend on the padding after a shorter program in its batch."""
    from rnnexp.models.build import build_model
    from rnnexp.tasks.base import Batch

    run, task = task_of(compose_cfg, "model=lstm")
    torch.manual_seed(0)
    model = build_model(run.model, task).eval()
    batch = next(task.eval_batches("val")).first(6)
    together = task.forward(model, batch, None)[0]
    for b in range(6):
        n, t = int(batch.lengths[b]), int(batch.mask[b].sum())
        one = Batch(batch.inputs[b:b + 1, :n], batch.targets[b:b + 1, :t], mask=batch.mask[b:b + 1, :t],
                    lengths=batch.lengths[b:b + 1], decoder_inputs=batch.decoder_inputs[b:b + 1, :t])
        torch.testing.assert_close(together[b, :t], task.forward(model, one, None)[0][0], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("model", ["lstm", "seq2seq"])
def test_both_forms_train_and_report_the_papers_metric_beside_greedy_decoding(run_cfg, tmp_path, model):
    result = run_cfg(tmp_path, *SMALL, f"model={model}", "train.epochs=2", "train.target_accuracy=null")
    test = result["test"]
    assert set(test) == {"test/loss", "test/accuracy", "test/exact_match", "test/forced_accuracy"}
    assert test["test/forced_accuracy"] > result["baseline"]["accuracy"]
    assert result["objective"]["name"] == "val/exact_match"


def test_the_addition_task_is_the_papers_print_a_plus_b(compose_cfg):
    from rnnexp.tasks.execute import PROGRAM_CHARS

    _, task = task_of(compose_cfg, "task.operations=addition", "task.length=3")
    batch = next(task.train_batches(1))
    text = "".join(PROGRAM_CHARS[int(k)] for k in batch.inputs[0, :int(batch.lengths[0])])
    assert text.startswith("print(") and text.count("+") == 1 and len(text) == len("print(123+456)")
    assert task.data_report(1)["overlap"]["test_in_train"] == 0


# -- curriculum strategies -------------------------------------------------------------------------
CURRICULUM = ["task=parity", "task.length=8", "task.train_size=640", "train.curriculum=[2,4]", "model.hidden_size=8",
              "train.insight_every=0", "train.target_accuracy=null"]


def stages_trained(compose_cfg, strategy, epoch=1):
    """The bit-string length of every example of `epoch` under `strategy`, batch by batch (a fresh
    run's start)."""
    from rnnexp.config import load_run_config
    from rnnexp.engine.curriculum import curriculum_callbacks
    from rnnexp.tasks import build_task

    run = load_run_config(compose_cfg(*CURRICULUM, f"train.curriculum_strategy={strategy}"))
    task = build_task(run.task, run.train.batch_size, run.train.seed)
    callbacks = curriculum_callbacks(run.train.curriculum, run.train.curriculum_threshold, strategy, task)
    for callback in callbacks:
        callback.on_fit_start(type("E", (), {"task": task, "state": type("S", (), {"epoch": 1, "global_step": 0})()})())
    return [b.lengths.tolist() if b.lengths is not None else [b.inputs.shape[1]] * b.inputs.shape[0]
            for b in task.epoch_batches(epoch)], callbacks


def test_the_strategies_draw_their_examples_as_the_paper_does(compose_cfg):
    def every(batches):
        return [length for batch in batches for length in batch]

    none, callbacks = stages_trained(compose_cfg, "none")
    assert set(every(none)) == {8} and callbacks == []
    naive, _ = stages_trained(compose_cfg, "naive")
    assert set(every(naive)) == {2}, "naive: the first stage until its threshold"
    mix, callbacks = stages_trained(compose_cfg, "mix")
    counts = [every(mix).count(length) for length in (2, 4, 8)]
    assert sum(counts) == 640 and min(counts) > 640 / 3 * 0.8 and callbacks == [], \
        "mix: every example from a stage or the target, uniformly"
    assert all(set(batch) == {2, 4, 8} for batch in mix), "each batch mixes them"
    combined, _ = stages_trained(compose_cfg, "combined")
    share = sum(length != 2 for length in every(combined)) / 640
    assert 0.05 < share < 0.25, "combined: most examples naive, about 1 in 5 (x 2/3 off-stage) mixed"
    assert sum(len(set(batch)) > 1 for batch in combined) > len(combined) / 2, "mixed within batches"
    assert stages_trained(compose_cfg, "mix")[0] == mix, "the epoch's own stream: a resume draws the same"
    assert stages_trained(compose_cfg, "mix", epoch=2)[0] != mix


def test_a_mixing_strategy_needs_stages_and_resumes_exactly(compose_cfg, run_cfg, tmp_path, monkeypatch):
    from rnnexp.config import load_run_config
    from tests.test_reliability import resumed_and_clean

    with pytest.raises(ConfigError, match="train.curriculum_strategy=mix mixes the stages of train.curriculum"):
        load_run_config(compose_cfg("task=parity", "train.curriculum_strategy=mix"))
    with pytest.raises(ConfigError, match=r"none are given: add them \(e.g. train.curriculum=\[5,10\], easier values of task.length\)"):
        load_run_config(compose_cfg("task=parity", "task.length=20", "train.curriculum_strategy=combined"))
    with pytest.raises(ConfigError, match=r"train.curriculum\[0\]='easy' is not a valid task.length: a stage of "
                                          r"task=execute is a length \(3\) or a length and a nesting \(3x2\)"):
        load_run_config(compose_cfg("task=execute", "train.curriculum=[easy]"))
    with pytest.raises(ConfigError, match=r"train.curriculum\[1\]='2x7' sets task.nesting=7, which is invalid: "
                                          r"use 1 <= nesting <= 4"):
        load_run_config(compose_cfg("task=execute", "train.curriculum=[1x1,2x7]"))
    for task, stage in (("execute", "1.5"), ("parity", "3.0"), ("parity", "true"), ("decimal", "6.5")):
        with pytest.raises(ConfigError, match=rf"train.curriculum\[0\]={stage.title() if stage == 'true' else stage} "
                                              r"is not a valid task.\w+: use values of task.\w+'s kind"):
            load_run_config(compose_cfg(f"task={task}", f"train.curriculum=[{stage}]"))
    with pytest.raises(ConfigError, match=r"train.curriculum\[0\]=5 is not a valid task.difficulty: use values of "
                                          r"task.difficulty's kind, easier than the target \('moderate'\), e.g. "
                                          r"train.curriculum=\[easy,normal\]"):
        load_run_config(compose_cfg("task=qrsu", "task.difficulty=moderate", "train.curriculum=[5,10]"))
    custom = ["task=qrsu", "task.difficulty=custom", "task.length=[20,30]", "task.t1=[2,4]", "task.t2=[10,15]"]
    assert load_run_config(compose_cfg(*custom, "train.curriculum=[easy]")).train.curriculum == ["easy"], \
        "a named difficulty leads up to a custom target"
    for task, stages, says in (("parity", "[2,12]", r"\[1\]=12 sets task.length=12, above the target's 8"),
                               ("execute", "[1x1,2x3]", r"\[1\]='2x3' sets task.nesting=3, above the target's 2"),
                               ("qrsu", "[easy,hard]", r"\[1\]='hard' has sequences of up to 110 steps, longer than the target's 80")):
        target = {"parity": "task.length=8", "execute": "task.nesting=2", "qrsu": "task.difficulty=moderate"}[task]
        with pytest.raises(ConfigError, match=rf"train.curriculum{says}: a curriculum's stages lead up to the target"):
            load_run_config(compose_cfg(f"task={task}", target, f"train.curriculum={stages}"))
        load_run_config(compose_cfg(f"task={task}", target, f"train.curriculum={stages}", "train.curriculum_strategy=none"))
    with pytest.raises(ConfigError, match="train.curriculum_strategy='ordered' is invalid"):
        load_run_config(compose_cfg("task=parity", "train.curriculum_strategy=ordered"))
    args = [*CURRICULUM, "train.curriculum_strategy=combined", "train.epochs=3"]
    resumed, clean = resumed_and_clean(run_cfg, tmp_path, monkeypatch, args, look=25)  # (a stop in epoch 2)
    assert resumed["history"] == clean["history"] and resumed["test"] == clean["test"]


def test_learning_to_execute_mixes_per_example_over_lengths_and_nestings(compose_cfg):
    """The paper's mix: each example's length and nesting uniformly up to the target; combined: 1 in
    5 so, the rest the naive stage's. (Programs are padded to one width: examples of any stage share
    a batch.)"""
    import re

    from rnnexp.engine.curriculum import curriculum_callbacks
    from rnnexp.tasks import fixed_sets
    from rnnexp.tasks.execute import PROGRAM_CHARS

    def epoch(strategy):
        run, task = task_of(compose_cfg, "task.length=3", "task.nesting=2", "train.curriculum=[1,2]",
                            f"train.curriculum_strategy={strategy}")
        for callback in curriculum_callbacks(run.train.curriculum, 0.95, strategy, task):
            callback.on_fit_start(type("E", (), {"task": task, "state": type("S", (), {"epoch": 1, "global_step": 0})()})())
        drawn, real = [], fixed_sets.FixedSetTask.draw_part
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(fixed_sets.FixedSetTask, "draw_part", lambda self, cfg, n, generator, part: drawn.append(
                (cfg.length, cfg.nesting, n)) or real(self, cfg, n, generator, part))
            batches = list(task.epoch_batches(1))
        digits = [[max(len(d) for d in re.findall(r"\d+", "".join(PROGRAM_CHARS[int(k)] for k in row[:int(n)])))
                   for row, n in zip(b.inputs, b.lengths)] for b in batches]
        return drawn, digits, [b.inputs.shape[0] for b in batches]

    drawn, digits, sizes = epoch("mix")
    mixed = {(length, nesting): n for length, nesting, n in drawn}  # (each part drawn where it goes)
    assert set(mixed) == {(1, 1), (1, 2), (2, 1), (2, 2), (3, 1), (3, 2)}, "every length x every nesting"
    assert sum(mixed.values()) == 640 and min(mixed.values()) > 640 / 6 / 2
    assert all(len(set(batch)) == 3 for batch in digits), "each batch mixes lengths 1-3"
    assert sum(sizes) == 640 and len(set(sizes)) == 1
    drawn, digits, _ = epoch("combined")
    share = sum(n for *_, n in drawn[1:]) / 640
    assert 0.1 < share < 0.3 and drawn[0][:2] == (1, 2), "combined: ~1 in 5 mixed, the rest stage 1 at the target nesting"
    assert sum(n for *_, n in drawn) == 640
    assert epoch("combined")[1] == digits, "the epoch's own streams: a resume draws the same"


def test_a_learning_to_execute_stage_is_a_length_or_a_length_and_a_nesting(compose_cfg):
    """The paper's naive curriculum: the lengths at nesting 1, then again at nesting 2."""
    from rnnexp.engine.curriculum import Curriculum

    run, task = task_of(compose_cfg, "task.length=3", "task.nesting=2", "train.curriculum=[1x1,3x1,2]")
    curriculum = Curriculum(run.train.curriculum, 0.95)
    curriculum.on_fit_start(type("E", (), {"task": task, "state": type("S", (), {"epoch": 1, "global_step": 0})()})())
    seen = []
    for _ in range(4):
        seen.append((task.train_cfg.length, task.train_cfg.nesting))
        task.set_stage(run.train.curriculum[curriculum.position(task.stage) + 1]
                       if curriculum.position(task.stage) + 1 < 3 else None)
    assert seen == [(1, 1), (3, 1), (2, 2), (3, 2)], "stages, then the target"
