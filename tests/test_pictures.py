"""Pictures a teacher can use: every picture says what it shows, a gradient that underflows to 0
is marked (a log axis would drop it), a few huge states do not wash out the colours of the rest,
and a language model's heatmap shows the units that vary most."""

import numpy as np
import torch

from rnnexp.insight.callback import picture_title
from rnnexp.insight.figures import colour_limit, gradients_figure, states_figure, top_units


def test_a_gradient_that_underflows_to_zero_is_marked_not_dropped():
    fig = gradients_figure([1e-2, 1e-5, 0.0, 0.0, 1e-1], list("abcde"))
    ax = fig.axes[0]
    marked = [line for line in ax.lines if "exactly 0" in str(line.get_label())]
    assert len(marked) == 1 and list(marked[0].get_xdata()) == [2, 3]
    assert marked[0].get_label() == "exactly 0 (2 steps: underflow)"
    assert all(y > 0 for y in marked[0].get_ydata())  # drawn on the log axis, at its floor


def test_a_few_huge_states_saturate_instead_of_washing_out_the_rest():
    rng = np.random.default_rng(0)
    values = rng.normal(0, 1, (16, 50))
    values[3, 40:] = 500.0  # an IRNN unit that grows
    limit, beyond = colour_limit(values)
    assert limit < 10 and beyond == 10
    assert colour_limit(rng.normal(0, 1, (16, 50)))[1] == 0  # no outliers: the full range


def test_many_units_show_the_ones_that_vary_most():
    values = np.zeros((512, 20))
    values[[7, 100, 300], :] = np.linspace(-1, 1, 20)
    shown, said = top_units(values, 32)
    assert shown.shape == (32, 20) and said == ", the 32 of 512 units that vary most"
    assert any(np.allclose(row, np.linspace(-1, 1, 20)) for row in shown)
    assert top_units(values[:40], 32)[0].shape == (40, 20)


def test_every_picture_says_what_run_and_when():
    assert picture_title("qrsu-hard / lstm (chrono init)", "epoch 3") == "qrsu-hard / lstm (chrono init), epoch 3"
    fig = states_figure(_replay(), list("abcd"),
                        title=picture_title("qrsu-easy / rnn", "epoch 2"))
    assert fig._suptitle.get_text() == "qrsu-easy / rnn, epoch 2"


def test_the_run_names_its_task_model_and_a_non_default_init(compose_cfg):
    from rnnexp.config import load_run_config
    from rnnexp.run import picture_title as run_title

    assert run_title(load_run_config(compose_cfg("experiment=long_lags", "model=lstm"))) == "qrsu-hard / lstm-chrono"
    assert run_title(load_run_config(compose_cfg("model=gru"))) == "qrsu-easy / gru"


def _replay():
    from rnnexp.models.recurrent_net import RecurrentModel
    from rnnexp.models.replay import replay

    model = RecurrentModel("rnn", 3, 2, 5)
    return replay(model, torch.zeros(1, 4, 3))


def _pictured(scale: float, steps: int = 30, seed: int = 0):
    from rnnexp.insight.drawing import LayerValues, Pictured

    rng = np.random.default_rng(seed)
    gates = {g: rng.random((1, steps, 4)) for g in ("i", "f", "o")}
    layer = LayerValues(scale * rng.standard_normal((1, steps, 4)), scale * rng.standard_normal((1, steps, 4)), gates)
    return Pictured("lstm", [layer], rng.random(steps) * 1e-3, [str(t % 10) for t in range(steps)], True)


def test_a_figure_drawn_again_reuses_its_layout_and_gives_the_same_pixels(monkeypatch):
    """Later pictures of a run reuse the first one's constrained layout (over half of a figure's
    time): the pixels must be those of a figure laid out afresh."""
    from rnnexp.insight import figures as fg
    from rnnexp.insight.drawing import draw

    monkeypatch.setattr(fg, "_LAYOUTS", {})
    first = {name: fg.figure_to_rgb(fig) for name, fig in draw(_pictured(1.0), "epoch 1").items()}
    assert len(fg._LAYOUTS) == 3
    again = draw(_pictured(1.0), "epoch 1")
    pixels = {name: fg.figure_to_rgb(fig) for name, fig in again.items()}
    assert all(fig.get_layout_engine() is None or not isinstance(fig.get_layout_engine(), fg.ConstrainedLayoutEngine)
               for fig in again.values()), "the second drawing was not laid out again"
    for name in first:
        assert np.array_equal(first[name], pixels[name]), name


def test_a_colour_bar_with_other_labels_is_laid_out_afresh(monkeypatch):
    from rnnexp.insight import figures as fg

    monkeypatch.setattr(fg, "_LAYOUTS", {})
    wide, narrow = (fg.states_figure(_pictured(scale), [str(t) for t in range(30)]) for scale in (0.2, 300.0))
    assert wide.rnnexp_layout != narrow.rnnexp_layout
    fg.render(wide)
    fg.render(narrow)
    assert isinstance(narrow.get_layout_engine(), fg.ConstrainedLayoutEngine)


def _with_underflow(pictured, steps):
    pictured.gradients[list(steps)] = 0.0
    return pictured


def test_a_kept_figure_refilled_with_other_values_gives_the_pixels_of_one_built_afresh(monkeypatch):
    """The drawing process keeps its last figures and puts the next epoch's values into them
    (building a figure is a third of its time): what it draws must be what a new figure shows."""
    from rnnexp.insight import figures as fg
    from rnnexp.insight import refill
    from rnnexp.insight.drawing import draw

    pairs = [(_pictured(1.0, seed=4), _pictured(1.0, seed=5)),
             (_with_underflow(_pictured(1.0, seed=6), [0]), _with_underflow(_pictured(1.0, seed=9), [3, 4])),
             (_with_underflow(_pictured(1.0, seed=3), [0]), _with_underflow(_pictured(1.0, seed=7), [7]))]
    for earlier, values in pairs:
        monkeypatch.setattr(fg, "_LAYOUTS", {})
        afresh = {name: fg.figure_to_rgb(fig) for name, fig in draw(values, "epoch 9").items()}
        monkeypatch.setattr(fg, "_LAYOUTS", {})
        monkeypatch.setattr(refill, "_KEPT", {})
        first = draw(earlier, "epoch 1", keep=True)
        for fig in first.values():
            fg.render(fig)
        again = draw(values, "epoch 9", keep=True)
        assert all(again[name] is first[name] for name in first), "not refilled: the test's values changed layout"
        for name, fig in again.items():
            assert np.array_equal(fg.figure_to_rgb(fig), afresh[name]), name


def test_values_that_need_another_layout_get_a_new_figure(monkeypatch):
    """... as does a kept figure whose layout was forgotten (figures.render keeps 64): it is drawn
    without a layout engine, in the positions that layout gave."""
    from rnnexp.insight import figures as fg
    from rnnexp.insight import refill
    from rnnexp.insight.drawing import draw

    def drawn(values, title):
        figures = draw(values, title, keep=True)
        for fig in figures.values():
            fg.render(fig)
        return figures

    monkeypatch.setattr(refill, "_KEPT", {})
    monkeypatch.setattr(fg, "_LAYOUTS", {})
    first = drawn(_pictured(1.0), "epoch 1")
    wider = drawn(_pictured(300.0), "epoch 2")  # other colour-bar labels
    assert wider["states"] is not first["states"] and wider["gates"] is first["gates"]
    longer = drawn(_pictured(1.0, steps=31), "epoch 3")
    assert all(longer[name] is not wider[name] for name in longer)
    fg._LAYOUTS.clear()
    assert all(fig is not longer[name] for name, fig in drawn(_pictured(1.0, steps=31), "epoch 4").items())
