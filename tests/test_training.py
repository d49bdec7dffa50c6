"""The training loop end to end, in-process: every model type, determinism, learning, outputs."""

import json

import pytest
import torch

from rnnexp.config import load_run_config
from rnnexp.errors import ConfigError


@pytest.mark.parametrize("task", ["qrsu", "echo"])
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_one_epoch_per_model_type(run_cfg, tmp_path, task, cell):
    extra = ["task.series_length=400", "task.val_length=200"] if task == "echo" else []
    res = run_cfg(tmp_path, f"task={task}", f"model={cell}", "train.epochs=1", *extra)
    assert res["status"] == "completed" and res["epochs_run"] == 1 and res["cell"] == cell
    assert len(res["history"]) == 1
    h = res["history"][0]
    assert 0 <= h["val/accuracy"] <= 1 and h["train/loss"] > 0
    for name in ("checkpoint.pt", "best.pt", "results.json"):
        assert (tmp_path / "run" / name).is_file()
    assert list((tmp_path / "run").glob("events.out.tfevents.*"))


def test_same_seed_same_metrics_other_seed_other_metrics(run_cfg, tmp_path):
    args = ["model=lstm", "train.epochs=3", "train.target_accuracy=null"]
    a = run_cfg(tmp_path, *args, "train.seed=7", name="a")
    b = run_cfg(tmp_path, *args, "train.seed=7", name="b")
    c = run_cfg(tmp_path, *args, "train.seed=8", name="c")
    strip = lambda r: [{k: v for k, v in h.items() if "second" not in k} for h in r["history"]]
    assert strip(a) == strip(b)
    assert strip(a) != strip(c)


def test_lstm_learns_easy_qrsu_and_stops_at_the_target(run_cfg, tmp_path):
    res = run_cfg(tmp_path, "model=lstm", "train.epochs=80", "train.seed=0")
    assert res["target_epoch"] is not None and res["final"]["val/accuracy"] == 1.0
    assert res["epochs_run"] == res["target_epoch"] < 80
    assert res["history"][0]["val/accuracy"] < 0.7, "it starts near chance and learns"
    assert res["objective"] == {"name": "val/accuracy", "direction": "max", "value": 1.0}


def test_results_file_has_what_a_summary_needs(run_cfg, tmp_path):
    res = run_cfg(tmp_path, "model=gru", "model.hidden_size=6", "train.epochs=2", "train.target_accuracy=null")
    for key in ("status", "epochs_run", "target_epoch", "train_seconds", "wall_seconds", "parameters",
                "threads", "device", "final", "best", "objective", "history", "hidden_size"):
        assert key in res
    assert res["parameters"] == 3 * 6 * (8 + 6 + 2) + 6 * 4 + 4
    assert [h["epoch"] for h in res["history"]] == [1, 2]
    assert json.loads((tmp_path / "run" / "results.json").read_text()) == res


def test_gradient_clipping_and_every_optimizer_run(run_cfg, tmp_path):
    for opt in ("adam", "sgd", "rmsprop"):
        res = run_cfg(tmp_path, f"train.optimizer={opt}", "train.grad_clip=0.5", "train.epochs=1", name=opt)
        assert res["status"] == "completed"


@pytest.mark.parametrize("override,key", [
    ("model.hidden_size=-3", "model.hidden_size"), ("train.epochs=0", "train.epochs"),
    ("train.lr=abc", "train.lr"), ("task.difficulty=impossible", "task.difficulty"),
    ("model.dropout=1.0", "model.dropout"), ("train.optimizer=lbfgs", "train.optimizer"),
    ("train.threads=zero", "train.threads"), ("model.init=identity", "model.init"),
    ("task.t2=[2,3]", "task.t2"), ("train.batch_size=0", "train.batch_size"),
])
def test_bad_values_name_the_key(compose_cfg, override, key):
    extra = ["model=gru"] if key == "model.init" else []
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")) as info:
        load_run_config(compose_cfg(override, *extra))
    assert "\n" not in str(info.value)


def test_threads_auto_gives_small_models_one_thread_and_parallel_jobs_a_share():
    from omegaconf import OmegaConf

    from rnnexp.engine.threads import SMALL_MODEL_PARAMS, available_cores, choose_threads, parallel_jobs

    cpu = torch.device("cpu")
    assert choose_threads("auto", SMALL_MODEL_PARAMS - 1, cpu)[0] == 1
    assert choose_threads("auto", SMALL_MODEL_PARAMS, cpu, busy_elsewhere=0.0)[0] == available_cores()
    # A large model leaves alone the cores other processes keep busy (at least one thread).
    cores = available_cores()
    assert choose_threads("auto", 10**7, cpu, busy_elsewhere=1.0)[0] == max(1, cores - 1)
    assert choose_threads("auto", 10**7, cpu, busy_elsewhere=float(cores))[0] == 1
    assert choose_threads("auto", 10**7, cpu, parallel_jobs=available_cores())[0] == 1
    assert choose_threads("3", 244, cpu) == (3, "set by train.threads")
    assert parallel_jobs(OmegaConf.create({"n_jobs": 2})) == 2
    assert parallel_jobs(OmegaConf.create({"n_jobs": -1})) == available_cores()
    assert parallel_jobs(OmegaConf.create({"n_jobs": -2})) == max(1, available_cores() - 1)
    assert parallel_jobs(OmegaConf.create({"timeout_min": 60})) == 1
