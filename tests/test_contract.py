"""The contract every task and every model family keeps, checked for each one registered: a new
task or family is covered here by itself, and its own test file holds only what is specific to it.

Tasks (`rnnexp.tasks.base.Task`): the module imports without torch; the data is fixed by the
seeds (held-out sets by task.heldout_seed alone); validation and test never share a sequence
(a hash split's measured overlap is 0; otherwise the two sets differ); `baseline()` is the score
of the task's `memoryless_outputs`; `example()` is one sequence with a label per step.
Families (`rnnexp.models.family.ModelFamily`): the module imports without torch; the parameter
count and the memory estimate agree with the built model; a parameter budget sizes it.
Every task with every model option: one epoch trains, and a run stopped mid-epoch resumes exactly.

Runs are shrunk through the keys named in SHRINK where a task has them (sizes of its data).
"""

from __future__ import annotations

import math
import subprocess
import sys
from dataclasses import fields

import pytest
import torch

from rnnexp.models.family import family_class, family_names, model_family, options_of
from rnnexp.tasks.base import task_class, task_names
from tests.test_cli import ENV

SHRINK = {"train_size": 96, "val_size": 200, "test_size": 64, "series_length": 120, "val_length": 120, "eval_streams": 2}
TASKS = task_names()
MODELS = [options_of(family)[0] for family in family_names()]  # one option of each family
EVERY_MODEL = [option for family in family_names() for option in options_of(family)]


def pairs(models: list[str]) -> list[tuple[str, str]]:
    """(task, model) for every task with every model that can run it: a task that writes its answer
    as a sequence needs a family with a decoder (or, where the task allows it, one that reads the
    source and the answer as one sequence), and a family with a decoder needs such a task."""
    from rnnexp.models.family import model_options

    def fits(task: str, model: str) -> bool:
        t, f = task_class(task), family_class(model_options()[model])
        return t.decodes == f.decoder or (t.decodes and t.one_sequence and f.reads_one_sequence)

    return [(task, model) for task in TASKS for model in models if fits(task, model)]
QUICK = ["train.epochs=2", "train.batches_per_epoch=3", "train.insight_every=0", "train.target_accuracy=null",
         "train.curriculum=null", "model.hidden_size=8"]


def shrunk(task: str, **sizes: int) -> list[str]:
    keys = {f.name for f in fields(task_class(task).Config)}
    return [f"task={task}", *(f"task.{key}={value}" for key, value in {**SHRINK, **sizes}.items() if key in keys)]


def built(compose_cfg, task: str, *overrides: str, seed: int = 0, **sizes: int):
    from rnnexp.config import load_run_config
    from rnnexp.tasks import build_task

    run = load_run_config(compose_cfg(*shrunk(task, **sizes), *overrides))
    return run, build_task(run.task, run.train.batch_size, seed)


def tensors(batches) -> list[torch.Tensor]:
    return [t for b in batches for t in (b.inputs, b.targets) if t is not None]


def same(a, b) -> bool:
    a, b = tensors(a), tensors(b)
    return len(a) == len(b) and all(x.shape == y.shape and torch.equal(x, y) for x, y in zip(a, b))


# -- imports -----------------------------------------------------------------------------------
@pytest.mark.parametrize("module", sorted({task_class(t).__module__ for t in TASKS}
                                          | {family_class(f).__module__ for f in family_names()}))
def test_the_module_imports_without_torch(module):
    code = f"import sys, {module}; print('torch' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], env=ENV, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False", f"{module} imports torch: checking a config would wait for it"


# -- tasks -------------------------------------------------------------------------------------
@pytest.mark.parametrize("task", TASKS)
def test_data_is_fixed_by_the_seeds(task, compose_cfg):
    _, one = built(compose_cfg, task, seed=1)
    _, again = built(compose_cfg, task, seed=1)
    _, other = built(compose_cfg, task, seed=2)
    assert same(one.train_batches(1), again.train_batches(1)) and same(one.train_batches(2), again.train_batches(2))
    assert not same(one.train_batches(1), other.train_batches(1)), "train.seed chooses the training data"
    for split in ("val", "test"):  # the same held-out sets for every train.seed
        assert same(one.eval_batches(split), other.eval_batches(split))


@pytest.mark.parametrize("task", TASKS)
def test_validation_and_test_share_nothing(task, compose_cfg):
    _, t = built(compose_cfg, task)
    report = t.data_report(2)
    if "overlap" in report and not str(report["split"]).startswith("none"):
        assert report["overlap"] == {"val_in_train": 0, "test_in_train": 0, "test_in_val": 0}
    assert not same(t.eval_batches("val"), t.eval_batches("test"))


@pytest.mark.parametrize("task", TASKS)
def test_the_baseline_is_the_score_of_a_model_that_remembers_nothing(task, compose_cfg):
    _, t = built(compose_cfg, task, val_size=1000)
    sums: dict[str, float] = {}
    for batch in t.eval_batches("val"):
        for key, value in t.score(t.memoryless_outputs(batch), batch).sums.items():
            sums[key] = sums.get(key, 0.0) + float(value)
    metrics = t.metrics(sums)
    assert t.baseline(), "a task says what learning nothing scores"
    for key, value in t.baseline().items():
        # exact for a uniform guess; within the sampling noise of 1,000 validation sequences otherwise
        assert metrics[key] == pytest.approx(value, rel=0.1, abs=0.03), key


@pytest.mark.parametrize("task", TASKS)
def test_the_example_is_one_sequence_with_a_label_per_step(task, compose_cfg):
    _, t = built(compose_cfg, task)
    example = t.example()
    assert example.batch.inputs.shape[0] == 1 and len(example.labels) == example.batch.inputs.shape[1] > 0
    assert all(isinstance(label, str) for label in example.labels)
    said = t.prediction_text(t.memoryless_outputs(example.batch), example.batch)  # rnnexp-inspect's answer line
    assert said and "\n" not in said and ("prediction" in said or "recalled" in said)


# -- model families ----------------------------------------------------------------------------
@pytest.mark.parametrize("task,model", pairs(MODELS))
def test_the_family_counts_its_parameters_and_memory_and_meets_a_budget(model, task, compose_cfg):
    from rnnexp.models.build import count_parameters

    run, t = built(compose_cfg, task, f"model={model}", "model.hidden_size=8")
    family = model_family(run.model)
    size = family.size(t)
    net = family.build(t, size)
    params = count_parameters(net)
    assert family.parameter_count(t, size) == params
    assert 0 < family.memory_bytes() <= 4 * 4 * params  # a lower bound of 4 float32 copies
    assert f"{params:,}" in family.describe(size, params)
    budget = max(200, params * 3)
    run, t = built(compose_cfg, task, f"model={model}", f"model.param_budget={budget}")
    family = model_family(run.model)
    fitted = count_parameters(family.build(t, family.size(t)))
    assert abs(fitted - budget) / budget < 0.25, (fitted, budget)
    lacks = family.lacks() or ""
    assert ("replay" in lacks) != family.replay and ("CUDA graph" in lacks) != family.cuda_graph


# -- every task with every model: one epoch trains, a stopped run resumes exactly -------------
@pytest.mark.parametrize("task,model", pairs(EVERY_MODEL))
def test_it_trains_and_a_run_stopped_mid_epoch_resumes_exactly(task, model, run_cfg, tmp_path, monkeypatch, caplog):
    from tests.test_reliability import resumed_and_clean

    args = [*shrunk(task), f"model={model}", *QUICK]
    resumed, clean = resumed_and_clean(run_cfg, tmp_path, monkeypatch, args, look=2)  # (after epoch 1's second batch)
    assert clean["status"] == "completed" and clean["epochs_run"] == 2
    first, second = clean["history"]
    assert math.isfinite(first["train/loss"]) and first["train/weight_norm"] != second["train/weight_norm"]
    assert resumed["history"] == clean["history"] and resumed["test"] == clean["test"]
    assert not [r for r in caplog.records if "no longer apply" in r.getMessage()], "a run of today drops no key"


# -- a mixing curriculum: sequences of several stages in one batch ----------------------------
def shorter_stage(task) -> object:
    """A curriculum stage below the task's target (QRSU's difficulties are names)."""
    value = getattr(task.cfg, task.curriculum_key)
    return "easy" if isinstance(value, str) else max(1, value // 2)


@pytest.mark.parametrize("task,model", [(t, m) for t, m in pairs(MODELS) if task_class(t).curriculum_key])
def test_a_mixed_batch_scores_each_sequence_as_it_would_alone(task, model, compose_cfg, monkeypatch):
    """Under a mixing curriculum a batch holds sequences of several stages, each padded on the
    right to the longest: what each one scores must not depend on the others in its batch."""
    from rnnexp.tasks import mixing

    harder = ["task.difficulty=normal"] if task == "qrsu" else []
    run, t = built(compose_cfg, task, f"model={model}", "model.hidden_size=8", *harder)
    t.mix([shorter_stage(t), None], 1.0)
    joined, real = [], mixing.join
    monkeypatch.setattr(mixing, "join", lambda pieces, order=None: joined.append(pieces) or real(pieces, order))
    batch = next(iter(t.epoch_batches(1)))
    if task == "qrsu":  # (its batches mix lengths by themselves: test_qrsu checks a sequence's score alone)
        assert not joined and min(batch.lengths) <= 8 and max(batch.lengths) >= 30, "easy and normal in one batch"
        return
    assert len(joined[0]) >= 2 and sum(p.inputs.shape[0] for p in joined[0]) == batch.inputs.shape[0]
    torch.manual_seed(0)
    family = model_family(run.model)
    net = family.build(t, family.size(t)).eval()

    def sums(b):
        return {key: float(value) for key, value in t.score(t.forward(net, b, None)[0], b).sums.items()}

    whole, pieces = sums(batch), [sums(piece) for piece in joined[0]]
    for key, value in whole.items():
        assert value == pytest.approx(sum(p[key] for p in pieces), rel=1e-4, abs=1e-4), key
