"""Every bad input: one line naming the key, the value and what is valid; a non-zero exit; and an
earlier run's directory left byte-for-byte as it was."""

import pytest
import torch

from tests.test_charlm import bad_corpus_file
from tests.test_cli import run_main, snapshot
from tests.conftest import MODEL_YAMLS, TASK_YAMLS


def checkpoint_dir(tmp, kind):
    path = tmp / f"run-{kind}"
    path.mkdir()
    if kind == "truncated":
        (path / "checkpoint.pt").write_bytes(b"PK\x03\x04 torn off")
    elif kind == "other-version":
        torch.save({"format": 999, "shape": {}}, path / "checkpoint.pt")
    return path


# (arguments, text the one-line message must contain). {tmp} is a scratch folder, {run} the earlier run.
CASES = [
    (["model=lstmm"], "choose model= one of " + ", ".join(sorted(p.stem for p in MODEL_YAMLS))),
    (["task=qrsuu"], "choose task= one of " + ", ".join(sorted(p.stem for p in TASK_YAMLS))),
    (["task.difficulty=impossible"], "task.difficulty='impossible' is invalid: choose one of easy"),
    (["model.hidden_size=-3"], "model.hidden_size=-3 is invalid: use an integer >= 1"),
    (["train.lr=abc"], "train.lr: Value 'abc' of type 'str' could not be converted to Float"),
    (["train.epochs=0"], "train.epochs=0 is invalid"),
    (["task.t1=[3,1]"], "task.t1=[3, 1] is invalid: use [min,max] with min <= max"),
    (["task.length=3"], "task.length: 3 is not a list; give one in brackets, e.g. task.length=[3,3]"),
    (["task.t2=[1,2]"], "every t2 must come after every t1"),
    (["task.length=[5,9]"], "task.length=(5, 9) is invalid: the shortest sequence must be longer"),
    (["task.difficulty=custom"], "task.difficulty=custom needs task.length, task.t1 and task.t2"),
    (["train.lrr=1"], "train.lrr is not a known key; did you mean train.lr?"),
    (["trian.epochs=2"], "trian.epochs is not a known key; did you mean train.epochs?"),
    (["model.dropout=2"], "model.dropout=2.0 is invalid: use 0 <= dropout < 1"),
    (["model.num_layers=0"], "model.num_layers=0 is invalid"),
    (["model=rnn", "model.nonlinearity=sigmoid"], "model.nonlinearity='sigmoid' is invalid: choose one of relu, tanh"),
    (["model=lstm", "model.nonlinearity=relu"], "model.nonlinearity is not a key of model=lstm; model=rnn has it"),
    (["model=lstm", "+model.nonlinearity=relu"], "model.nonlinearity=relu applies to model.cell=rnn only"),
    (["model.param_budget=3"], "model.param_budget=3 is invalid"),
    # the key named once (it read model.model.hidden_size), the resolver's own words without OmegaConf's
    (["experiment=long_lags", "model.cell=xyz"], "error: model.hidden_size: this preset has no setting for model.cell=xyz"),
    (["model=rnn", "model.init=forget_bias"], "model.init=forget_bias does not apply to model.cell=rnn"),
    (["model=lstm", "model.init=identity"], "model.init=identity does not apply to model.cell=lstm"),
    (["+colour=red"], "+colour=... is not a key rnnexp knows"),
    (["model.hidden_size=200000"], "needs ~"),
    (["train.optimizer=lbfgs"], "train.optimizer='lbfgs' is invalid: choose one of rmsprop, adam, sgd"),
    (["train.grad_clip=-1"], "train.grad_clip=-1.0 is invalid"),
    (["train.target_accuracy=1.5"], "train.target_accuracy=1.5 is invalid"),
    (["train.threads=0"], "train.threads='0' is invalid: use auto or an integer >= 1"),
    (["train.progress=fancy"], "train.progress='fancy' is invalid"),
    (["train.batch_size=0"], "train.batch_size=0 is invalid"),
    (["task=echo", "task.delay=-1"], "task.delay=-1 is invalid: use an integer >= 0"),
    (["task=echo", "task.chunk_length=0"], "task.chunk_length=0 is invalid"),
    (["task=echo", "task.series_length=5"], "task.series_length=5 is invalid: use at least one chunk"),
    (["task=charlm", "task.corpus={tmp}/missing.txt"], "no such file"),
    (["task=charlm", "task.corpus={corpus:directory}"], "is a directory"),
    (["task=charlm", "task.corpus={corpus:empty}"], "is empty"),
    (["task=charlm", "task.corpus={corpus:binary}"], "looks binary"),
    (["task=charlm", "task.corpus={corpus:latin1}"], "is not UTF-8"),
    (["task=charlm", "task.corpus={corpus:short}"], "too short for one batch of chunks"),
    (["train.resume={tmp}/no-such-run"], "is not a directory"),
    (["train.resume={ckpt:empty}"], "checkpoint.pt does not exist"),
    (["train.resume={ckpt:truncated}"], "is not a readable checkpoint"),
    (["train.resume={ckpt:other-version}"], "has checkpoint format 999"),
    (["train.resume={run}", "model.hidden_size=8"], "the command line changes model.hidden_size: 4 -> 8"),
    (["train.resume={run}", "train.lr=0.5"], "the command line changes train.lr: 0.001 -> 0.5"),
    (["train.resume=auto"], "train.resume=auto resumes each job of a sweep"),
    (["train.resume={run}"], "has already finished (1 epochs)"),
    (["hydra.run.dir={run}/results.json/sub"], "results.json/sub: Not a directory; check the output directory"),
    (["foo"], "Error parsing override 'foo'"),
]


def test_every_bad_input_is_one_clear_line_and_loses_nothing(monkeypatch, capsys, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("covers the CPU-only answers")
    work, scratch = tmp_path / "work", tmp_path / "scratch"
    work.mkdir(), scratch.mkdir()
    code, _, err = run_main(monkeypatch, capsys, work, "train.epochs=1", "train.progress=lines",
                            "train.target_accuracy=null")
    assert code == 0, err
    (run,) = list((work / "outputs" / "runs").glob("*/*"))
    before = snapshot(work / "outputs")
    for args, expected in CASES:
        filled = []
        for arg in args:
            for kind in ("directory", "empty", "binary", "latin1", "short"):
                if f"{{corpus:{kind}}}" in arg:
                    arg = arg.replace(f"{{corpus:{kind}}}", str(bad_corpus_file(scratch, kind)))
            for kind in ("empty", "truncated", "other-version"):
                if f"{{ckpt:{kind}}}" in arg:
                    arg = arg.replace(f"{{ckpt:{kind}}}", str(checkpoint_dir(scratch, kind)))
            filled.append(arg.format(tmp=scratch, run=run))
        code, _, err = run_main(monkeypatch, capsys, work, *filled)
        lines = err.strip().splitlines()
        assert code == 2, (filled, code, err)
        assert len(lines) == 1 and lines[0].startswith("rnnexp: error: "), (filled, err)
        assert expected in lines[0], (filled, lines[0])
        assert "Traceback" not in err
        assert snapshot(work / "outputs") == before, f"{filled} changed the outputs directory"
        assert len(list((work / "outputs" / "runs").glob("*/*"))) == 1, f"{filled} left a new run directory"
