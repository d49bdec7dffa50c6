"""Names that say what differs: a run directory names its task, cell, a non-default init and the
preset; results.json and TensorBoard's HParams hold every key away from the defaults; a sweep's job
directories name only the keys whose resolved values differ across its jobs, and a job is found
again by its overrides (new seeds added to a finished sweep run alone; old sweeps still resume)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import yaml

from tests.test_cli import run_main

TINY = ["train.epochs=1", "train.target_accuracy=null", "train.insight_every=0", "task.train_size=64",
        "task.val_size=100", "task.test_size=100", "train.progress=lines"]


def test_a_run_directory_names_its_task_cell_non_default_init_and_preset(tmp_path, monkeypatch, capsys):
    assert run_main(monkeypatch, capsys, tmp_path, "experiment=long_lags", "model=rnn", *TINY)[0] == 0
    assert run_main(monkeypatch, capsys, tmp_path, "model=gru", "model.init=chrono", *TINY)[0] == 0
    assert run_main(monkeypatch, capsys, tmp_path, "model=gru", *TINY)[0] == 0
    names = sorted(p.name.split("_", 1)[1] for p in (tmp_path / "outputs" / "runs").glob("*/*"))
    assert names == ["qrsu-easy_gru", "qrsu-easy_gru-chrono", "qrsu-hard_rnn-identity_long_lags"]


def hparams_of(run_dir: Path) -> dict:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    acc = EventAccumulator(str(run_dir))
    acc.Reload()
    content = acc.summary_metadata["_hparams_/session_start_info"].plugin_data.content
    info = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info
    return {k: v.WhichOneof("kind") and getattr(v, v.WhichOneof("kind")) for k, v in info.hparams.items()}


def test_results_and_hparams_hold_every_key_away_from_the_defaults_also_what_a_preset_set(run_cfg, tmp_path):
    res = run_cfg(tmp_path, "experiment=long_lags", "model=rnn", "task.val_size=100", "task.test_size=100",
                  "task.train_size=64", "train.epochs=1", "train.insight_every=0")
    settings = res["settings"]
    assert {k: settings[k] for k in ("task", "model", "experiment")} == {"task": "qrsu", "model": "rnn",
                                                                        "experiment": "long_lags"}
    # The preset's per-cell choices, its own keys, and the command line's:
    assert settings["model.init"] == "identity" and settings["model.hidden_size"] == 64
    assert settings["train.lr"] == 1e-4 and settings["task.difficulty"] == "hard" and settings["train.epochs"] == 1
    assert "model.num_layers" not in settings and "train.batch_size" not in settings, "defaults are not settings"
    assert "model.label" not in settings and "train.resume" not in settings
    shown = hparams_of(tmp_path / "run")
    assert shown["model.init"] == "identity" and shown["experiment"] == "long_lags"
    assert shown["task.difficulty"] == "hard" and shown["model"] == "rnn-identity"


def test_a_sweep_names_its_jobs_by_what_differs_a_presets_per_cell_init_included(tmp_path, monkeypatch, capsys):
    sweep = tmp_path / "S"
    code, out, err = run_main(monkeypatch, capsys, tmp_path, "-m", "experiment=long_lags", "model=lstm,rnn",
                              f"hydra.sweep.dir={sweep}", *TINY)
    assert code == 0, err
    assert sorted(p.name for p in sweep.glob("model=*")) == ["model=lstm,hidden_size=16,init=chrono,lr=0.003",
                                                             "model=rnn,hidden_size=64,init=identity,lr=0.0001"]
    # The summary shows the init the preset set (it said model.init=- before), groups by the cell,
    # and says what comes with each cell.
    assert "model=rnn comes with model.hidden_size=64 model.init=identity train.lr=0.0001" in out
    answer = json.loads((sweep / "answer.json").read_text())
    assert answer["by"] == ["model"]
    assert {g["group"]["model"]: g["comes_with"]["model.init"] for g in answer["groups"]} == {"lstm": "chrono",
                                                                                            "rnn": "identity"}
    rows = (sweep / "summary.csv").read_text()
    assert "model=rnn" in rows


def snapshot(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in directory.glob("*/results.json")}


def test_seeds_added_to_a_finished_sweep_run_only_the_new_jobs(tmp_path, monkeypatch, capsys):
    sweep = tmp_path / "S"
    first = ["-m", "model=lstm,gru", "train.seed=1,2", f"hydra.sweep.dir={sweep}", *TINY]
    assert run_main(monkeypatch, capsys, tmp_path, *first)[0] == 0
    before = snapshot(sweep)
    assert sorted(Path(k).parent.name for k in before) == ["model=gru,seed=1", "model=gru,seed=2",
                                                           "model=lstm,seed=1", "model=lstm,seed=2"]
    more = ["-m", "model=lstm,gru", "train.seed=1,2,3", f"hydra.sweep.dir={sweep}", *TINY, "train.resume=auto"]
    code, out, err = run_main(monkeypatch, capsys, tmp_path, *more)
    assert code == 0, err
    after = snapshot(sweep)
    assert {k: after[k] for k in before} == before, "the finished jobs are kept as they were"
    assert sorted(set(after) - set(before)) == ["model=gru,seed=3/results.json", "model=lstm,seed=3/results.json"]
    assert out.count("result: ") == 2, "only the new seeds trained"
    assert out.count("kept: ") == 4 and "kept: model=lstm,seed=1 (completed before" in out
    assert "6 jobs: 6 completed" in out
    # More epochs for the whole sweep is not a resume of it: one line says how to train a job on.
    code, _, err = run_main(monkeypatch, capsys, tmp_path, *[a.replace("train.epochs=1", "train.epochs=2") for a in more])
    assert code == 2 and "holds these jobs with other train.epochs; a sweep resumes with its own" in err
    assert "rnnexp train.resume=" in err and snapshot(sweep) == after
    # A plan that leaves jobs out is another sweep: refused, nothing touched.
    code, _, err = run_main(monkeypatch, capsys, tmp_path, "-m", "model=lstm", "train.seed=1,2,3",
                            f"hydra.sweep.dir={sweep}", *TINY, "train.resume=auto")
    assert code == 2 and "holds another sweep than this command plans (3 of its 6 jobs are not in it" in err
    assert snapshot(sweep) == after


def test_a_sweep_made_before_jobs_had_names_still_resumes(tmp_path, monkeypatch, capsys):
    """Job directories NUMBER_OVERRIDES and a plan without directories, as rnnexp wrote them before."""
    sweep = tmp_path / "S"
    args = ["-m", "model=lstm,gru", f"hydra.sweep.dir={sweep}", *TINY]
    old_subdir = "hydra.sweep.subdir=${hydra.job.num}_${hydra.job.override_dirname}"
    assert run_main(monkeypatch, capsys, tmp_path, *args, old_subdir)[0] == 0
    plan = json.loads((sweep / "jobs.json").read_text())
    plan["jobs"] = [{"job": j["job"], "overrides": j["overrides"]} for j in plan["jobs"]]
    (sweep / "jobs.json").write_text(json.dumps(plan))
    (gru,) = sweep.glob("1_*")
    assert yaml.safe_load((gru / ".hydra" / "overrides.yaml").read_text())[0] == "model=gru"
    shutil.rmtree(gru)  # a job that never started
    (lstm,) = sweep.glob("0_*")
    kept = (lstm / "results.json").read_bytes()
    code, out, err = run_main(monkeypatch, capsys, tmp_path, *args, "train.resume=auto")
    assert code == 0, err
    assert (lstm / "results.json").read_bytes() == kept, "the old job is found by its overrides and kept"
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir() and not p.name.startswith(".")) == [
        "0_model=lstm,task.test_size=100,task.train_size=64,task.val_size=100,train.epochs=1,train.insight_every=0,"
        "train.target_accuracy=null", "across-seeds", "model=gru"]
    assert out.count("result: ") == 1 and "2 jobs: 2 completed" in out


def test_what_follows_from_a_swept_key_makes_no_group_of_its_own():
    from rnnexp.sweep.answer import study_answer

    def row(model: str, init: str, seed: int, value: float) -> dict:
        return {"job": f"{model}{seed}", "status": "completed", "target_epoch": None, "train_seconds": 1.0,
                "params": {"model": model, "model.init": init, "train.seed": str(seed)},
                "results": {"test": {"test/accuracy": value}, "objective": {"name": "val/accuracy"}}}

    rows = [row("rnn", "identity", s, 0.9) for s in (1, 2)] + [row("lstm", "chrono", s, 0.95) for s in (1, 2)]
    answer = study_answer(rows)
    assert answer.by == ["model"] and [g.derived for g in answer.groups] == [{"model.init": "identity"},
                                                                           {"model.init": "chrono"}]
    # An init swept with the cells (not a function of them) is a key of its own.
    rows += [row("rnn", "default", s, 0.3) for s in (1, 2)]
    assert study_answer(rows).by == ["model", "model.init"]


def test_a_job_that_does_not_compose_fails_alone_and_the_sweep_keeps_its_plan(tmp_path, monkeypatch, capsys):
    sweep = tmp_path / "S"
    code, out, err = run_main(monkeypatch, capsys, tmp_path, "-m", "experiment=long_lags", "model=lstm,mlp",
                              f"hydra.sweep.dir={sweep}", *TINY)
    assert code == 1 and "1 of 2 sweep jobs did not complete" in err, err
    plan = json.loads((sweep / "jobs.json").read_text())
    assert len(plan["jobs"]) == 2 and "train.resume=auto" in plan["resume"]
    lstm = next(j for j in plan["jobs"] if "model=lstm" in j["overrides"])
    assert json.loads((sweep / lstm["dir"] / "results.json").read_text())["status"] == "completed"


def test_a_job_given_twice_runs_twice_in_two_directories(tmp_path, monkeypatch, capsys):
    sweep = tmp_path / "S"
    code, out, err = run_main(monkeypatch, capsys, tmp_path, "-m", "train.seed=1,1", f"hydra.sweep.dir={sweep}", *TINY)
    assert code == 0, err
    assert sorted(p.parent.name for p in sweep.glob("*/results.json")) == ["qrsu_lstm", "qrsu_lstm-2"]
    assert "2 jobs: 2 completed" in out


def test_jobs_that_differ_only_in_how_they_run_are_named_by_it(tmp_path, monkeypatch, capsys):
    sweep = tmp_path / "S"
    code, out, err = run_main(monkeypatch, capsys, tmp_path, "-m", "train.threads=1,2", f"hydra.sweep.dir={sweep}", *TINY)
    assert code == 0, err
    assert sorted(p.parent.name for p in sweep.glob("*/results.json")) == ["threads=1", "threads=2"]


def test_a_subdir_of_ones_own_names_the_jobs_and_the_summary_finds_them(tmp_path, monkeypatch, capsys):
    sweep = tmp_path / "S"
    code, out, err = run_main(monkeypatch, capsys, tmp_path, "-m", "model=lstm,gru", f"hydra.sweep.dir={sweep}",
                              "hydra.sweep.subdir=${hydra.job.num}", *TINY)
    assert code == 0, err
    assert sorted(p.parent.name for p in sweep.glob("*/results.json")) == ["0", "1"]
    assert "2 jobs: 2 completed" in out, "no planned directory left over as 'not started'"


def test_keys_a_command_line_set_are_never_folded_into_another_key():
    from rnnexp.sweep.answer import study_answer

    def row(hidden: str, lr: str, value: float) -> dict:  # two Optuna trials: each key searched
        return {"job": hidden, "status": "completed", "target_epoch": None, "train_seconds": 1.0,
                "overrides": f"model.hidden_size={hidden} train.lr={lr}",
                "params": {"model.hidden_size": hidden, "train.lr": lr},
                "results": {"test": {"test/accuracy": value}, "objective": {"name": "val/accuracy"}}}

    answer = study_answer([row("10", "0.001", 0.5), row("20", "0.01", 0.6)])
    assert answer.by == ["model.hidden_size", "train.lr"] and not any(g.derived for g in answer.groups)


def test_names_say_a_user_option_and_a_preset_in_a_folder_as_they_are():
    from rnnexp.config import suffix
    from rnnexp.settings import choices

    assert suffix("_", "mine/fast") == "_mine-fast" and suffix("-", "default", "default") == ""
    config = {"task": {"name": "qrsu"}, "model": {"family": "recurrent", "cell": "lstm"}}
    assert choices(config, (), recorded={"task": "qrsu", "model": "lstm_big"}) == {"task": "qrsu", "model": "lstm_big"}
    assert choices(config, ("experiment=long_lags",), use_hydra=False)["experiment"] == "long_lags"


def test_a_run_resumed_from_before_settings_keeps_its_preset(tmp_path, monkeypatch, capsys):
    assert run_main(monkeypatch, capsys, tmp_path, "experiment=long_lags", "model=lstm", *TINY)[0] == 0
    (run,) = (tmp_path / "outputs" / "runs").glob("*/*")
    results = json.loads((run / "results.json").read_text())
    results.pop("settings")  # (as a run made before settings were kept)
    results["status"] = "interrupted"
    (run / "results.json").write_text(json.dumps(results))
    code, _, err = run_main(monkeypatch, capsys, tmp_path, f"train.resume={run}", "train.epochs=2")
    assert code == 0, err
    settings = json.loads((run / "results.json").read_text())["settings"]
    assert settings["experiment"] == "long_lags" and settings["model.init"] == "chrono"
    assert settings["train.epochs"] == 2
