"""Task-owned decoding for models that write a sequence (an encoder-decoder): teacher forcing in
training, greedy decoding of its own outputs in evaluation, exact match; the engine asks the task."""

import pytest
import torch
from torch import nn

from rnnexp.tasks.base import Batch, Task
from rnnexp.tasks.decoding import exact_match, greedy_decode

C = 10


class NextSymbol(nn.Module):
    """Writes (previous symbol + 1) mod C: what it writes depends on what it reads back."""

    def forward(self, inputs, state=None, decoder_inputs=None, source_lengths=None):
        return nn.functional.one_hot((decoder_inputs + 1) % C, C).float() * 10, state


def batch() -> Batch:
    targets = torch.tensor([[5, 5, 5], [1, 2, 3]])
    decoder_inputs = torch.cat([torch.zeros(2, 1, dtype=torch.long), targets[:, :-1]], dim=1)  # start symbol 0
    return Batch(torch.zeros(2, 4, 1), targets, decoder_inputs=decoder_inputs)


def test_teacher_forcing_reads_the_true_previous_symbols_and_greedy_decoding_its_own():
    b, model = batch(), NextSymbol()
    forced = Task.forward(None, model, b, None)[0].argmax(-1)  # the default forward passes the decoder inputs
    assert forced.tolist() == [[1, 6, 6], [1, 2, 3]]
    greedy = greedy_decode(model, b)[0].argmax(-1)
    assert greedy.tolist() == [[1, 2, 3], [1, 2, 3]]


def test_exact_match_counts_whole_sequences_and_ignores_unscored_steps():
    b = batch()
    logits = greedy_decode(NextSymbol(), b)[0]
    sums = exact_match(logits, b.targets)
    assert (sums["exact"].item(), sums["sequences"].item()) == (1.0, 2.0)
    mask = torch.tensor([[True, False, False], [True, True, True]])  # only the first symbol of sequence 0 scored
    assert exact_match(logits, torch.tensor([[1, 9, 9], [1, 2, 3]]), mask)["exact"].item() == 2.0


def test_a_batch_carries_its_decoder_inputs_to_the_device_and_into_an_example():
    b = batch()
    assert b.to(torch.device("meta")).decoder_inputs.device.type == "meta"
    assert torch.equal(b.first().decoder_inputs, b.decoder_inputs[:1])


def test_the_engine_asks_the_task_to_apply_the_model_in_training_and_to_predict_in_evaluation(run_cfg, tmp_path,
                                                                                             monkeypatch):
    from rnnexp.tasks.qrsu import QRSUTask

    calls = {"forward": 0, "predict": 0}

    def counted(name):
        original = getattr(Task, name)

        def wrapper(self, model, b, state):
            calls[name] += 1
            return original(self, model, b, state)
        return wrapper

    monkeypatch.setattr(QRSUTask, "forward", counted("forward"))
    monkeypatch.setattr(QRSUTask, "predict", lambda self, model, b, state: (calls.__setitem__(
        "predict", calls["predict"] + 1), Task.forward(self, model, b, state))[1])
    run_cfg(tmp_path, "train.epochs=1", "task.train_size=64", "task.val_size=250", "task.test_size=250",
            "train.insight_every=0")
    assert calls == {"forward": 2, "predict": 2}  # 2 training batches of 32; 1 validation + 1 test batch of 250


def test_evaluation_scores_greedy_decoding_and_reports_the_teacher_forced_accuracy_beside_it():
    """Zaremba & Sutskever's 99% is per character with the true previous digit as input; rnnexp
    selects and reports greedy decoding (exact match), and gives the teacher-forced figure too."""
    from rnnexp.tasks.decoding import WritesSequence

    class Writes(WritesSequence, Task):
        symbol_labels = [str(k) for k in range(C)]

    targets = torch.tensor([[1, 5, 6]])  # forced reads 0,1,5 -> writes 1,2,6; greedy reads its own: 1,2,3
    b = Batch(torch.zeros(1, 4, 1), targets, mask=torch.ones(1, 3, dtype=torch.bool),
              decoder_inputs=torch.tensor([[0, 1, 5]]))
    task, model = Writes(), NextSymbol()
    outputs, _ = task.predict(model, b, None)
    metrics = task.metrics({k: float(v) for k, v in task.score(outputs, b).sums.items()})
    assert metrics["accuracy"] == pytest.approx(1 / 3) and metrics["forced_accuracy"] == pytest.approx(2 / 3)
    assert metrics["exact_match"] == 0.0
    trained = task.metrics({k: float(v) for k, v in task.score(task.forward(model, b, None)[0], b).sums.items()})
    assert trained["accuracy"] == pytest.approx(2 / 3) and "forced_accuracy" not in trained  # (what training ran)
    assert task.prediction_text(outputs, b) == "prediction 123, target 156; 1 of 3 symbols right"


def test_nothing_a_greedy_decoder_writes_after_its_own_end_token_counts_as_right():
    """'1$$$' against '101$': one symbol right, not two (the last '$' came after it had ended)."""
    from rnnexp.tasks.decoding import WritesSequence

    class Writes(WritesSequence, Task):
        symbol_labels = [*map(str, range(C - 1)), "$"]

    end = C - 1
    targets = torch.tensor([[1, 0, 1, end]])
    written = nn.functional.one_hot(torch.tensor([[1, end, end, end]]), C).float()
    b = Batch(torch.zeros(1, 4, 1), targets, mask=torch.ones(1, 4, dtype=torch.bool))
    task = Writes()
    metrics = task.metrics({k: float(v) for k, v in task.score((written, written), b).sums.items()})
    assert metrics["accuracy"] == pytest.approx(1 / 4) and metrics["exact_match"] == 0.0
    assert task.prediction_text((written, written), b) == "prediction 1$, target 101$; 1 of 4 symbols right"
