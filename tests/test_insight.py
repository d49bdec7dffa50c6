"""See inside the network: the step-by-step replay, gradients through time, the figures, the
units page and the InsightCallback (rnnexp.models.replay, rnnexp.insight)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from rnnexp.insight import inspect, look, unit_states
from rnnexp.insight.callback import InsightCallback
from rnnexp.insight.figures import figure_to_rgb, gates_figure, gradients_figure, states_figure, tick_positions
from rnnexp.insight.units import best_units, char_properties, units_page
from rnnexp.models.recurrent_net import RecurrentModel
from rnnexp.models.replay import gradients_through_time, replay
from rnnexp.tasks.base import Batch, Example
from rnnexp.tasks.scoring import classification

pytestmark = pytest.mark.filterwarnings("error::RuntimeWarning")  # a swallowed figure failure fails

CELLS = [("rnn", "relu"), ("rnn", "tanh"), ("lstm", "relu"), ("gru", "relu")]


class LastStepTask:
    """A many-to-one task: cross-entropy of the last step's output."""

    streaming = False
    vocab_size = 0

    def score(self, outputs, batch):
        return classification(outputs[:, -1], batch.targets)


class CharTask:
    """A streaming character task: every step predicts the next token."""

    streaming = True

    def __init__(self, vocab_size):
        self.vocab_size = vocab_size

    def score(self, outputs, batch):
        return classification(outputs.reshape(-1, outputs.shape[-1]), batch.targets.reshape(-1))


def make_model(cell, nonlinearity="relu", layers=2, features=5, hidden=7, classes=3, seed=0, **kwargs):
    torch.manual_seed(seed)
    return RecurrentModel(cell, features, classes, hidden, num_layers=layers, dropout=0.3,
                          nonlinearity=nonlinearity, **kwargs)


def bit_example(steps=8, features=5, seed=1):
    g = torch.Generator().manual_seed(seed)
    inputs = torch.randn(1, steps, features, generator=g)
    return Example(Batch(inputs, torch.tensor([1])), [f"s{t}" for t in range(steps)])


# -- replay ----------------------------------------------------------------------------------

@pytest.mark.parametrize("cell,nonlinearity", CELLS)
def test_replay_reproduces_the_fused_forward(cell, nonlinearity):
    model = make_model(cell, nonlinearity).eval()
    inputs = torch.randn(3, 15, 5, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        fused, fused_state = model(inputs)
        rep = replay(model, inputs)
        top, _ = model.rnn(inputs)
    torch.testing.assert_close(rep.outputs, fused, atol=1e-5, rtol=0)
    torch.testing.assert_close(rep.last.h, top, atol=1e-5, rtol=0)
    for got, want in zip(rep.state if cell == "lstm" else (rep.state,),
                         fused_state if cell == "lstm" else (fused_state,)):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
    assert len(rep.layers) == 2 and rep.layers[0].h.shape == (3, 15, 7)
    assert set(rep.last.gates) == {"rnn": set(), "lstm": set("ifgo"), "gru": set("rzn")}[cell]


@pytest.mark.parametrize("cell,nonlinearity", CELLS)
def test_replay_from_an_initial_state(cell, nonlinearity):
    model = make_model(cell, nonlinearity).eval()
    g = torch.Generator().manual_seed(3)
    inputs = torch.randn(2, 9, 5, generator=g)
    h0 = torch.randn(2, 2, 7, generator=g)
    state = (h0, torch.randn(2, 2, 7, generator=g)) if cell == "lstm" else h0
    with torch.no_grad():
        fused, _ = model(inputs, state)
        zero_start, _ = model(inputs)
        rep = replay(model, inputs, state)
    assert (fused - zero_start).abs().max() > 1e-3  # the state matters, so the check means something
    torch.testing.assert_close(rep.outputs, fused, atol=1e-5, rtol=0)


def test_replay_of_token_ids_and_the_models_mode_is_kept():
    model = make_model("gru", vocab_size=11, features=0).train()
    ids = torch.randint(0, 11, (2, 12), generator=torch.Generator().manual_seed(4))
    rep = replay(model, ids)
    assert model.training  # the replay never switches modes
    with torch.no_grad():
        fused, _ = model.eval()(ids)
    torch.testing.assert_close(rep.outputs.detach(), fused, atol=1e-5, rtol=0)


def test_lstm_gates_recombine_into_the_cell_state():
    model = make_model("lstm", layers=1).eval()
    with torch.no_grad():
        rep = replay(model, torch.randn(2, 10, 5, generator=torch.Generator().manual_seed(5)))
    layer = rep.last
    i, f, g, o = (layer.gates[k] for k in "ifgo")
    previous = torch.cat([torch.zeros_like(layer.c[:, :1]), layer.c[:, :-1]], dim=1)
    torch.testing.assert_close(layer.c, f * previous + i * g, atol=1e-6, rtol=0)
    torch.testing.assert_close(layer.h, o * torch.tanh(layer.c), atol=1e-6, rtol=0)
    assert ((i > 0) & (i < 1)).all() and (g.abs() < 1).all()  # sigmoid / tanh, after activation


def test_gru_candidate_has_the_hidden_bias_inside_the_reset_gate():
    model = make_model("gru", layers=1).eval()
    with torch.no_grad():
        model.rnn.bias_hh_l0[14:].fill_(2.0)  # b_hn: only where it sits tells the two forms apart
        inputs = torch.randn(1, 6, 5, generator=torch.Generator().manual_seed(6))
        fused, _ = model(inputs)
        rep = replay(model, inputs)
    torch.testing.assert_close(rep.outputs, fused, atol=1e-5, rtol=0)


# -- gradients through time ------------------------------------------------------------------

def vanishing_relu_model(steps_hidden=6):
    """A ReLU RNN whose units all stay active (positive inputs, weights, biases) and whose
    recurrent matrix is 0.3 I: d loss / d h_t shrinks by exactly 0.3 per step back."""
    model = RecurrentModel("rnn", 3, 2, steps_hidden, num_layers=1, nonlinearity="relu")
    with torch.no_grad():
        model.rnn.weight_hh_l0.copy_(0.3 * torch.eye(steps_hidden))
        model.rnn.weight_ih_l0.fill_(0.5)
        model.rnn.bias_ih_l0.fill_(0.1)
        model.rnn.bias_hh_l0.fill_(0.1)
    return model


def test_gradients_through_time_vanish_with_distance_from_the_readout():
    model = vanishing_relu_model()
    steps = 31
    example = Example(Batch(torch.rand(1, steps, 3, generator=torch.Generator().manual_seed(7)) + 0.1,
                            torch.tensor([0])), ["x"] * steps)
    norms = gradients_through_time(model, LastStepTask(), example)
    assert norms.shape == (steps,)
    assert (norms > 0).all()
    assert (norms[:-1] < norms[1:]).all()  # strictly smaller the further from the readout
    assert norms[0] < norms[-1] / 100
    torch.testing.assert_close(norms[:-1] / norms[1:], torch.full((steps - 1,), 0.3), rtol=1e-3, atol=0)
    assert all(p.grad is None for p in model.parameters())  # nothing leaks into the training grads


def test_gradients_through_time_of_a_streaming_loss_reach_every_step():
    model = make_model("lstm", features=0, vocab_size=6, classes=6)
    ids = torch.randint(0, 6, (1, 10), generator=torch.Generator().manual_seed(8))
    norms = gradients_through_time(model, CharTask(6), Batch(ids, torch.roll(ids, -1, 1), reset=True))
    assert (norms > 0).all() and torch.isfinite(norms).all()
    assert model.training and all(p.grad is None for p in model.parameters())


# -- figures ---------------------------------------------------------------------------------

def tick_texts(ax):
    return [t.get_text() for t in ax.get_xticklabels()]


def test_figures_carry_the_labels_on_the_time_axis():
    model = make_model("lstm", layers=2).eval()
    example = Example(Batch(torch.randn(1, 6, 5), torch.tensor([0])), ["B", "a", "X", " ", "\n", "E"])
    insight = look(model, LastStepTask(), example)
    shown = ["B", "a", "X", "␣", "↵", "E"]
    states = states_figure(insight.replay, insight.labels)
    heatmaps = [ax for ax in states.axes if ax.images]
    assert len(heatmaps) == 4  # h and c of each of the two layers
    assert all(tick_texts(ax) == shown for ax in heatmaps)
    assert all(ax.images[0].get_cmap().name == "RdBu_r" for ax in heatmaps)
    for ax in heatmaps:  # centred on 0
        low, high = ax.images[0].get_clim()
        assert low == pytest.approx(-high) and high > 0
    assert heatmaps[0].images[0].get_array().shape == (7, 6)  # every unit x every step
    grads = gradients_figure(insight.gradients, insight.labels)
    assert tick_texts(grads.axes[0]) == shown and grads.axes[0].get_yscale() == "log"
    gates = gates_figure(insight.replay, insight.labels)
    assert tick_texts(gates.axes[0]) == shown
    assert [line.get_label() for line in gates.axes[0].get_lines()] == ["input i", "forget f", "output o"]
    assert gates_figure(replay(make_model("rnn").eval(), torch.randn(1, 6, 5)), shown) is None


def test_long_sequences_get_thinned_tick_labels():
    steps = 300
    words = [f"w{t}" for t in range(steps)]
    texts = tick_texts(gradients_figure(torch.rand(steps) + 0.1, words).axes[0])
    assert texts == [f"w{t}" for t in range(0, steps, 8)]  # at most 40, every 8th
    chars = [chr(ord("a") + t % 26) for t in range(steps)]
    texts = tick_texts(gradients_figure(torch.rand(steps) + 0.1, chars).axes[0])
    assert texts == [chars[t] for t in range(0, steps, 3)]  # single characters: up to 100
    assert tick_positions(20) == list(range(20))
    qrsu = ["B"] + ["abcd"[t % 4] for t in range(1, 104)] + ["E"]
    qrsu[13], qrsu[55] = "X", "Y"  # odd positions: a thinning to every 2nd step would skip them
    texts = tick_texts(gradients_figure(torch.rand(len(qrsu)) + 0.1, qrsu).axes[0])
    assert "X" in texts and "Y" in texts and texts[0] == "B" and texts[-1] == "E", "the symbols that matter"


def test_figures_render_to_pixels():
    model = make_model("gru").eval()
    insight = look(model, LastStepTask(), bit_example())
    for fig in (states_figure(insight.replay, insight.labels), gates_figure(insight.replay, insight.labels)):
        pixels = figure_to_rgb(fig)
        assert pixels.dtype == np.uint8 and pixels.ndim == 3 and pixels.shape[2] == 3
        assert pixels.std() > 0


# -- units -----------------------------------------------------------------------------------

PASSAGE = ('He said "go <now> & fast" and (left) it.\nThe "end" of <b>it</b>; '
           'she said "yes" then (stopped).\n' * 3)


def test_units_find_a_planted_quote_unit_and_escape_html():
    g = np.random.default_rng(0)
    quotes = char_properties(PASSAGE)["inside quotes"]
    assert quotes.sum() > 10 and quotes[PASSAGE.index('"go') + 1] == 1 and quotes[0] == 0
    states = g.normal(size=(len(PASSAGE), 24))
    states[:, 13] = quotes + 0.3 * g.normal(size=len(PASSAGE))
    found = {name: (unit, r) for name, unit, r in best_units(states, PASSAGE)}
    assert found["inside quotes"][0] == 13 and found["inside quotes"][1] > 0.7
    page, listed = units_page(PASSAGE, states)
    assert ("inside quotes", 13, pytest.approx(found["inside quotes"][1])) in [(n, u, r) for n, u, r in listed]
    assert "inside quotes: unit 13" in page
    for raw, escaped in (("<", "&lt;"), (">", "&gt;"), ("&", "&amp;"), ('"', "&quot;")):  # escaped
        assert f">{raw}</span>" not in page and f">{escaped}</span>" in page
    assert "<b>" not in page
    assert page.count('<div class="passage">') == len(listed)


def test_units_skip_properties_absent_from_the_passage():
    text = "plain words only\n" * 4
    found = [name for name, _, _ in best_units(np.random.default_rng(1).normal(size=(len(text), 5)), text)]
    assert "inside quotes" not in found and "inside brackets" not in found and "inside a word" in found


# -- the callback ----------------------------------------------------------------------------

def fake_engine(model, task):
    return SimpleNamespace(model=model, task=task, device=torch.device("cpu"), state=SimpleNamespace(epoch=1))


def run_epochs(callback, engine, epochs):
    for epoch in range(1, epochs + 1):
        engine.state.epoch = epoch
        callback.on_epoch_end(engine, {"epoch": epoch, "val/accuracy": 0.5})
    callback.on_fit_end(engine)


def test_callback_writes_tensorboard_images_at_the_expected_epochs_and_pngs_at_the_end(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from torch.utils.tensorboard import SummaryWriter

    model = make_model("lstm").train()
    writer = SummaryWriter(log_dir=str(tmp_path / "tb"))
    callback = InsightCallback(writer, tmp_path / "run", every_epochs=3, example=bit_example())
    before = [p.detach().clone() for p in model.parameters()]
    run_epochs(callback, fake_engine(model, LastStepTask()), 7)
    writer.close()
    events = EventAccumulator(str(tmp_path / "tb"), size_guidance={"images": 0, "scalars": 0}).Reload()
    for tag in ("insight/states", "insight/gradients_through_time", "insight/gates"):
        assert [image.step for image in events.Images(tag)] == [1, 3, 6]
        assert events.Images(tag)[0].width > 100
    assert [s.step for s in events.Scalars("insight/grad_norm_h_last")] == [1, 3, 6]
    assert "insight/closed_f" in events.Tags()["scalars"]
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == \
        ["gates.png", "gradients_through_time.png", "states.png"]
    assert (tmp_path / "run" / "states.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert model.training  # the mode is kept, weights and grads untouched
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.parametrize("last", [4, 3])
def test_the_last_epochs_pictures_are_the_files_drawn_once(tmp_path, monkeypatch, last):
    """The last epoch's TensorBoard pictures show the final model: the run's PNG files are the same
    drawing (issue 20: drawn twice, a short run waited ~0.4 s more at its end). A last epoch with no
    TensorBoard pictures due still gets its files."""
    from torch.utils.tensorboard import SummaryWriter

    from rnnexp.insight import drawing

    titles, draw = [], drawing.draw
    monkeypatch.setattr(drawing, "draw", lambda values, title=None, keep=False: titles.append(title) or draw(values, title, keep))
    engine = fake_engine(make_model("lstm"), LastStepTask())
    with SummaryWriter(log_dir=str(tmp_path / "tb")) as writer:
        callback = InsightCallback(writer, tmp_path / "run", every_epochs=2, example=bit_example(), background=False)
        for epoch in range(1, last + 1):
            engine.state.epoch, engine.finished = epoch, epoch == last
            callback.on_epoch_end(engine, {"epoch": epoch})
        callback.on_fit_end(engine)
    due = ["epoch 1", "epoch 2"] + (["final model, after epoch 4"] if last == 4 else [])
    assert titles == due + ([] if last == 4 else ["final model, after epoch 3"])
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == \
        ["gates.png", "gradients_through_time.png", "states.png"]
    if last == 4:  # TensorBoard's image at epoch 4 is the file, encoded once
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

        events = EventAccumulator(str(tmp_path / "tb"), size_guidance={"images": 0}).Reload()
        assert [image.step for image in events.Images("insight/states")] == [1, 2, 4]
        assert events.Images("insight/states")[-1].encoded_image_string == (tmp_path / "run" / "states.png").read_bytes()


def test_callback_off_and_without_a_writer(tmp_path):
    model = make_model("rnn").eval()
    run_epochs(InsightCallback(None, tmp_path / "off", every_epochs=0, example=bit_example()),
               fake_engine(model, LastStepTask()), 2)
    assert not (tmp_path / "off").exists()
    run_epochs(InsightCallback(None, tmp_path / "pngs", every_epochs=5, example=bit_example()),
               fake_engine(model, LastStepTask()), 2)
    assert sorted(p.name for p in (tmp_path / "pngs").iterdir()) == ["gradients_through_time.png", "states.png"]
    assert not model.training


def test_callback_leaves_the_global_rng_alone(tmp_path):
    from torch.utils.tensorboard import SummaryWriter

    model = make_model("gru", features=0, vocab_size=9, classes=9).train()
    ids = torch.randint(0, 9, (1, 20), generator=torch.Generator().manual_seed(9))
    example = Example(Batch(ids, torch.roll(ids, -1, 1)), [chr(ord("a") + int(i)) for i in ids[0]])
    torch.manual_seed(1234)
    state = torch.get_rng_state()
    with SummaryWriter(log_dir=str(tmp_path / "tb")) as writer:
        run_epochs(InsightCallback(writer, tmp_path / "run", every_epochs=1, example=example),
                   fake_engine(model, CharTask(9)), 2)
    assert torch.equal(torch.get_rng_state(), state)
    assert (tmp_path / "run" / "units.html").read_text().startswith("<!DOCTYPE html>")


def test_inspect_writes_the_pictures_of_one_example(tmp_path):
    text = 'a "b" (c)\nab "c"\n'
    vocab = sorted(set(text))
    model = make_model("lstm", features=0, vocab_size=len(vocab), classes=len(vocab), layers=1).eval()
    ids = torch.tensor([[vocab.index(ch) for ch in text]])
    example = Example(Batch(ids, torch.roll(ids, -1, 1)), list(text))
    written = inspect(model, CharTask(len(vocab)), example, tmp_path / "inspect")
    assert sorted(p.name for p in written) == ["gates.png", "gradients_through_time.png", "states.png", "units.html"]
    assert all(p.stat().st_size > 0 for p in written)
    page = (tmp_path / "inspect" / "units.html").read_text()
    assert "inside quotes: " in page and "position in the line: " in page
    states, names = unit_states(look(model, CharTask(len(vocab)), example).replay)
    assert states.shape == (len(text), 14) and names[0] == "h 0" and names[7] == "c 0"  # c units too


def test_a_qrsu_example_through_inspect(tmp_path, compose_cfg):
    from rnnexp.config import typed
    from rnnexp.tasks.qrsu import SYMBOLS, QRSUConfig, QRSUTask

    cfg = typed(QRSUConfig, compose_cfg("task=qrsu", "task.train_size=8", "task.val_size=8",
                                        "task.test_size=8").task, "task")
    task = QRSUTask(cfg, 8, seed=0)
    example = task.example()
    steps = example.batch.inputs.shape[1]
    assert len(example.labels) == steps and example.labels[0] == "B" and example.labels[-1] == "E"
    assert set(example.labels) <= set(SYMBOLS)
    model = RecurrentModel("lstm", task.input_size, task.num_classes, 4).eval()
    written = inspect(model, task, example, tmp_path / "qrsu")
    assert sorted(p.name for p in written) == ["gates.png", "gradients_through_time.png", "states.png"]
    insight = look(model, task, task.example("BaXbcYdE"))
    assert insight.labels == list("BaXbcYdE") and insight.readout_at_end
    assert tick_texts(states_figure(insight.replay, insight.labels).axes[0]) == list("BaXbcYdE")
    assert insight.gradients.shape == (8,) and (insight.gradients > 0).all()


def test_the_drawing_process_is_started_before_training(run_cfg, tmp_path, monkeypatch):
    """Started with the run, it imports while the engine is built: a short run does not wait at its
    end for the drawing process's own start-up."""
    from rnnexp.engine.loop import Engine
    from rnnexp.insight import drawing

    monkeypatch.setattr("rnnexp.run.available_cores", lambda: 2)  # one training thread leaves a core free
    pools: dict = {}
    monkeypatch.setattr(drawing, "_POOL", pools)
    at_fit_start = []
    fit = Engine.fit
    monkeypatch.setattr(Engine, "fit", lambda self, *a, **k: at_fit_start.append(dict(pools)) or fit(self, *a, **k))
    try:
        run_cfg(tmp_path, "task=qrsu", "model=lstm", "train.epochs=2", "train.insight_every=1")
    finally:
        if "pool" in pools:
            pools["pool"].shutdown()
    assert at_fit_start and "pool" in at_fit_start[0]
    assert (tmp_path / "run" / "states.png").is_file()
