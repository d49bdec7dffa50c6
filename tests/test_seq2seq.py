"""The encoder-decoder family (model=seq2seq) and the reversal task (task=reverse): the data, what the
model reads (never the padding), greedy decoding, attention, teacher forcing, and a run that learns.
(tests/test_contract.py covers the rest: parameter count, budget, exact resume, fixed data.)"""

import json
import math

import pytest
import torch

from rnnexp.errors import ConfigError

SMALL = ["task=reverse", "task.length=6", "task.train_size=640", "task.val_size=200", "task.test_size=200",
         "model.hidden_size=16", "train.insight_every=0"]


def task_and_model(compose_cfg, *overrides):
    from rnnexp.config import load_run_config
    from rnnexp.models.build import build_model
    from rnnexp.tasks import build_task

    run = load_run_config(compose_cfg(*SMALL, *overrides))
    task = build_task(run.task, run.train.batch_size, run.train.seed)
    torch.manual_seed(0)
    return task, build_model(run.model, task).eval()


# -- the task ----------------------------------------------------------------------------------
def test_the_answer_is_the_string_reversed_then_the_end_token(compose_cfg):
    from rnnexp.tasks.reverse import END

    task, _ = task_and_model(compose_cfg)
    batch = next(task.train_batches(1))
    lengths = batch.lengths - 1  # (the source's own end token)
    assert int(lengths.min()) == 3 and int(lengths.max()) == 6, "lengths uniform in [L/2, L]"
    for b in range(batch.inputs.shape[0]):
        n = int(lengths[b])
        string = batch.inputs[b, :n].tolist()
        assert batch.inputs[b, n] == END and max(string) < END
        assert batch.targets[b, :n].tolist() == string[::-1] and batch.targets[b, n] == END
        assert batch.mask[b].tolist() == [True] * (n + 1) + [False] * (batch.mask.shape[1] - n - 1)
        assert batch.decoder_inputs[b, 0] == task.num_classes  # the start symbol
        assert batch.decoder_inputs[b, 1:n + 1].tolist() == batch.targets[b, :n].tolist()  # teacher forcing


def test_longer_test_strings_than_any_trained_on(compose_cfg):
    task, _ = task_and_model(compose_cfg, "task.test_length=9")
    test_lengths = torch.cat([b.lengths - 1 for b in task.eval_batches("test")])
    val_lengths = torch.cat([b.lengths - 1 for b in task.eval_batches("val")])
    assert int(test_lengths.min()) == 7 and int(test_lengths.max()) == 9
    assert int(val_lengths.max()) == 6, "validation stays at the trained lengths"
    with pytest.raises(ConfigError, match="task.test_length=6 is invalid"):
        task_and_model(compose_cfg, "task.test_length=6")


# -- the model ---------------------------------------------------------------------------------
@pytest.mark.parametrize("attention", ["none", "additive", "dot"])
@pytest.mark.parametrize("reverse_source", [False, True])
def test_a_strings_answer_never_depends_on_the_padding_or_the_batch_it_comes_in(compose_cfg, attention, reverse_source):
    task, model = task_and_model(compose_cfg, f"model.attention={attention}", f"model.reverse_source={reverse_source}",
                                 "model.cell=gru")
    batch = next(task.eval_batches("val")).first(8)
    together = task.forward(model, batch, None)[0]
    for b in range(8):
        n = int(batch.lengths[b])
        alone = model(batch.inputs[b:b + 1, :n], None, decoder_inputs=batch.decoder_inputs[b:b + 1],
                      source_lengths=batch.lengths[b:b + 1])[0]
        torch.testing.assert_close(together[b], alone[0], rtol=1e-5, atol=1e-5)


def test_reverse_source_reads_each_string_backwards_within_its_own_length():
    from rnnexp.models.seq2seq_net import reverse_within

    x = torch.tensor([[1, 2, 3, 9, 9], [4, 5, 6, 7, 8]])
    assert reverse_within(x, torch.tensor([3, 5])).tolist() == [[3, 2, 1, 9, 9], [8, 7, 6, 5, 4]]


def test_greedy_decoding_in_one_pass_equals_recomputing_the_prefix(compose_cfg):
    from rnnexp.tasks.decoding import greedy_decode

    task, model = task_and_model(compose_cfg, "model.attention=dot")
    batch = next(task.eval_batches("val")).first(16)
    fast = greedy_decode(model, batch)[0]

    class NoShortcut(torch.nn.Module):  # the same model, decoded by the generic prefix loop
        def __init__(self):
            super().__init__()
            self.inner = model

        def forward(self, *args, **kwargs):
            return self.inner(*args, **kwargs)

    slow = greedy_decode(NoShortcut(), batch)[0]
    torch.testing.assert_close(fast, slow, rtol=1e-5, atol=1e-5)


def test_the_attention_weights_are_a_distribution_over_the_source_steps_only(compose_cfg):
    task, model = task_and_model(compose_cfg, "model.attention=additive")
    batch = next(task.eval_batches("val")).first(8)
    _, weights = model.alignment(batch.inputs, batch.decoder_inputs[:, :1], batch.decoder_inputs.shape[1],
                                 source_lengths=batch.lengths)
    torch.testing.assert_close(weights.sum(-1), torch.ones(weights.shape[:2]))
    for b in range(8):
        assert float(weights[b, :, int(batch.lengths[b]):].abs().sum()) == 0.0, "no weight on padding"
    _, none = task_and_model(compose_cfg, "model.attention=none")
    assert none.alignment(batch.inputs, batch.decoder_inputs[:, :1], 3, source_lengths=batch.lengths)[1] is None


def test_teacher_forcing_below_one_feeds_back_the_models_own_guesses_in_training(compose_cfg):
    task, model = task_and_model(compose_cfg)
    batch = next(task.train_batches(1))
    model.train()
    forced = task.forward(model, batch, None)[0]
    model.teacher_forcing = 0.0
    own = task.forward(model, batch, None)[0]
    greedy = model.greedy(batch.inputs, batch.decoder_inputs[:, :1], batch.decoder_inputs.shape[1], batch.lengths)[0]
    torch.testing.assert_close(own, greedy, rtol=1e-5, atol=1e-5)  # at 0: it reads only its own guesses
    assert not torch.allclose(forced, own), "at 1 it reads the true previous symbols"


def test_scheduled_sampling_goes_linearly_to_its_end_and_is_logged(run_cfg, tmp_path):
    from rnnexp.engine.teacher_forcing import TeacherForcing

    schedule = TeacherForcing(1.0, 0.0, epochs=5)
    assert [schedule.ratio(e) for e in range(1, 6)] == [1.0, 0.75, 0.5, 0.25, 0.0]
    assert TeacherForcing(0.5, None, epochs=5).ratio(4) == 0.5
    result = run_cfg(tmp_path, *SMALL, "train.epochs=3", "train.target_accuracy=null", "train.teacher_forcing_end=0.0")
    assert [h["train/teacher_forcing"] for h in result["history"]] == [1.0, 0.5, 0.0]


def test_a_run_with_scheduled_sampling_stopped_mid_epoch_resumes_exactly(run_cfg, tmp_path, monkeypatch):
    """The sampled inputs come from torch's generator, which checkpoints hold: a resumed run draws the same."""
    from tests.test_reliability import resumed_and_clean

    args = [*SMALL, "train.epochs=2", "train.target_accuracy=null", "train.teacher_forcing=0.5"]
    resumed, clean = resumed_and_clean(run_cfg, tmp_path, monkeypatch, args, look=5)
    assert resumed["history"] == clean["history"] and resumed["test"] == clean["test"]


# -- a run -------------------------------------------------------------------------------------
def test_attention_learns_to_reverse_and_draws_where_it_looked(run_cfg, tmp_path):
    result = run_cfg(tmp_path, "task=reverse", "task.length=6", "task.train_size=3200", "task.val_size=300",
                     "task.test_size=300", "model.hidden_size=32", "train.epochs=6", "train.insight_every=3",
                     "train.target_accuracy=null")
    assert result["objective"]["name"] == "val/exact_match"
    assert result["test"]["test/exact_match"] >= 0.9, result["test"]
    assert result["test"]["test/accuracy"] >= result["test"]["test/exact_match"]
    assert result["baseline"] == {"loss": pytest.approx(math.log(11)), "accuracy": pytest.approx(1 / 11), "exact_match": 0.0}
    assert (tmp_path / "run" / "alignment.png").stat().st_size > 1000


def test_a_trained_models_attention_follows_the_anti_diagonal(run_cfg, tmp_path):
    """The first symbol written is the last one read: reversal's alignment, learned, not built in."""
    from rnnexp.insight.alignment import alignment_of
    from rnnexp.models.load import load_best, model_from_payload
    from rnnexp.config import load_run_config
    from rnnexp.tasks import build_task
    from omegaconf import OmegaConf

    run_cfg(tmp_path, "task=reverse", "task.length=6", "task.train_size=3200", "task.val_size=300",
            "task.test_size=300", "model.hidden_size=32", "train.epochs=6", "train.insight_every=0",
            "train.target_accuracy=null", "model.attention=dot")
    payload = load_best(tmp_path / "run")
    run = load_run_config(OmegaConf.create(payload["config"]))
    task = build_task(run.task, run.train.batch_size, run.train.seed)
    model = model_from_payload(payload, task, torch.device("cpu"))
    example = task.example("123456")
    weights, source, written = alignment_of(model, task, example)
    assert written[:7] == list("654321$") and source == list("123456$")
    looked_at = weights[:6].argmax(-1).tolist()
    assert looked_at == [5, 4, 3, 2, 1, 0], weights.round(2)


# -- refusals ----------------------------------------------------------------------------------
@pytest.mark.parametrize("overrides,message", [
    (["task=qrsu", "model=seq2seq"], "model=seq2seq writes its answer as a sequence, and task=qrsu asks for one answer"),
    (["task=reverse", "model=lstm"], "task=reverse writes its answer as a sequence, and model family recurrent reads no "
                                     "decoder inputs; use a model with a decoder (model=seq2seq)"),
    (["task=qrsu", "train.teacher_forcing=0.5"], "train.teacher_forcing applies to an encoder-decoder's decoder, and "
                                                 "task=qrsu writes no sequence"),
    (["task=execute", "model=lstm", "train.teacher_forcing_end=0"], "train.teacher_forcing_end applies to an "
     "encoder-decoder's decoder, and model family recurrent has no decoder"),
    (["task=reverse", "train.teacher_forcing=2"], "train.teacher_forcing=2.0 is invalid"),
    (["task=reverse", "train.teacher_forcing=1.5"], "train.teacher_forcing=1.5 is invalid"),
    (["task=reverse", "model.attention=global"], "model.attention='global' is invalid: choose one of none, additive, dot"),
    (["task=reverse", "task.min_length=21"], "task.min_length=21 is invalid: use 1 <= min_length <= task.length (20)"),
])
def test_what_cannot_run_is_refused_in_one_line(compose_cfg, overrides, message):
    from rnnexp.config import load_run_config

    with pytest.raises(ConfigError) as info:
        load_run_config(compose_cfg(*overrides))
    assert message in str(info.value) and "\n" not in str(info.value)


def test_the_cli_runs_reversal_and_inspects_it(tmp_path, monkeypatch, capsys):
    from rnnexp.inspect import inspect_run
    from tests.test_cli import run_main

    code, out, err = run_main(monkeypatch, capsys, tmp_path, *SMALL, "train.epochs=1", "train.insight_every=1",
                              "hydra.run.dir=R")
    assert code == 0, err
    assert "test/exact_match=" in out and "seq2seq lstm encoder-decoder" in out
    said = []
    paths = inspect_run(tmp_path / "R", "31415", None, say=said.append)
    assert [p.name for p in paths] == ["alignment.png"] and paths[0].is_file()
    assert said[0].startswith("prediction ") and "target 51413$" in said[0]
    assert json.loads((tmp_path / "R" / "results.json").read_text())["status"] == "completed"


def test_bf16_says_which_layers_of_an_encoder_decoder_run_in_bf16(run_cfg, tmp_path, caplog):
    import logging

    caplog.set_level(logging.INFO)
    run_cfg(tmp_path, *SMALL, "train.epochs=1", "train.precision=bf16")
    said = [r.getMessage() for r in caplog.records if "bf16 autocast" in r.getMessage()]
    assert said and "encoder (lstm)" in said[0] and "decoder (lstm)" in said[0], said


def test_inspect_of_a_model_without_attention_answers_and_says_there_is_no_picture(run_cfg, tmp_path):
    from rnnexp.inspect import inspect_run

    run_cfg(tmp_path, *SMALL, "train.epochs=1", "model.attention=none")
    said = []
    assert inspect_run(tmp_path / "run", "123", None, say=said.append) == []
    assert said[0].startswith("prediction ") and "target 321$" in said[0]
    assert said[1].startswith("no picture: an encoder-decoder without attention")
