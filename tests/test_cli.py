"""The command line as a user runs it: installed console script, Hydra composition, bad input."""

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rnnexp import cli
from tests.conftest import MODEL_YAMLS

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def rnnexp(*args, cwd, exe=("rnnexp",), timeout=300):
    return subprocess.run([*exe, *args], cwd=cwd, env=ENV, capture_output=True, text=True, timeout=timeout)


def snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def scalars(run_dir: Path, tag: str) -> list[tuple[int, float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    acc.Reload()
    return [(e.step, e.value) for e in acc.Scalars(tag)]


def run_main(monkeypatch, capsys, cwd, *args) -> tuple[int, str, str]:
    """`rnnexp ARGS` in-process (the same main() the console script calls). A sweep's units run one
    after another here, unless the test says otherwise: a helper process would not see the test's
    monkeypatches."""
    if "-m" in args and not any(a.startswith("hydra.launcher") for a in args):
        args = (*args, "hydra.launcher.n_jobs=1")
    monkeypatch.chdir(cwd)
    monkeypatch.setattr(sys, "argv", ["rnnexp", *args])
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    code = 0
    try:
        cli.main()
    except SystemExit as exit_:
        code = exit_.code or 0
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.slow
def test_installed_cli_runs_from_any_directory_and_logs_curves(tmp_path):
    proc = rnnexp("task=qrsu", "model=lstm", "train.epochs=3", "train.target_accuracy=null", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    runs = list((tmp_path / "outputs" / "runs").glob("*/*_qrsu-easy_lstm"))
    assert len(runs) == 1
    assert [step for step, _ in scalars(runs[0], "val/accuracy")] == [1, 2, 3]
    assert [step for step, _ in scalars(runs[0], "train/step_loss")] == list(range(10, 3 * 32 + 1, 10))
    assert not (runs[0] / "steps").exists(), "one TensorBoard entry per run"
    for tag in ("train/loss", "train/accuracy", "val/loss"):
        assert len(scalars(runs[0], tag)) == 3
    assert "epoch   3/3" in proc.stdout and "final val/accuracy" in proc.stdout
    assert "244 parameters" in proc.stdout
    assert sorted(p.name for p in (tmp_path / "outputs").iterdir()) == ["runs"], "a single run makes no sweep directory"


@pytest.mark.slow
def test_python_m_is_the_same_entrypoint(tmp_path):
    proc = rnnexp("task=qrsu", "model=gru", "train.epochs=1", cwd=tmp_path, exe=(sys.executable, "-m", "rnnexp"))
    assert proc.returncode == 0, proc.stderr
    assert list((tmp_path / "outputs" / "runs").glob("*/*_qrsu-easy_gru/results.json"))


def test_help_lists_groups_and_options(monkeypatch, capsys, tmp_path):
    code, out, _ = run_main(monkeypatch, capsys, tmp_path, "--help")
    assert code == 0
    assert "model: " + ", ".join(sorted(p.stem for p in MODEL_YAMLS)) in out and "task: " in out and "qrsu" in out
    assert not (tmp_path / "outputs").exists()


def test_help_lists_every_key_of_every_task_and_model_family(monkeypatch, capsys, tmp_path):
    from dataclasses import fields

    from rnnexp.models.family import family_class, family_names
    from rnnexp.tasks.base import task_class, task_names

    code, out, _ = run_main(monkeypatch, capsys, tmp_path, "--help")
    words = set(out.replace(",", " ").replace(":", " ").split())
    assert code == 0
    for name in task_names():
        assert f"task={name}" in words
        assert {f"task.{f.name}" for f in fields(task_class(name).Config) if f.name != "name"} <= words, name
    for name in family_names():
        assert {f"model.{f.name}" for f in fields(family_class(name).Config) if f.name != "family"} <= words, name


def test_cfg_job_prints_the_composed_config(monkeypatch, capsys, tmp_path):
    code, out, _ = run_main(monkeypatch, capsys, tmp_path, "--cfg", "job", "model=rnn", "task.difficulty=hard")
    assert code == 0
    assert "cell: rnn" in out and "nonlinearity: relu" in out and "difficulty: hard" in out


@pytest.mark.slow
def test_bad_input_through_the_console_script(tmp_path):
    proc = rnnexp("model.hidden_size=-3", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "rnnexp: error: model.hidden_size=-3 is invalid: use an integer >= 1"
    assert not (tmp_path / "outputs").exists()


# Start-up: checking a config (and --help) must not import torch, which costs 1.4-2 s (rnnexp.lazy).
# Run in a fresh interpreter: in this one, the test session has imported torch long ago.
CHECK_WITHOUT_TORCH = """
import sys
from hydra import compose, initialize_config_module
import rnnexp.cli
from rnnexp.config import known_keys, load_run_config
from rnnexp.errors import ConfigError
from rnnexp.tasks.base import task_class, task_names

with initialize_config_module(config_module="rnnexp.conf", version_base="1.3"):
    for task in task_names():
        load_run_config(compose(config_name="config", overrides=[f"task={task}"]))  # every check runs
        # a wrong type for one of the task's own keys (its first after `name`), and two others
        key = [f for f in task_class(task).Config.__dataclass_fields__ if f != "name"][0]
        chosen = compose(config_name="config", overrides=[f"task={task}"]).model  # (its model's own key)
        model_check = "model.attention=global" if "attention" in chosen else "model.init=identity"
        for override in (f"task.{key}=[oops]", "train.lr=-1", model_check):
            try:
                load_run_config(compose(config_name="config", overrides=[f"task={task}", override]))
            except ConfigError:
                continue
            raise SystemExit(f"task={task} {override}: no ConfigError")
known_keys()
print("torch imported:", "torch" in sys.modules)
print("numpy imported:", "numpy" in sys.modules)
"""


def test_checking_a_config_does_not_import_torch(tmp_path):
    proc = subprocess.run([sys.executable, "-c", CHECK_WITHOUT_TORCH], cwd=tmp_path, env=ENV, check=False,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-2:] == ["torch imported: False", "numpy imported: False"]


MAIN_WITHOUT_TORCH = """
import sys
from rnnexp.cli import main
sys.argv = ["rnnexp", *sys.argv[1:]]
try:
    main()
except SystemExit as exit_:
    print("exit code:", exit_.code or 0)
print("torch imported:", "torch" in sys.modules)
print("numpy imported:", "numpy" in sys.modules)  # (~60 ms of a config error's 0.5 s)
"""


@pytest.mark.parametrize("arg,code", [("--help", 0), ("train.lr=-1", 2), ("task.difficulty=foo", 2),
                                      ("model=foo", 2), ("train.threads=0", 2)])
def test_help_and_config_errors_do_not_import_torch(tmp_path, arg, code):
    proc = subprocess.run([sys.executable, "-c", MAIN_WITHOUT_TORCH, arg], cwd=tmp_path, env=ENV, check=False,
                          capture_output=True, text=True, timeout=120)
    assert proc.stdout.strip().splitlines()[-3:] == [f"exit code: {code}", "torch imported: False",
                                                     "numpy imported: False"], proc.stderr
    assert not (tmp_path / "outputs").exists()
