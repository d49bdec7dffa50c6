"""train.init_from: a new run from another run's best model, with the source's model keys, a
fresh optimizer and (for a character model) the source's vocabulary; recorded in results.json."""

import json

import pytest

from rnnexp.errors import ConfigError, DataError
from tests.test_charlm import PATTERN

QRSU = ["task=qrsu", "task.train_size=128", "train.insight_every=0", "train.target_accuracy=null"]


def test_a_warm_start_begins_at_the_source_best_model_with_its_model_keys(run_cfg, tmp_path):
    source = run_cfg(tmp_path, *QRSU, "model=gru", "model.hidden_size=6", "train.epochs=4", name="source")
    # an optimizer that cannot move the weights: the new run's best model is the source's
    warm = run_cfg(tmp_path, *QRSU, f"train.init_from={tmp_path / 'source'}", "train.epochs=1",
                   "train.optimizer=sgd", "train.lr=1e-12", name="warm")
    assert warm["model"] == "gru" and warm["hidden_size"] == 6  # the composed default is lstm 4: the source decides
    assert warm["test"] == pytest.approx(source["test"], abs=1e-6)
    assert warm["init_from"] == {"run": str((tmp_path / "source").resolve()), "epoch": source["best"]["epoch"],
                                 "model_size": {"hidden_size": 6}}
    assert warm["config"]["train"]["init_from"] == str(tmp_path / "source")


def test_a_model_key_that_differs_from_the_source_is_refused_by_name(run_cfg, tmp_path):
    run_cfg(tmp_path, *QRSU, "model=gru", "train.epochs=1", name="source")
    with pytest.raises(ConfigError, match=r"the command line changes model.hidden_size=8 \(the source's: 4\)"):
        run_cfg(tmp_path, *QRSU, f"train.init_from={tmp_path / 'source'}", "model.hidden_size=8", name="warm")
    with pytest.raises(ConfigError, match=r"model.cell=lstm \(the source's: gru\)"):
        run_cfg(tmp_path, *QRSU, f"train.init_from={tmp_path / 'source'}", "model=lstm", name="warm2")
    assert run_cfg(tmp_path, *QRSU, f"train.init_from={tmp_path / 'source'}", "model=gru", "train.epochs=1",
                   name="warm3")["status"] == "completed"  # the same option is no conflict


def test_init_from_is_refused_with_resume_and_without_a_finished_run(run_cfg, compose_cfg, tmp_path):
    from rnnexp.config import load_run_config
    from rnnexp.errors import RunDirError

    with pytest.raises(ConfigError, match="holds no best.pt"):
        load_run_config(compose_cfg(f"train.init_from={tmp_path}"))
    run_cfg(tmp_path, *QRSU, "train.epochs=1", name="source")
    with pytest.raises(RunDirError, match="the command line changes train.init_from: None -> "):
        run_cfg(tmp_path, *QRSU, f"train.init_from={tmp_path / 'source'}", f"train.resume={tmp_path / 'source'}",
                "train.epochs=2", name="source")


def test_a_warm_started_run_resumes_and_still_names_its_source(run_cfg, tmp_path):
    run_cfg(tmp_path, *QRSU, "train.epochs=1", name="source")
    run_cfg(tmp_path, *QRSU, f"train.init_from={tmp_path / 'source'}", "train.epochs=1", name="warm")
    first = json.loads((tmp_path / "warm" / "results.json").read_text())["init_from"]
    resumed = run_cfg(tmp_path, f"train.resume={tmp_path / 'warm'}", "train.epochs=2", name="warm")
    assert resumed["epochs_run"] == 2 and resumed["init_from"] == first and first["epoch"] == 1


def test_a_character_model_keeps_the_source_vocabulary(run_cfg, tmp_path):
    common = ["task=charlm", "model.hidden_size=16", "model.embedding_size=8", "train.epochs=1",
              "train.batches_per_epoch=2", "task.chunk_length=10", "train.batch_size=4", "task.sample_length=0",
              "train.insight_every=0"]
    (tmp_path / "a.txt").write_text(PATTERN + "xyz" * 50, encoding="utf-8")
    (tmp_path / "b.txt").write_text(PATTERN, encoding="utf-8")  # fewer characters
    (tmp_path / "c.txt").write_text(PATTERN + "éé" * 50, encoding="utf-8")
    run_cfg(tmp_path, *common, f"task.corpus={tmp_path / 'a.txt'}", name="source")
    warm = run_cfg(tmp_path, *common, f"task.corpus={tmp_path / 'b.txt'}", f"train.init_from={tmp_path / 'source'}",
                   name="warm")
    vocab = lambda name: json.loads((tmp_path / name / "vocab.json").read_text())  # noqa: E731
    assert warm["status"] == "completed" and vocab("warm") == vocab("source") and "x" in vocab("warm")
    resumed = run_cfg(tmp_path, f"train.resume={tmp_path / 'warm'}", "train.epochs=2", name="warm")  # its own vocabulary
    assert resumed["epochs_run"] == 2 and vocab("warm") == vocab("source")
    with pytest.raises(DataError, match=r"has 1 character\(s\) the source run's vocabulary lacks: 'é'"):
        run_cfg(tmp_path, *common, f"task.corpus={tmp_path / 'c.txt'}", f"train.init_from={tmp_path / 'source'}",
                name="warm2")
