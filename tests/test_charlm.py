"""The character language model: corpus handling, streams, bits per character, sampling, bad input."""

import json
import math
import sys

import pytest
import torch

from rnnexp.tasks import corpus
from rnnexp.config import load_run_config
from rnnexp.errors import DataError, RunDirError
from rnnexp.tasks.charlm import CharLMTask, split_text
from tests.conftest import SHAKESPEARE


def bad_corpus_file(folder, kind):
    """A corpus path that is missing, a directory, empty, binary, Latin-1 or too short."""
    path = folder / f"corpus-{kind}"
    if kind == "directory":
        path.mkdir()
    elif kind == "empty":
        path.write_text("  \n")
    elif kind == "binary":
        path.write_bytes(b"abc\x00\x01\x02" * 100)
    elif kind == "latin1":
        path.write_bytes("caf\xe9 cr\xe8me ".encode("latin-1") * 500)
    elif kind == "short":
        path.write_text("hello world, too short")
    return path

PATTERN = "".join(f"{w} the {c} sat on the mat {i % 7}.\n" for i, (w, c) in
                  enumerate([("and", "cat"), ("but", "dog"), ("so", "rat"), ("then", "bat")] * 150))


@pytest.fixture
def small_corpus(tmp_path):
    path = tmp_path / "small.txt"
    path.write_text(PATTERN, encoding="utf-8")
    return path


def charlm_task(compose_cfg, corpus_path, *overrides, batch_size=4):
    run = load_run_config(compose_cfg("task=charlm", f"task.corpus={corpus_path}",
                                      f"train.batch_size={batch_size}", *overrides))
    return CharLMTask(run.task, batch_size=batch_size, seed=0)


def test_split_and_vocabulary_round_trip(compose_cfg, small_corpus):
    task = charlm_task(compose_cfg, small_corpus, "task.chunk_length=10")
    train, val, test = split_text(PATTERN, 0.05, 0.05)
    assert train + val + test == PATTERN and len(test) == len(val) == int(len(PATTERN) * 0.05)
    assert task.vocab == "".join(sorted(set(PATTERN)))
    decode = lambda ids: "".join(task.vocab[i] for i in ids.tolist())
    assert decode(task.train_ids) == train
    assert decode(task.heldout_ids["val"]) == val and decode(task.heldout_ids["test"]) == test


def test_batches_are_consecutive_text_per_stream_across_chunks(compose_cfg, small_corpus):
    task = charlm_task(compose_cfg, small_corpus, "task.chunk_length=10", batch_size=3)
    batches = list(task.train_batches(epoch=2))
    assert len(batches) == task.train_batch_count()
    assert batches[0].reset and not any(b.reset for b in batches[1:])
    inputs = torch.cat([b.inputs for b in batches], 1)
    targets = torch.cat([b.targets for b in batches], 1)
    assert torch.equal(inputs[:, 1:], targets[:, :-1]), "the target is the next character"
    # Each stream's inputs plus its last target is a piece of the text; the pieces follow each other.
    pieces = torch.cat([torch.cat([inputs[i], targets[i, -1:]]) for i in range(3)])
    offsets = [o for o in range(10) if torch.equal(task.train_ids[o:o + len(pieces)], pieces)]
    assert len(offsets) == 1
    other = torch.cat([b.inputs for b in task.train_batches(epoch=3)], 1)
    assert not torch.equal(other[:, :50], inputs[:, :50]), "each epoch starts at a fresh offset"


def test_training_beats_the_uniform_baseline_and_bpc_is_loss_over_ln2(run_cfg, tmp_path, small_corpus):
    res = run_cfg(tmp_path, "task=charlm", f"task.corpus={small_corpus}", "model=lstm", "model.hidden_size=48",
                  "model.embedding_size=16", "task.chunk_length=25", "train.batch_size=8", "train.epochs=6",
                  "task.sample_length=40")
    vocab = len(set(PATTERN))
    first, best = res["history"][0]["val/loss"], res["best"]["val/loss"]
    assert best < 0.35 * math.log(vocab) and best < first
    for h in res["history"]:
        assert h["val/bpc"] == pytest.approx(h["val/loss"] / math.log(2))
        assert h["val/perplexity"] == pytest.approx(math.exp(h["val/loss"]))
    assert res["objective"]["name"] == "val/loss" and res["objective"]["direction"] == "min"
    assert json.loads((tmp_path / "run" / "vocab.json").read_text()) == "".join(sorted(set(PATTERN)))


def test_sampling_is_reproducible_keeps_the_prompt_and_rejects_unknown_characters(run_cfg, tmp_path, small_corpus,
                                                                                  monkeypatch, capsys):
    from rnnexp import sample

    run_cfg(tmp_path, "task=charlm", f"task.corpus={small_corpus}", "model=gru", "model.hidden_size=32",
            "task.chunk_length=25", "train.batch_size=8", "train.epochs=2", "task.sample_length=0")
    capsys.readouterr()

    def cli(*args):
        monkeypatch.setattr(sys, "argv", ["rnnexp-sample", f"run={tmp_path / 'run'}", *args])
        code = 0
        try:
            sample.main()
        except SystemExit as exit_:
            code = exit_.code
        return code, *capsys.readouterr()

    code, first, _ = cli("prompt=and the", "length=60", "seed=5")
    monkeypatch.setattr(sys, "argv", ["rnnexp-sample", str(tmp_path / "run"), "prompt=and the", "length=60", "seed=5"])
    sample.main()  # a bare run directory means run=<dir>
    assert capsys.readouterr()[0] == first
    assert code == 0 and first.startswith("and the") and len(first.rstrip("\n")) == len("and the") + 60
    assert cli("prompt=and the", "length=60", "seed=5")[1] == first
    assert cli("prompt=and the", "length=60", "seed=6")[1] != first
    code, _, err = cli("prompt=XYZ", "length=5")
    assert code == 2 and "not in the run's vocabulary" in err and "XYZ" in err
    code, _, err = cli("temperature=0")
    assert code == 2 and "temperature" in err
    for bad, key in (("length=abc", "length"), ("device=foo", "device"), ("top_k=0", "top_k")):
        code, _, err = cli(bad)
        assert code == 2 and len(err.strip().splitlines()) == 1 and key in err, (bad, err)


def test_sampling_from_a_run_without_a_model_is_one_line(tmp_path):
    from rnnexp.models.load import load_best

    with pytest.raises(RunDirError, match="best.pt"):
        load_best(tmp_path)
    (tmp_path / "best.pt").write_bytes(b"torn")
    with pytest.raises(RunDirError, match="truncated"):
        load_best(tmp_path)


@pytest.mark.parametrize("kind,expected", [
    ("missing", "no such file"), ("directory", "is a directory"), ("empty", "is empty"),
    ("binary", "looks binary .*; give a UTF-8 text file$"), ("latin1", "is not UTF-8 .*iconv -f latin1 -t utf-8 "),
    ("short", "too short"),
])
def test_bad_corpus_files_are_one_line_errors(compose_cfg, tmp_path, kind, expected):
    path = bad_corpus_file(tmp_path, kind)
    corpus.load_corpus.cache_clear()
    with pytest.raises(DataError, match=expected) as info:
        load_run_config(compose_cfg("task=charlm", f"task.corpus={path}"))
    assert "\n" not in str(info.value) and "task.corpus" in str(info.value) and "UTF-8 UTF-8" not in str(info.value)


def test_embedded_default_corpus_works_offline(compose_cfg):
    run = load_run_config(compose_cfg("task=charlm"))
    assert run.task.corpus == "python_reference"
    text = corpus.load_corpus("python_reference")
    assert len(text) > 200_000 and "statement" in text


def test_tinyshakespeare_from_the_cache_with_its_hash(monkeypatch, tmp_path):
    if not SHAKESPEARE.is_file():
        pytest.skip("../shared/data/tinyshakespeare.txt is not beside this checkout")
    (tmp_path / "tinyshakespeare.txt").write_bytes(SHAKESPEARE.read_bytes())
    monkeypatch.setenv("RNNEXP_CACHE_DIR", str(tmp_path))
    text = corpus.tinyshakespeare()  # pooch finds the file, checks its sha256, downloads nothing
    assert len(text) == 1_115_394 and len(set(text)) == 65


def test_tinyshakespeare_offline_without_cache_names_the_choices(monkeypatch, tmp_path):
    import pooch

    def offline(*args, **kwargs):
        raise ConnectionError("network is unreachable")

    monkeypatch.setattr(pooch, "retrieve", offline)
    monkeypatch.setenv("RNNEXP_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(DataError) as info:
        corpus.tinyshakespeare()
    message = str(info.value)
    for choice in ("tinyshakespeare.txt", "RNNEXP_CACHE_DIR", "task.corpus=", "python_reference"):
        assert choice in message
