"""Seed packing (issue 20): seeds of one setting trained as one block-diagonal model.

Each packed seed must match its single run (same initial weights, same data) within
`engine.packed.DEVIATION`, stop early on its own, resume exactly as a group (and never alone), and
a seed that diverges must leave the others as they would have been.
"""

from __future__ import annotations

import copy
import json
import signal
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from omegaconf import open_dict

from rnnexp.engine.packed import DEVIATION, PackedGroup, probe
from rnnexp.errors import Interrupted, RunDirError
from tests.conftest import run_in_process

BASE = ("task=qrsu", "train.progress=lines", "train.threads=1", "train.insight_every=0", "train.checkpoint_minutes=100")


def packed(tmp_path: Path, seeds: list[int], *overrides: str, name: str = "group",
           own: dict[int, tuple[str, ...]] = {}) -> list[dict]:
    """Run `seeds` as one packed group in-process (as the launcher does) and return their results;
    `own[seed]`: overrides of that seed's job alone."""
    from rnnexp.run_packed import Job, run_packed

    jobs = []
    for seed in seeds:
        GlobalHydra.instance().clear()
        with initialize_config_module(config_module="rnnexp.conf", version_base="1.3"):
            job_overrides = [*BASE, *overrides, *own.get(seed, ()), f"train.seed={seed}"]
            full = compose(config_name="config", overrides=job_overrides, return_hydra_config=True)
        cfg = copy.deepcopy(full)
        with open_dict(cfg):
            del cfg["hydra"]
        run_dir = tmp_path / name / f"seed={seed}"
        run_dir.mkdir(parents=True, exist_ok=True)
        jobs.append(Job(cfg, full, run_dir, job_overrides))
    outcomes = run_packed(jobs, resume="rnnexp -m ... train.resume=auto")
    for outcome in outcomes:
        if isinstance(outcome, BaseException) and not isinstance(outcome, Exception):
            raise outcome
    return [json.loads((job.run_dir / "results.json").read_text()) for job in jobs]


def deviation(a: dict, b: dict, key: str) -> float:
    assert len(a["history"]) == len(b["history"])
    return max(abs(x[key] - y[key]) for x, y in zip(a["history"], b["history"]))


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_each_packed_seed_is_its_single_run(tmp_path, cell):
    # Up to 14 epochs, to 95% validation accuracy: the LSTM's seed 1 stops at epoch 12, the others run on.
    setting = (f"model={cell}", "train.epochs=14", "train.target_accuracy=0.95")
    group = packed(tmp_path, [1, 2, 3], *setting)
    for seed, result in zip([1, 2, 3], group):
        alone = run_in_process(tmp_path, *BASE, *setting, f"train.seed={seed}", name=f"alone{seed}")
        assert result["status"] == "completed" and result["packed_with"] == ["seed=1", "seed=2", "seed=3"]
        assert result["epochs_run"] == alone["epochs_run"], "each seed stops early on its own"
        assert result["target_epoch"] == alone["target_epoch"]
        for key, bound in DEVIATION.items():
            assert deviation(result, alone, key) <= bound, (seed, key)
        assert abs(result["test"]["test/loss"] - alone["test"]["test/loss"]) <= DEVIATION["val/loss"]
        assert result["packing"]["deviation_from_single_runs"] == DEVIATION
        assert (Path(result["run_dir"]) / "best.pt").is_file()
        assert list(Path(result["run_dir"]).glob("events.out.tfevents.*")), "each seed keeps its curves"
    if cell == "lstm":
        assert len({r["epochs_run"] for r in group}) > 1, "the test needs seeds that stop at different epochs"


@contextmanager
def stop_after(epochs: int):
    """A stop requested (as by Ctrl-C) once every live seed has trained `epochs` epochs."""
    import rnnexp.run_packed as module

    real = module.stop_on_signals
    seen = {"steps": 0}

    @contextmanager
    def fake():
        def requested() -> int:
            seen["steps"] += 1
            return signal.SIGINT if seen["steps"] > epochs * 32 + 1 else 0  # (32 batches an epoch: mid-epoch)
        yield requested

    module.stop_on_signals = fake
    try:
        yield
    finally:
        module.stop_on_signals = real


def test_jobs_that_stop_at_other_epochs_train_packed_each_to_its_own_end(tmp_path):
    group = packed(tmp_path, [1, 2], "model=lstm", "train.target_accuracy=null", own={1: ("train.epochs=2",), 2: ("train.epochs=4",)})
    assert [r["epochs_run"] for r in group] == [2, 4]
    alone = run_in_process(tmp_path, *BASE, "model=lstm", "train.target_accuracy=null", "train.epochs=4", "train.seed=2")
    assert deviation(group[1], alone, "val/loss") <= DEVIATION["val/loss"]


def test_a_group_that_lost_a_finished_seed_resumes_exactly(tmp_path):
    # Seed 1 stops after 2 epochs (the packed model is built again without it); the stop comes in epoch 4.
    setting, own = ("model=gru", "train.epochs=5", "train.target_accuracy=null"), {1: ("train.epochs=2",)}
    whole = packed(tmp_path, [1, 2, 3], *setting, name="whole", own=own)
    with stop_after(3), pytest.raises(Interrupted):
        packed(tmp_path, [1, 2, 3], *setting, name="stopped", own=own)
    resumed = packed(tmp_path, [1, 2, 3], *setting, "train.resume=auto", name="stopped", own=own)
    assert [r["epochs_run"] for r in resumed] == [2, 5, 5]
    for a, b in zip(whole, resumed):
        assert [h["val/loss"] for h in a["history"]] == [h["val/loss"] for h in b["history"]], "exact group resume"


def test_a_group_resumes_exactly_as_a_group_and_never_one_seed_alone(tmp_path, monkeypatch, capsys):
    from rnnexp.sweep.summary import summarise_after_sweep
    from tests.test_cli import run_main

    setting = ("model=lstm", "train.epochs=5", "train.target_accuracy=null")
    whole = packed(tmp_path, [1, 2], *setting, name="whole")
    with stop_after(2), pytest.raises(Interrupted):
        packed(tmp_path, [1, 2], *setting, name="stopped")
    stopped = [json.loads((tmp_path / "stopped" / f"seed={s}" / "results.json").read_text()) for s in (1, 2)]
    assert [r["status"] for r in stopped] == ["interrupted", "interrupted"]
    assert all(r["resume"] == "rnnexp -m ... train.resume=auto" for r in stopped)
    capsys.readouterr()
    summarise_after_sweep(tmp_path / "stopped")
    said = capsys.readouterr().out
    assert said.count("resume (with its packed group): rnnexp -m ... train.resume=auto") == 2
    assert "train.resume='" not in said, "the summary never suggests resuming one packed seed alone"

    with pytest.raises(RunDirError, match="resume the group"):
        run_in_process(tmp_path, *BASE, *setting, "train.seed=1", f"train.resume='{tmp_path / 'stopped' / 'seed=1'}'")
    code, out, err = run_main(monkeypatch, capsys, tmp_path, f"train.resume='{tmp_path / 'stopped' / 'seed=1'}'")
    assert code == 2 and "alone" in err and "train.pack_seeds=off" in err and len(err.strip().splitlines()) == 1

    # ... or alone with train.pack_seeds=off (a copy: the group itself resumes below).
    import shutil

    alone_dir = tmp_path / "alone" / "seed=1"
    shutil.copytree(tmp_path / "stopped" / "seed=1", alone_dir)
    alone = run_in_process(tmp_path, *BASE, *setting, "train.seed=1", "train.pack_seeds=off",
                           f"train.resume='{alone_dir}'", name="alone/seed=1")
    assert alone["status"] == "completed" and alone["epochs_run"] == 5

    resumed = packed(tmp_path, [1, 2], *setting, "train.resume=auto", name="stopped")
    for a, b in zip(whole, resumed):
        assert b["status"] == "completed"
        assert [h["val/loss"] for h in a["history"]] == [h["val/loss"] for h in b["history"]], "exact group resume"
        assert a["test"] == b["test"]


def test_a_diverging_seed_is_frozen_and_the_others_go_on(tmp_path, monkeypatch):
    setting = ("model=lstm", "train.epochs=4", "train.target_accuracy=null")
    clean = packed(tmp_path, [1, 2, 3], *setting, name="clean")
    real_step, calls = PackedGroup.step, {"n": 0}

    def step(self, batches, starts):
        calls["n"] += 1
        if calls["n"] == 40:  # epoch 2: an infinity in seed 2's weights (block 1)
            with torch.no_grad():
                weight = self.params["rnn.weight_hh_l0"]
                weight[self.owner["rnn.weight_hh_l0"] == 1] = float("inf")
        return real_step(self, batches, starts)

    monkeypatch.setattr(PackedGroup, "step", step)
    hit = packed(tmp_path, [1, 2, 3], *setting, name="hit")
    assert hit[1]["status"] == "diverged" and "non-finite" in hit[1]["error"]
    assert hit[1]["epochs_run"] == 1
    for g in (0, 2):
        assert hit[g]["status"] == "completed" and hit[g]["epochs_run"] == 4
        for key, bound in DEVIATION.items():
            assert deviation(hit[g], clean[g], key) <= bound, "the other seeds are unchanged"


def test_the_probe_times_one_seed_and_the_packed_group(tmp_path):
    from rnnexp.config import load_run_config
    from rnnexp.engine.loop import Engine
    from rnnexp.models.family import model_family
    from rnnexp.tasks import build_task
    from tests.conftest import compose_config

    run = load_run_config(compose_config(*BASE, "model=lstm"))
    task = build_task(run.task, run.train.batch_size, 1)
    family = model_family(run.model)
    model = family.build(task, family.size(task))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    measured = probe(Engine(task, model, run.train, torch.device("cpu")), seeds=4, steps=2)
    assert measured["seeds"] == 4 and measured["single_ms"] > 0 and measured["packed_ms"] > 0
    assert measured["speedup"] == pytest.approx(4 * measured["single_ms"] / measured["packed_ms"], rel=0.02)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items()), "the probe trains copies"


def test_a_sweeps_probe_foresees_an_epoch_of_one_seed(compose_cfg):
    """What orders the jobs a group gives back (the longest first: rnnexp.sweep.side_by_side)."""
    from rnnexp.sweep.launcher import _probe, job_seconds

    measured = _probe(compose_cfg(*BASE, "model=lstm", "task.train_size=320", "train.batch_size=32"), 3)
    assert measured["epoch_seconds"] == pytest.approx(measured["single_ms"] / 1000 * 10)
    capped = _probe(compose_cfg(*BASE, "model=lstm", "train.batches_per_epoch=4"), 3)
    assert capped["epoch_seconds"] == pytest.approx(capped["single_ms"] / 1000 * 4)
    assert job_seconds(0.5, compose_cfg(*BASE, "train.epochs=30")) == 15.0
    assert job_seconds(0.5, compose_cfg(*BASE, "train.epochs=300", "train.time_limit_minutes=1")) == 60.0, "at most its limit"


def test_which_configs_pack(compose_cfg):
    from rnnexp.sweep.launcher import pack_refusal, seed_groups

    assert pack_refusal(compose_cfg("model=lstm")) is None
    assert "dropout" in pack_refusal(compose_cfg("model=lstm", "model.dropout=0.1"))
    assert "token ids" in pack_refusal(compose_cfg("task=charlm", "model=lstm", "train.lr_schedule=none"))
    assert pack_refusal(compose_cfg("model=lstm", "train.pack_seeds=off")) == "train.pack_seeds=off"
    assert "lr_schedule" in pack_refusal(compose_cfg("task=charlm", "model=lstm"))
    assert "curriculum" in pack_refusal(compose_cfg("task=qrsu", "task.difficulty=moderate", "model=lstm",
                                                    "train.curriculum=[easy,normal]"))
    assert "does not pack" in pack_refusal(compose_cfg("model=mlp"))
    jobs = [["model=rnn", "train.seed=1"], ["model=rnn", "train.seed=2"], ["model=lstm", "train.seed=1"],
            ["model=lstm"], ["train.seed=2", "model=rnn"]]
    assert seed_groups(jobs) == [[0, 1, 4], [2], [3]]
    # Jobs that differ also in when they stop pack together (each seed keeps its own early stop).
    stops = [["model=rnn", "train.epochs=100", "train.seed=1"], ["model=rnn", "train.epochs=10", "train.seed=1"],
             ["model=lstm", "train.epochs=10", "train.seed=1"], ["model=rnn", "train.target_accuracy=0.9", "train.seed=2"]]
    assert seed_groups(stops) == [[0, 1, 3], [2]]


def test_a_sweep_packs_its_seeds_resumes_them_as_a_group_and_off_runs_them_one_by_one(tmp_path, monkeypatch, capsys):
    from tests.test_cli import run_main

    monkeypatch.setattr("rnnexp.cli.start_drawing", lambda run: None)
    monkeypatch.setattr("rnnexp.sweep.launcher.MIN_SPEEDUP", 0.0)  # (the probe's verdict is the machine's; here: pack)
    small = ("task=qrsu", "model=lstm", "train.epochs=2", "train.target_accuracy=null", "task.train_size=64",
             "task.val_size=100", "task.test_size=100", "train.insight_every=1")
    sweep = tmp_path / "S"
    code, out, err = run_main(monkeypatch, capsys, tmp_path, "-m", *small, "train.seed=1,2", f"hydra.sweep.dir={sweep}")
    assert code == 0, err
    assert (sweep / "summary.png").is_file() and (sweep / "across-seeds").is_dir(), "a sweep of seeds alone is pictured too"
    first, second = (json.loads((sweep / f"seed={s}" / "results.json").read_text()) for s in (1, 2))
    assert first["packed_with"] == second["packed_with"] == ["seed=1", "seed=2"]
    assert first["packing"]["probe"]["speedup"] > 0
    log = (sweep / "seed=2" / "run.log").read_text()
    assert "packed into one model with seed=2" in log and "seed=2: epoch   2/2" in log, "each line says whose it is"
    assert (sweep / "seed=1" / "states.png").is_file() and not (sweep / "seed=2" / "states.png").exists(), \
        "pictures for the first seed only"

    # A seed that finished in its group trains on alone (no group to keep up with); its record stays.
    code, out, err = run_main(monkeypatch, capsys, tmp_path, f"train.resume='{sweep / 'seed=1'}'")
    assert code == 2 and "has already finished" in err
    code, out, err = run_main(monkeypatch, capsys, tmp_path, f"train.resume='{sweep / 'seed=1'}'", "train.epochs=3")
    assert code == 0, err
    on = json.loads((sweep / "seed=1" / "results.json").read_text())
    assert on["epochs_run"] == 3 and on["packed_with"] == ["seed=1", "seed=2"] and on["packing"]["alone_from_epoch"] == 3

    # A third seed added: the packed two are kept, the new one trains (alone: a group of one).
    code, out, err = run_main(monkeypatch, capsys, tmp_path, "-m", *small, "train.seed=1,2,3",
                              f"hydra.sweep.dir={sweep}", "train.resume=auto")
    assert code == 0, err
    assert "kept: seed=1" in out + err and "kept: seed=2" in out + err
    third = json.loads((sweep / "seed=3" / "results.json").read_text())
    assert third["status"] == "completed" and "packed_with" not in third

    code, out, err = run_main(monkeypatch, capsys, tmp_path, "-m", *small, "train.seed=1,2", "train.pack_seeds=off",
                              f"hydra.sweep.dir={tmp_path / 'off'}")
    assert code == 0, err
    for s in (1, 2):
        alone = json.loads((tmp_path / "off" / f"seed={s}" / "results.json").read_text())
        assert "packed_with" not in alone and (tmp_path / "off" / f"seed={s}" / "states.png").is_file()

    # Where the probe measures packing slower, auto runs the seeds one by one and says why.
    monkeypatch.setattr("rnnexp.sweep.launcher.MIN_SPEEDUP", 1e9)
    code, out, err = run_main(monkeypatch, capsys, tmp_path, "-m", *small, "train.seed=1,2",
                              f"hydra.sweep.dir={tmp_path / 'slow'}")
    assert code == 0, err
    assert "seeds one by one" in out + err and "measured" in out + err
    assert "packed_with" not in json.loads((tmp_path / "slow" / "seed=2" / "results.json").read_text())


def test_one_seeds_exploding_state_in_validation_leaves_the_others_alone(tmp_path, monkeypatch):
    # Finite weights of 1e9 in one ReLU RNN: its states overflow, and its infinities would turn
    # every other block's products with its zero weights into NaN.
    real, calls = PackedGroup.evaluate, {"n": 0}

    def evaluate(self, split, seeds):
        calls["n"] += 1
        if calls["n"] == 1:
            with torch.no_grad():
                self.params["rnn.weight_hh_l0"][self.owner["rnn.weight_hh_l0"] == 1] = 1e9
        return real(self, split, seeds)

    monkeypatch.setattr(PackedGroup, "evaluate", evaluate)
    group = packed(tmp_path, [1, 2, 3], "model=rnn", "train.epochs=3", "train.target_accuracy=null")
    assert group[1]["status"] == "diverged"
    assert [group[0]["status"], group[2]["status"]] == ["completed", "completed"]
    assert group[0]["epochs_run"] == group[2]["epochs_run"] == 3


def test_a_stop_before_the_group_trains_stops_it_after_its_first_step(tmp_path, monkeypatch):
    from rnnexp.sweep.jobs import SweepState

    monkeypatch.setattr(SweepState, "stop_signal", signal.SIGINT)  # (a Ctrl-C while the group was starting)
    with pytest.raises(Interrupted):
        packed(tmp_path, [1, 2], "model=lstm", "train.epochs=3")
    for seed in (1, 2):
        results = json.loads((tmp_path / "group" / f"seed={seed}" / "results.json").read_text())
        assert results["status"] == "interrupted" and results["epochs_run"] == 0
        assert (tmp_path / "group" / f"seed={seed}" / "checkpoint.pt").is_file()


def test_an_error_in_one_seeds_report_fails_that_seed_alone(tmp_path, monkeypatch):
    from rnnexp.run import Prepared

    real = Prepared.complete

    def complete(self, test):
        if self.run.train.seed == 2:
            raise OSError("disk full")
        return real(self, test)

    monkeypatch.setattr(Prepared, "complete", complete)
    group = packed(tmp_path, [1, 2, 3], "model=lstm", "train.epochs=2", "train.target_accuracy=null")
    assert [r["status"] for r in group] == ["completed", "failed", "completed"]
    assert "disk full" in group[1]["error"]


def test_seeds_without_pictures_do_not_wait_behind_the_first_seeds_pictures(monkeypatch):
    from rnnexp import run

    class Pictures:
        def __init__(self, drawn: bool):
            self.is_drawn, self.finished = drawn, False

        def drawn(self) -> bool:
            return self.is_drawn

        def finish(self) -> None:
            assert self.is_drawn, "waited for pictures still being drawn"
            self.finished = True

        def close(self) -> None:
            pass

    first, *others = Pictures(False), Pictures(True), Pictures(True)
    monkeypatch.setattr(run, "_UNFINISHED", [(first, first), *[(p, p) for p in others]])
    run.finish_deferred(wait=False)
    assert all(p.finished for p in others) and not first.finished
    assert run._UNFINISHED == [(first, first)]
