"""A result says where it came from (issue 17, item 12): rnnexp, the checkout, torch, Python, the
machine, threads, the command line; a character model's corpus by its sha256."""

from __future__ import annotations

import hashlib
import json
import platform
import subprocess
import sys

import pytest
import torch

from tests.conftest import REPO

SMALL = ["task.train_size=320", "task.val_size=200", "task.test_size=200", "train.epochs=1",
         "train.target_accuracy=null", "train.insight_every=0"]


def test_results_json_says_what_ran_it_on_what(run_cfg, tmp_path):
    where = run_cfg(tmp_path, *SMALL)["provenance"]
    assert where["rnnexp"] and where["torch"] == torch.__version__ and where["python"] == platform.python_version()
    assert where["cpu"] and where["gpu"] is None and where["threads"] == 1
    assert "train.threads=1" in where["overrides"] and where["command"]
    if (REPO / ".git").exists():  # run from a checkout: its commit and whether it has changes
        head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
        assert where["git"]["commit"] == head and isinstance(where["git"]["dirty"], bool)


def test_a_character_model_records_its_corpus_by_sha256(run_cfg, tmp_path):
    corpus = tmp_path / "book.txt"
    corpus.write_text("It was the best of times, it was the worst of times. " * 400, encoding="utf-8")
    results = run_cfg(tmp_path, "task=charlm", f"task.corpus={corpus}", "model.hidden_size=16", "train.batch_size=4",
                      "task.eval_streams=2", "train.epochs=1", "train.batches_per_epoch=2", "train.insight_every=0",
                      "task.sample_length=0")
    data = results["data"]
    assert data["sha256"] == hashlib.sha256(corpus.read_bytes()).hexdigest()
    assert data["characters"] == len(corpus.read_text()) and data["corpus"] == str(corpus)
    assert sum(data["parts"].values()) <= data["characters"]


def test_a_resumed_run_keeps_where_it_began_and_says_where_it_went_on(run_cfg, tmp_path):
    first = run_cfg(tmp_path, *SMALL)
    again = run_cfg(tmp_path, *SMALL[:-3], "train.epochs=2", "train.target_accuracy=null", "train.insight_every=0",
                    f"train.resume={tmp_path / 'run'}")
    assert again["provenance"] == first["provenance"]
    (resume,) = again["resumes"]
    assert f"train.resume={tmp_path / 'run'}" in resume["overrides"] and resume["at"]
    assert again["config"]["train"]["epochs"] == 2 and again["config"]["task"]["heldout_seed"] == 1997
    assert "overwrite" not in again["config"]["train"], "an instruction, not a setting of the run"


@pytest.mark.slow
def test_a_folder_named_rnnexp_in_the_working_directory_shadows_nothing(tmp_path):
    (tmp_path / "rnnexp").mkdir()  # e.g. the parent of a clone: python -m puts the working directory first
    proc = subprocess.run([sys.executable, "-m", "rnnexp", *SMALL, f"hydra.run.dir={tmp_path / 'out'}"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert json.loads((tmp_path / "out" / "results.json").read_text())["provenance"]["rnnexp"]
