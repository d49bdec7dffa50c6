"""Sweeps through the real CLI: joblib and submitit launchers, Optuna, the summary, failures."""

import csv
import io
import json
from pathlib import Path

import pytest
import yaml

from rnnexp.sweep.summary import read_jobs, seed_groups, summarise, write_summary

from tests.test_cli import rnnexp

TINY = ["task=qrsu", "train.epochs=2", "task.train_size=200", "task.val_size=200"]


def sweep_dir(cwd: Path) -> Path:
    (found,) = list((cwd / "outputs" / "multirun").glob("*/*"))
    return found


@pytest.mark.slow
def test_joblib_sweep_leaves_three_jobs_and_a_summary(tmp_path):
    proc = rnnexp("-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "model=rnn,lstm,gru", *TINY, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    root = sweep_dir(tmp_path)
    assert len(list(root.glob("*/results.json"))) == 3
    with open(root / "summary.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["status"] for r in rows] == ["completed"] * 3
    assert {r["overrides"].split()[0] for r in rows} == {"model=rnn", "model=lstm", "model=gru"}
    assert (root / "summary.md").read_text().count("| completed |") == 3
    assert (root / "summary.png").stat().st_size > 1000
    assert "epoch   1/2" not in proc.stdout, "per-epoch lines stay out of a sweep's terminal"
    assert proc.stdout.count("result: ") == 3


@pytest.mark.slow
def test_a_failing_job_is_marked_and_the_sweep_exits_nonzero(tmp_path):
    proc = rnnexp("-m", "model.hidden_size=4,-3,5", *TINY, cwd=tmp_path)
    assert proc.returncode == 1
    assert "1 of 3 sweep jobs did not complete" in proc.stderr.strip().splitlines()[-1]
    rows = read_jobs(sweep_dir(tmp_path))
    assert [r["status"] for r in rows] == ["completed", "failed", "completed"]
    assert "model.hidden_size=-3" in rows[1]["error"]
    assert "failed" in (sweep_dir(tmp_path) / "summary.md").read_text()


@pytest.mark.slow
def test_submitit_local_runs_two_jobs_as_processes(tmp_path):
    proc = rnnexp("-m", "hydra/launcher=submitit_local", "model=rnn,gru", *TINY, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    root = sweep_dir(tmp_path)
    assert [r["status"] for r in read_jobs(root)] == ["completed", "completed"]
    assert list(root.glob(".submitit/*/*_log.out")), "the jobs ran through submitit"


@pytest.mark.slow
def test_optuna_records_the_jobs_own_result(tmp_path):
    proc = rnnexp("hparams_search=qrsu_optuna", "hydra.sweeper.n_trials=3", *TINY, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    root = sweep_dir(tmp_path)
    best = yaml.safe_load((root / "optimization_results.yaml").read_text())["best_value"]
    values = [json.loads(p.read_text())["objective"]["value"] for p in root.glob("*/results.json")]
    assert len(values) == 3 and best == max(values)


def fake_job(root: Path, name: str, overrides: list[str], status="completed", value=0.5, target=None,
             target_accuracy=None, epochs=3, stopped_by="all epochs run"):
    job = root / name
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    res = {"status": status, "objective": {"name": "val/accuracy", "direction": "max", "value": value},
           "final": {"val/accuracy": value, "val/loss": 1.0}, "epochs_run": epochs, "target_epoch": target,
           "target_accuracy": target_accuracy, "stopped_by": stopped_by,
           "wall_seconds": 1.0, "cell": overrides[0].split("=")[1],
           "test": {"test/accuracy": value, "test/loss": 1.0}, "baseline": {"accuracy": 0.25},
           "best": {"epoch": epochs, "val/accuracy": value, "val/loss": 1.0},
           "history": [{"epoch": e, "val/accuracy": value * e / epochs} for e in range(1, epochs + 1)]}
    if status in ("interrupted", "diverged"):  # a stopped or diverged run reports what it reached, no test
        res.pop("stopped_by")
        res.update(status=status, error="stopped" if status == "interrupted" else "exploded")
    elif status != "completed":
        res = {"status": status, "error": "boom"}
    (job / "results.json").write_text(json.dumps(res))


def test_summary_groups_seeds_and_plots_against_the_swept_parameter(tmp_path):
    for i, (model, delay, seed, value) in enumerate([("rnn", 3, 1, 0.9), ("rnn", 3, 2, 0.7), ("rnn", 10, 1, 0.5),
                                                     ("rnn", 10, 2, 0.5), ("lstm", 3, 1, 1.0), ("lstm", 3, 2, 1.0),
                                                     ("lstm", 10, 1, 0.9), ("lstm", 10, 2, 0.95)]):
        fake_job(tmp_path, f"{i}_x", [f"model={model}", f"task.delay={delay}", f"train.seed={seed}"], value=value)
    fake_job(tmp_path, "8_x", ["model=gru", "task.delay=3", "train.seed=1"], status="diverged")
    rows = summarise(tmp_path)
    assert len(rows) == 9 and rows[8]["status"] == "diverged"
    groups = {g["config"]: g for g in seed_groups(rows)}
    assert groups["model=rnn task.delay=3"]["mean"] == pytest.approx(0.8)
    assert groups["model=rnn task.delay=3"]["std"] == pytest.approx(0.1414, abs=1e-3)
    assert groups["model=lstm task.delay=10"]["runs"] == 2 and groups["model=lstm task.delay=10"]["completed"] == 2
    assert (tmp_path / "summary.png").is_file()
    assert "Across seeds" in (tmp_path / "summary.md").read_text()
    assert list((tmp_path / "across-seeds" / "model=lstm_delay=3").glob("events.out.tfevents.*"))


def test_statistics_count_completed_runs_only_and_say_what_was_left_out(tmp_path, capsys):
    """Before: "gru 3 runs mean 0.4280 std 0.0000" from one interrupted job and two that never
    started; the LSTM's mean took in an interrupted 0.289."""
    from rich.console import Console

    from rnnexp.sweep.summary import print_summary

    target = {"target_accuracy": 1.0}
    fake_job(tmp_path, "0_a", ["model=lstm", "train.seed=1"], value=1.0, target=12, **target)
    fake_job(tmp_path, "1_a", ["model=lstm", "train.seed=2"], value=0.9, **target)
    fake_job(tmp_path, "2_a", ["model=lstm", "train.seed=3"], status="interrupted", value=0.289, epochs=13, **target)
    fake_job(tmp_path, "3_a", ["model=lstm", "train.seed=4"], status="diverged", value=0.25, epochs=2, **target)
    fake_job(tmp_path, "4_a", ["model=lstm", "train.seed=5"], value=0.8, stopped_by="time limit (1 min)", **target)
    fake_job(tmp_path, "5_a", ["model=gru", "train.seed=1"], status="interrupted", value=0.428, epochs=13, **target)
    (tmp_path / "jobs.json").write_text(json.dumps({"jobs": [
        {"job": n, "overrides": o} for n, o in enumerate([["model=lstm", "train.seed=1"]] * 6 +
                                                         [["model=gru", "train.seed=2"], ["model=gru", "train.seed=3"]])]}))
    rows = read_jobs(tmp_path)
    groups = {g["config"]: g for g in seed_groups(rows)}
    lstm, gru = groups["model=lstm"], groups["model=gru"]
    assert lstm["completed_of"] == "3 of 5" and lstm["mean"] == pytest.approx(0.9)   # 1.0, 0.9, 0.8
    assert lstm["std"] == pytest.approx(0.1) and lstm["solved"] == "1 of 4"           # the diverged one is not solved
    assert lstm["diverged"] == 1 and lstm["time_limited"] == 1
    assert lstm["partial"] == ["job 2 (interrupted after 13 epochs)"]
    assert gru["completed_of"] == "0 of 3" and gru["mean"] is None and gru["std"] is None
    assert gru["partial"] == ["job 5 (interrupted after 13 epochs)", "job 6 (not started)", "job 7 (not started)"]
    console = Console(width=200, file=io.StringIO(), record=True, color_system=None)
    print_summary(rows, list(groups.values()), "title", console, tmp_path)
    text = console.export_text()
    assert "mean, sample sd of completed runs" in text and "best val/accuracy" in text
    assert "model=lstm: 1 diverged; 1 time-limited; not averaged: job 2 (interrupted after 13 epochs)" in text
    assert "0.4280" not in text.split("across seeds")[1]
    write_summary(tmp_path, rows, list(groups.values()))
    assert "| model=gru | 0 of 3 | - | - | - | - | not averaged: job 5 (interrupted after 13 epochs), job 6" in (tmp_path / "summary.md").read_text()


def test_how_a_job_ran_is_no_column_and_no_group(tmp_path):
    fake_job(tmp_path, "0_a", ["model=lstm", "train.seed=1", "train.overwrite=true"])
    fake_job(tmp_path, "1_a", ["model=lstm", "train.seed=2", "train.resume=auto"])
    (group,) = seed_groups(read_jobs(tmp_path))
    assert group["config"] == "model=lstm" and group["completed_of"] == "2 of 2"


def test_a_job_resumed_with_more_epochs_is_labelled_as_it_ran(tmp_path):
    fake_job(tmp_path, "0_a", ["model=lstm", "train.epochs=5", "train.seed=1"], epochs=6)
    fake_job(tmp_path, "1_a", ["model=lstm", "train.epochs=5", "train.seed=2"], epochs=5)
    resumed = tmp_path / "0_a" / ".hydra" / "resume-2026-12-07_12-00-00"
    resumed.mkdir(parents=True)
    (resumed / "overrides.yaml").write_text(yaml.safe_dump([f"train.resume={tmp_path / '0_a'}", "train.epochs=6"]))
    rows = {row["job"]: row for row in read_jobs(tmp_path)}
    assert rows["0_a"]["params"] == {"model": "lstm", "train.epochs": "6", "train.seed": "1"}
    assert {g["config"] for g in seed_groups(list(rows.values()))} == set(), "5 and 6 epochs are not one group"


@pytest.mark.slow
def test_a_joblib_sweep_leaves_no_worker_holding_its_output(tmp_path):
    """The joblib launcher's workers end in its own exit hooks: a sweep must exit the usual way
    (not os._exit, as a single run does), or the workers outlive it holding the caller's pipes."""
    proc = rnnexp("-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "model=rnn,lstm", "task=qrsu",
                  "train.epochs=1", "task.train_size=64", "task.val_size=100", "task.test_size=100",
                  "train.insight_every=0", cwd=tmp_path, timeout=90)
    assert proc.returncode == 0, proc.stderr
