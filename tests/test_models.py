"""The model factory, parameter counts, budgets and the carried state."""

import pytest
import torch
from torch import nn

from rnnexp.errors import ConfigError
from rnnexp.models.build import count_parameters
from rnnexp.models.family import size_for_budget
from rnnexp.models.recurrent import parameter_count
from rnnexp.models.family import carry_hidden_state
from rnnexp.models.recurrent_net import RecurrentModel, make_recurrent_layer


def test_factory_builds_torch_layers_and_rejects_unknown_names():
    assert isinstance(make_recurrent_layer("lstm", 8, 4), nn.LSTM)
    assert isinstance(make_recurrent_layer("gru", 8, 4), nn.GRU)
    rnn = make_recurrent_layer("rnn", 8, 4, nonlinearity="relu")
    assert isinstance(rnn, nn.RNN) and rnn.nonlinearity == "relu"
    with pytest.raises(ConfigError, match="choose one of rnn, gru, lstm"):
        make_recurrent_layer("lstmm", 8, 4)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("layers,vocab", [(1, 0), (2, 0), (2, 65)])
def test_parameter_count_formula_matches_torch(cell, layers, vocab):
    for hidden in (1, 4, 33):
        model = RecurrentModel(cell, 8, 4, hidden, num_layers=layers, vocab_size=vocab)
        assert count_parameters(model) == parameter_count(cell, 8, 4, hidden, layers, vocab)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("layers", [1, 2])
def test_a_tied_matrix_counts_once_also_in_a_budget(cell, layers):
    for hidden in (4, 33):
        model = RecurrentModel(cell, 0, 65, hidden, num_layers=layers, vocab_size=65, tie_weights=True)
        assert count_parameters(model) == parameter_count(cell, 0, 65, hidden, layers, 65, tie_weights=True)
    hidden = size_for_budget(200_000, lambda h: parameter_count(cell, 0, 65, h, layers, 65, tie_weights=True))
    tied = RecurrentModel(cell, 0, 65, hidden, num_layers=layers, vocab_size=65, tie_weights=True)
    assert abs(count_parameters(tied) - 200_000) / 200_000 < 0.02


CHARLM_MODELS = [["experiment=charlm_gpu"], ["experiment=charlm_cpu"], ["experiment=charlm_quick"],
                 ["experiment=lecture_charlm"], *[[f"model={cell}", f"model.tie_weights={tied}", "model.embedding_size=null",
                                                    "model.hidden_size=256"]
                                                   for cell in ("rnn", "lstm", "gru") for tied in ("true", "false")]]


@pytest.mark.parametrize("overrides", CHARLM_MODELS, ids=lambda o: " ".join(o))
def test_every_character_model_starts_at_the_chance_loss(compose_cfg, overrides):
    """Before: a tied output layer reused nn.Embedding's N(0, 1) weights: 8.75 nats against ln V = 4.56."""
    import math

    from rnnexp.config import load_run_config
    from rnnexp.models.build import build_model
    from rnnexp.tasks import build_task

    run = load_run_config(compose_cfg("task=charlm", *overrides, "task.corpus=python_reference", "train.device=cpu"))
    torch.manual_seed(0)
    task = build_task(run.task, 8, 0)
    model = build_model(run.model, task).eval()
    batch = next(iter(task.train_batches(1)))
    with torch.no_grad():
        loss = task.score(model(batch.inputs)[0], batch).loss.item()
    assert abs(loss - math.log(task.vocab_size)) < 0.1 * math.log(task.vocab_size), loss


def test_an_lstm_has_four_times_the_recurrent_weights_of_an_rnn():
    rnn, lstm = make_recurrent_layer("rnn", 8, 4), make_recurrent_layer("lstm", 8, 4)
    assert count_parameters(lstm) == 4 * count_parameters(rnn)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("budget", [1_000, 20_000, 500_000])
def test_param_budget_sizes_the_hidden_layer(cell, budget):
    hidden = size_for_budget(budget, lambda h: parameter_count(cell, 8, 4, h))
    actual = count_parameters(RecurrentModel(cell, 8, 4, hidden))
    assert abs(actual - budget) / budget < 0.05
    assert abs(actual - budget) <= abs(parameter_count(cell, 8, 4, hidden + 1) - budget)
    assert abs(actual - budget) <= abs(parameter_count(cell, 8, 4, hidden - 1) - budget)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_carry_hidden_state_keeps_values_and_drops_history(cell):
    model = RecurrentModel(cell, 1, 2, 3)
    _, state = model(torch.randn(2, 5, 1))
    carried = carry_hidden_state(state)
    pairs = zip(state, carried) if isinstance(state, tuple) else [(state, carried)]
    for before, after in pairs:
        assert before.grad_fn is not None
        assert after.grad_fn is None and not after.requires_grad
        assert torch.equal(before, after)
    assert carry_hidden_state(None) is None


# -- the model-family framework ----------------------------------------------------------------
def test_a_family_that_keeps_the_default_hparams_runs(run_cfg, tmp_path, monkeypatch):
    from rnnexp import run as run_module
    from rnnexp.models.family import ModelFamily
    from rnnexp.models.mlp import MLP

    class Plain(MLP):  # (no `name`: not registered)
        hparams = ModelFamily.hparams  # {"model": its label, **size}

    monkeypatch.setattr(run_module, "model_family", lambda cfg: Plain(cfg))
    res = run_cfg(tmp_path, "model=mlp", "train.epochs=1", "task.train_size=64", "train.insight_every=0")
    assert res["status"] == "completed" and res["model"] == "mlp" and res["window"] == 10


def test_an_option_file_without_a_family_is_recurrent_and_an_unknown_family_is_one_line(compose_cfg):
    from rnnexp.config import load_run_config
    from rnnexp.errors import ConfigError

    assert load_run_config(compose_cfg("model=gru", "~model.family")).model.cell == "gru"
    with pytest.raises(ConfigError, match="model.family='load' is unknown; choose one of mlp, recurrent"):
        load_run_config(compose_cfg("model.family=load"))  # a module of the package, not a family


def test_a_task_that_decodes_needs_a_family_with_a_decoder(compose_cfg, monkeypatch):
    from rnnexp.config import load_run_config
    from rnnexp.errors import ConfigError
    from rnnexp.tasks.qrsu import QRSUTask

    monkeypatch.setattr(QRSUTask, "decodes", True)
    with pytest.raises(ConfigError, match="task=qrsu writes its answer as a sequence, and model family recurrent "
                                          "reads no decoder inputs; use a model with a decoder"):
        load_run_config(compose_cfg("model=lstm"))


def test_resume_compares_the_model_option_by_family_and_cell_not_by_label(run_cfg, tmp_path):
    from rnnexp.errors import RunDirError

    run_cfg(tmp_path, "model=lstm", "model.label=mine", "train.epochs=1", "task.train_size=64",
            "train.target_accuracy=null", "train.insight_every=0")
    resumed = run_cfg(tmp_path, "model=lstm", f"train.resume={tmp_path / 'run'}", "train.epochs=2")
    assert resumed["status"] == "completed" and resumed["epochs_run"] == 2 and resumed["model"] == "mine"
    with pytest.raises(RunDirError, match="model.cell: 'lstm' -> 'gru'"):
        run_cfg(tmp_path, "model=gru", f"train.resume={tmp_path / 'run'}", "train.epochs=3")
