"""Sweeps through the real CLI: joblib and submitit launchers, Optuna, the summary, failures."""

import csv
import json
from pathlib import Path

import pytest
import yaml

from rnnexp.sweep.summary import read_jobs, seed_groups, summarise

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


def fake_job(root: Path, name: str, overrides: list[str], status="completed", value=0.5, target=None):
    job = root / name
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    res = {"status": status, "objective": {"name": "val/accuracy", "direction": "max", "value": value},
           "final": {"val/accuracy": value, "val/loss": 1.0}, "epochs_run": 3, "target_epoch": target,
           "wall_seconds": 1.0, "cell": overrides[0].split("=")[1]}
    if status != "completed":
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
    assert groups["model=lstm task.delay=10"]["runs"] == 2
    assert (tmp_path / "summary.png").is_file()
    assert "Across seeds" in (tmp_path / "summary.md").read_text()
    assert list((tmp_path / "summary").glob("events.out.tfevents.*"))
