"""rnnexp-compare: several runs of one task in one picture, the same example through each."""

import pytest

from rnnexp import compare as compare_cli
from rnnexp.errors import ConfigError
from tests.test_inspect import command

QUICK = ["task.train_size=64", "train.epochs=2", "train.insight_every=0", "train.target_accuracy=null"]


@pytest.fixture
def runs(run_cfg, tmp_path):
    for model in ("rnn", "lstm"):
        run_cfg(tmp_path, f"model={model}", *QUICK, name=model)
    return tmp_path


def cli(monkeypatch, capsys, *args):
    return command(compare_cli.main, "rnnexp-compare", monkeypatch, capsys, *args)


def test_gradients_of_every_run_on_one_example_against_steps_before_the_readout(runs, monkeypatch):
    import matplotlib.pyplot as plt

    drawn = {}
    monkeypatch.setattr(plt.Figure, "savefig", lambda self, path, **kw: drawn.update(fig=self, path=path))
    out = compare_cli.compare([runs / "rnn", runs / "lstm"], "gradients", "BaXbcYdE", runs / "g.png")
    ax = drawn["fig"].axes[0]
    assert out == runs / "g.png" and ax.get_xlabel() == "steps before the read-out"
    assert [line.get_label() for line in ax.lines] == ["qrsu-easy / rnn", "qrsu-easy / lstm"]
    assert all(len(line.get_xdata()) == 8 for line in ax.lines)  # the 8 steps of BaXbcYdE, for both runs
    assert ax.xaxis_inverted() and list(ax.lines[0].get_xdata())[-1] == 0  # the read-out step is 0


def test_each_run_is_named_by_what_sets_it_apart(runs, run_cfg):
    run_cfg(runs, "model=lstm", *QUICK, "train.seed=7", name="lstm7")
    loaded = [compare_cli.load(runs / name) for name in ("rnn", "lstm", "lstm7")]
    named = compare_cli.labels(loaded)
    assert named[0].startswith("qrsu-easy / rnn (cell=rnn") and named[0].endswith("seed=0)")
    assert named[1].startswith("qrsu-easy / lstm (cell=lstm") and named[1].endswith("seed=0)")
    assert named[2] == named[1].replace("seed=0", "seed=7"), "two seeds of one setting: told apart"
    assert compare_cli.labels(loaded[1:2] * 2) == ["qrsu-easy / lstm [lstm]"] * 2


def test_curves_and_gates_and_the_cli(runs, monkeypatch, capsys):
    code, out, err = cli(monkeypatch, capsys, str(runs / "rnn"), f"run={runs / 'lstm'}", "what=gates",
                         f"out={runs / 'gates.png'}")
    assert code == 0, err
    assert out.strip() == str(runs / "gates.png") and (runs / "gates.png").stat().st_size > 1000
    assert cli(monkeypatch, capsys, str(runs / "rnn"), str(runs / "lstm"), "what=curves",
               f"out={runs / 'curves.png'}")[0] == 0
    code, out, _ = cli(monkeypatch, capsys, "--help")
    assert code == 0 and out.startswith("usage: rnnexp-compare RUN_DIR RUN_DIR...")


def test_runs_of_different_tasks_and_bad_arguments_are_one_line(runs, run_cfg, monkeypatch, capsys):
    run_cfg(runs, "task=echo", "train.epochs=1", "task.series_length=200", "train.insight_every=0", name="echo")
    code, _, err = cli(monkeypatch, capsys, str(runs / "rnn"), str(runs / "echo"))
    assert code == 2 and "these are of echo, qrsu; compare runs of the same task" in err
    assert err.strip().count("\n") == 0
    code, _, err = cli(monkeypatch, capsys, str(runs / "rnn"))
    assert code == 2 and "needs two or more run directories" in err
    with pytest.raises(ConfigError, match="what='colours' is not a picture"):
        compare_cli.parse([str(runs / "rnn"), str(runs / "lstm"), "what=colours"])
