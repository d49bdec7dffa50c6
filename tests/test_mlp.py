"""What is specific to the time-blind MLP (`model=mlp`; the contract test trains and resumes it on
every task): it sees the last `window` steps and nothing older, across chunks too; it solves echo
within its window and not beyond; and what it is not (a recurrent model) is said in one line."""

import logging

import pytest
import torch

from rnnexp.models.family import model_family, options_of
from tests.test_cli import run_main


def network(compose_cfg, *overrides):
    from rnnexp.config import load_run_config
    from rnnexp.tasks import build_task

    run = load_run_config(compose_cfg("model=mlp", *overrides))
    task = build_task(run.task, run.train.batch_size, 0)
    family = model_family(run.model)
    return family.build(task, family.size(task)).eval(), task


def test_it_sees_the_last_window_steps_and_nothing_older_also_across_chunks(compose_cfg):
    model, _ = network(compose_cfg, "task=echo", "model.window=4", "model.hidden_size=8")
    x = torch.randint(0, 2, (1, 12, 1)).float()
    changed = x.clone()
    changed[0, 3] = 1 - changed[0, 3]  # step 3 is in view at steps 3..6 only
    with torch.no_grad():
        differs = (model(x)[0] != model(changed)[0]).any(-1)[0]
        assert differs.nonzero().flatten().tolist() == [3, 4, 5, 6]
        whole = model(x)[0]
        first, state = model(x[:, :5])
        second, _ = model(x[:, 5:], state)
    assert torch.allclose(torch.cat([first, second], 1), whole), "a stream cut into chunks is seen the same"


def test_a_null_window_is_the_tasks_whole_sequence(compose_cfg):
    model, task = network(compose_cfg, "model.window=null", "task=parity", "task.length=12")
    assert model.window == 12 == task.max_length()


def test_it_solves_echo_within_its_window_and_stays_at_chance_beyond(run_cfg, tmp_path):
    common = ["task=echo", "model=mlp", "model.window=6", "model.hidden_size=16", "train.epochs=2",
              "task.series_length=2000"]
    within = run_cfg(tmp_path, *common, "task.delay=4", name="within")
    beyond = run_cfg(tmp_path, *common, "task.delay=8", name="beyond")
    assert within["test"]["test/accuracy"] > 0.99 and beyond["test"]["test/accuracy"] < 0.55
    assert within["model"] == "mlp" and within["window"] == 6


@pytest.mark.parametrize("args, expected", [
    (["model=mlp", "model.weight_drop=0.2"],
     "model.weight_drop does not apply to model=mlp (model family mlp); it is a key of the recurrent family"),
    (["model=mlp", "experiment=long_lags"], "and model family mlp has no cells; use the preset with model="
     + "|".join(options_of("recurrent"))),
    (["model=mlp", "task=echo", "model.window=null"], "task=echo is a stream without one; set model.window"),
    (["model=mlp", "model.window=abc"], "rnnexp: error: model.window: Value 'abc'"),  # one model. prefix
])
def test_what_does_not_apply_is_one_line(args, expected, monkeypatch, capsys, tmp_path):
    code, _, err = run_main(monkeypatch, capsys, tmp_path, *args)
    assert code == 2 and expected in err and len(err.strip().splitlines()) == 1
    assert "model.model." not in err


def test_the_start_says_what_it_lacks_and_inspect_says_it_in_one_line(run_cfg, tmp_path, caplog):
    from rnnexp.errors import ConfigError
    from rnnexp.inspect import inspect_run

    caplog.set_level(logging.INFO)  # (not whatever an earlier test's Hydra logging left)
    run_cfg(tmp_path, "model=mlp", "train.epochs=1", "task.train_size=64")
    said = [r.getMessage() for r in caplog.records if r.getMessage().startswith("model family mlp:")]
    assert said == ["model family mlp: no CUDA graph (eager steps on a GPU); no pictures of states, gradients "
                    "through time or gates (no step-by-step replay)"]
    assert not list((tmp_path / "run").glob("*.png"))
    with pytest.raises(ConfigError, match="is a model of family mlp with neither; inspect a run of model=gru"):
        inspect_run(tmp_path / "run", None, None)
