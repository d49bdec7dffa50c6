"""What the performance work added, each kept honest: epochs as windows through the data, bf16
autocast, the thread policy beside busy processes, the language-model regularisers, the CUDA
graph step (on a GPU only), and the benchmark itself (a smoke run)."""

import json
import subprocess
import sys
import time

import pytest
import torch

from rnnexp.config import load_run_config
from rnnexp.engine.callbacks import Callbacks
from rnnexp.engine.loop import Engine, Sums
from rnnexp.errors import ConfigError
from rnnexp.models.build import build_model
from rnnexp.models.recurrent_net import RecurrentModel
from rnnexp.tasks import build_task
from tests.conftest import REPO, SHAKESPEARE, compose_config

ECHO = ["task=echo", "model=gru", "model.hidden_size=8", "task.series_length=400", "task.chunk_length=20",
        "task.val_length=200",
        "train.batch_size=4", "train.target_accuracy=null", "train.insight_every=0"]


def engine_for(compose_cfg, *overrides) -> Engine:
    run = load_run_config(compose_cfg(*overrides))
    torch.manual_seed(0)
    task = build_task(run.task, run.train.batch_size, run.train.seed)
    return Engine(task, build_model(run.model, task), run.train, torch.device("cpu"))


class Seen:
    """Records the batches the engine trains on (and the state each starts from)."""

    def __init__(self, engine):
        self.batches, self.starts = [], []
        step = engine.step

        def recording(batch, start):
            self.batches.append(batch.inputs.clone())
            self.starts.append(start)
            return step(batch, start)
        engine.step = recording


def test_batches_per_epoch_windows_go_on_through_the_data_and_carry_the_state(compose_cfg):
    whole = engine_for(compose_cfg, *ECHO, "train.epochs=1")
    count = whole.task.train_batch_count()
    assert count == 20
    every = Seen(whole)
    whole.fit(Callbacks([]))
    windows = engine_for(compose_cfg, *ECHO, "train.epochs=3", "train.batches_per_epoch=8")
    seen = Seen(windows)
    windows.fit(Callbacks([]))
    assert len(seen.batches) == 24
    # Epochs 1-2 and half of 3 are the first pass, in order; then the second pass begins.
    assert all(torch.equal(a, b) for a, b in zip(seen.batches[:20], every.batches))
    second_pass = list(windows.task.train_batches(2))
    assert torch.equal(seen.batches[20], second_pass[0].inputs)
    # The first chunk of epoch 2 goes on from the state epoch 1 ended with (not from zeros).
    assert seen.starts[8] is not None and seen.starts[20] is None


def test_bf16_autocast_trains_and_differs_from_fp32(compose_cfg):
    results = {}
    for precision in ("fp32", "bf16"):
        engine = engine_for(compose_cfg, "task=qrsu", "model=lstm", "model.hidden_size=16", "train.epochs=3",
                            "train.target_accuracy=null", "train.optimizer=adam", "train.lr=1e-2",
                            f"train.precision={precision}", "task.train_size=640", "task.val_size=250")
        engine.fit(Callbacks([]))
        results[precision] = [h["train/loss"] for h in engine.state.history]
        batch = next(iter(engine.task.eval_batches("val")))
        with engine._precision():
            outputs, _ = engine.model(batch.inputs)
            score = engine.task.score(outputs, batch)
        assert outputs.dtype == (torch.bfloat16 if precision == "bf16" else torch.float32), "the products' dtype"
        assert score.loss.dtype == torch.float32, "the loss is float32 either way"
    assert results["bf16"][-1] < results["bf16"][0], "it learns"
    assert results["bf16"] != results["fp32"], "the products ran in bfloat16"
    assert results["bf16"][-1] == pytest.approx(results["fp32"][-1], rel=0.1)


def output_dtypes(model) -> tuple[list, object]:
    """What the output layer returns at each forward: bf16 only under autocast."""
    seen: list = []
    hook = model.head.register_forward_hook(lambda m, i, out: seen.append(out.dtype))
    return seen, hook


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_bf16_runs_validation_and_test_in_bf16_and_carries_the_state_in_float32(compose_cfg, cell):
    """Before: evaluation ran in float32, and the LSTM's carried (h, c) was rounded to bf16 at every
    chunk boundary (and saved so)."""
    engine = engine_for(compose_cfg, *ECHO, f"model={cell}", "train.epochs=1", "train.precision=bf16")
    seen, hook = output_dtypes(engine.model)
    engine.fit(Callbacks([]))
    assert set(seen) == {torch.bfloat16}, "training and validation both compute in bf16"
    seen.clear()
    engine.test()
    assert set(seen) == {torch.bfloat16}, "and the test"
    hook.remove()
    carried = engine.state.carried
    assert all(t.dtype == torch.float32 for t in (carried if isinstance(carried, tuple) else (carried,)))
    from rnnexp.engine.precision import bf16_layers

    assert bf16_layers(engine.model, engine.task.example().batch.inputs, engine.device) == \
        f"matrix products in bf16: recurrent ({cell}), output"


def test_the_start_line_goes_by_the_products_not_the_outputs():
    """torch's CPU GRU returns float32 under autocast, yet its matrix products run in bf16: the
    start line says what is computed in bf16, not what comes out."""
    from rnnexp.engine.precision import bf16_layers

    gru = RecurrentModel("gru", 0, 65, 32, vocab_size=65)
    inputs = torch.randint(0, 65, (1, 10))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert gru(inputs)[1].dtype == torch.float32
    assert bf16_layers(gru, inputs, torch.device("cpu")) == \
        "matrix products in bf16: recurrent (gru), output; embedding: a lookup"
    torch.manual_seed(0)
    dropped = RecurrentModel("lstm", 0, 65, 32, vocab_size=65, dropout=0.5).train()
    state = torch.get_rng_state()
    bf16_layers(dropped, inputs, torch.device("cpu"))
    assert torch.equal(torch.get_rng_state(), state) and dropped.training, "no draw, the mode kept"


def test_precision_is_checked(compose_cfg):
    with pytest.raises(ConfigError, match="train.precision"):
        load_run_config(compose_cfg("train.precision=fp16"))


def test_sums_add_one_vector_per_step_and_merge_other_keys_by_name():
    sums = Sums(torch.device("cpu"), {"loss": 1.0, "count": 2.0})
    sums.add({"loss": torch.tensor(0.5), "count": torch.tensor(1.0)})
    sums.add({"count": torch.tensor(1.0), "steps": torch.tensor(3.0)})
    assert sums.to_host() == {"loss": 1.5, "count": 4.0, "steps": 3.0}


def test_threads_auto_measures_the_cores_other_processes_keep_busy():
    from rnnexp.engine.threads import busy_cores_elsewhere

    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)
        assert busy_cores_elsewhere(0.5) >= 0.7
    finally:
        hog.kill()


def test_weight_drop_masks_the_recurrent_weights_in_training_only():
    torch.manual_seed(0)
    model = RecurrentModel("lstm", 0, 20, 16, num_layers=2, vocab_size=20, embedding_size=8, weight_drop=0.5)
    model.apply_weight_drop()
    x = torch.randint(0, 20, (3, 12))
    assert not torch.equal(model(x)[0], model(x)[0]), "a fresh mask every forward pass"
    model.eval()
    assert torch.equal(model(x)[0], model(x)[0])
    raw = model.rnn.parametrizations.weight_hh_l1.original
    assert torch.equal(model.rnn.weight_hh_l1, raw), "no dropout in evaluation"
    model.train()
    model(x)[0].sum().backward()
    assert raw.grad is not None and raw.grad.abs().sum() > 0, "the raw weights learn"


def test_tied_embeddings_share_one_matrix_and_bad_ties_are_refused(compose_cfg):
    model = RecurrentModel("gru", 0, 30, 16, vocab_size=30, tie_weights=True)
    assert model.head.weight is model.encoder.weight
    with pytest.raises(ConfigError, match="embedding_size"):
        load_run_config(compose_cfg("task=charlm", "model.tie_weights=true", "model.hidden_size=32",
                                    "model.embedding_size=16"))
    with pytest.raises(ConfigError, match="token inputs"):
        load_run_config(compose_cfg("task=qrsu", "model.tie_weights=true"))


def test_the_cpu_step_is_the_plain_one(compose_cfg):
    from rnnexp.engine.cuda_graph import graphs_wanted

    engine = engine_for(compose_cfg, "task=qrsu", "model=lstm")
    assert engine.step == engine.train_step and engine.step_kind == ""

    assert not graphs_wanted("auto", torch.device("cpu"))[0]
    assert not graphs_wanted("off", torch.device("cuda"))[0]
    assert graphs_wanted("auto", torch.device("cuda"))[0]
    dropped = RecurrentModel("lstm", 0, 20, 16, vocab_size=20, weight_drop=0.3)
    dropped.apply_weight_drop()
    use, why = graphs_wanted("auto", torch.device("cuda"), dropped)
    assert not use and "weight_drop" in why, "cuDNN moves parametrized weights"
    assert graphs_wanted("auto", torch.device("cuda"), RecurrentModel("lstm", 0, 20, 16, vocab_size=20))[0]


def test_graph_buckets_change_no_score_and_keep_a_run_under_eight_shapes(compose_cfg):
    """Before: one graph (and memory pool) per batch shape, 37 lengths (x 2 batch sizes) in 20 epochs of nightmare."""
    from rnnexp.engine.cuda_graph import BUCKET, MAX_GRAPHS, pad_to_bucket

    engine = engine_for(compose_cfg, "task=qrsu", "task.difficulty=nightmare", "model=lstm", "model.hidden_size=8")
    task, model = engine.task, engine.model.eval()
    shapes, raw = set(), set()
    for epoch in range(1, 21):
        for batch in task.train_batches(epoch):
            raw.add(batch.inputs.shape[1])
            shapes.add(tuple(pad_to_bucket(batch).inputs.shape))
    assert len(raw) > 20 and len(shapes) <= MAX_GRAPHS
    assert all(shape[1] % BUCKET == 0 for shape in shapes) and max(s[1] for s in shapes) - max(raw) < 32
    batch = next(iter(task.eval_batches("val")))
    padded = pad_to_bucket(batch)
    assert padded.inputs.shape[1] > batch.inputs.shape[1]
    with torch.no_grad():
        assert torch.allclose(task.score(model(padded.inputs)[0], padded).sums["loss"],
                              task.score(model(batch.inputs)[0], batch).sums["loss"], rtol=1e-5)
    # The lecture's left padding reads every answer at the last step: its batches are never padded further.
    left = engine_for(compose_cfg, "task=qrsu", "task.difficulty=nightmare", "task.padding=left").task
    batch = next(iter(left.eval_batches("val")))
    assert pad_to_bucket(batch) is batch


def test_a_graph_serves_only_batches_whose_answers_are_read_alike():
    """A mixing curriculum's epoch holds batches of one shape with lengths (sequences of several
    stages, padded) and without (all of one length): a graph captured on one would read the other's
    answers at the wrong steps (replayed with stale lengths, or none to copy into)."""
    from rnnexp.engine.cuda_graph import graph_key
    from rnnexp.tasks.base import Batch

    inputs, targets = torch.zeros(4, 8, 1), torch.zeros(4, dtype=torch.long)
    plain = Batch(inputs, targets)
    mixed = Batch(inputs, targets, lengths=torch.tensor([8, 4, 8, 2]))
    left = Batch(inputs, targets, lengths=torch.tensor([8, 4, 8, 2]), left_padded=True)
    assert len({graph_key(plain, None), graph_key(mixed, None), graph_key(left, None)}) == 3
    assert graph_key(mixed, None) == graph_key(Batch(inputs, targets, lengths=torch.tensor([1, 8, 3, 8])), None)
    assert graph_key(plain, None) != graph_key(plain, (torch.zeros(1, 4, 2),))


def test_graphs_stay_away_from_what_they_cannot_follow():
    """Multi-layer dropout (cuDNN's dropout state) stays eager; any optimizer setting that changes
    (not only the learning rate) is seen, so the graphs are captured again."""
    from rnnexp.engine.cuda_graph import graphs_wanted, optimizer_settings
    from rnnexp.engine.loop import make_optimizer

    deep = RecurrentModel("lstm", 0, 20, 16, vocab_size=20, num_layers=2, dropout=0.3)
    use, why = graphs_wanted("auto", torch.device("cuda"), deep)
    assert not use and "dropout between layers" in why
    assert graphs_wanted("auto", torch.device("cuda"), RecurrentModel("lstm", 0, 20, 16, vocab_size=20, num_layers=2))[0]
    model = RecurrentModel("gru", 4, 2, 8)
    cfg = load_run_config(compose_config("train.optimizer=adam")).train
    optimizer = make_optimizer(cfg, model.parameters())
    before = optimizer_settings(optimizer)
    optimizer.param_groups[0]["betas"] = (0.5, 0.9)
    assert optimizer_settings(optimizer) != before
    before = optimizer_settings(optimizer)
    optimizer.param_groups[0]["weight_decay"] = 0.1
    assert optimizer_settings(optimizer) != before


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("overrides", [["task=qrsu", "model=lstm"], ["task=charlm", "model=lstm", "model.hidden_size=64"],
                                       ["task=echo", "model=gru", "model.hidden_size=16"]])
def test_the_cuda_graph_step_trains_like_the_eager_one(compose_cfg, overrides):
    device = torch.device("cuda")
    losses = {}
    for mode in ("off", "auto"):
        run = load_run_config(compose_cfg(*overrides, f"train.cuda_graph={mode}", "train.optimizer=adam"))
        torch.manual_seed(0)
        task = build_task(run.task, run.train.batch_size, run.train.seed)
        engine = Engine(task, build_model(run.model, task).to(device), run.train, device)
        state, losses[mode] = None, []
        for _, batch in zip(range(30), task.train_batches(1)):
            batch = batch.to(device)
            state, sums, _ = engine.step(batch, None if batch.reset else state)
            losses[mode].append(float(sums["loss"]))
        if mode == "auto":
            assert any(g is not None for g in engine.step.graphs.values()), "a graph was captured and replayed"
    assert losses["auto"] == pytest.approx(losses["off"], rel=1e-3, abs=1e-4)


@pytest.mark.slow
def test_the_benchmark_runs_and_reports_every_ratio(tmp_path):
    out = tmp_path / "bench.json"
    corpus = SHAKESPEARE
    if not corpus.is_file():  # the project runs without ../shared: any text of some size will do
        corpus = tmp_path / "text.txt"
        corpus.write_text((REPO / "README.md").read_text(encoding="utf-8") * 4, encoding="utf-8")
    proc = subprocess.run([sys.executable, "scripts/bench.py", "qrsu", "charlm", "startup", "--quick",
                           f"--corpus={corpus}", f"--out={out}"], cwd=REPO, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = json.loads(out.read_text())
    assert results["qrsu"]["easy"]["speedup"] > 0 and results["qrsu"]["moderate"]["speedup_vs_1_thread"] > 0
    assert len(results["qrsu"]["easy"]["val_accuracy_curves"]["lecture"]) == 2
    assert results["qrsu"]["easy"]["speedup_vs_notebook"] > 0
    assert len(results["qrsu"]["moderate"]["val_accuracy_curves"]["notebook"]) == 2
    assert results["charlm"]["rnnexp bf16"]["speed_ratio"] > 0
    assert set(results["startup"]) == {"--help", "config error"}
    assert "| QRSU easy" in proc.stdout and "word_language_model" not in proc.stdout.split("|")[0]


@pytest.mark.parametrize("look", [5, 13])  # mid-window; between two windows (after validation)
def test_a_windowed_run_stopped_anywhere_resumes_exactly(run_cfg, tmp_path, monkeypatch, look):
    """Epochs as windows through the data, the carried state across them: stop and resume = one run."""
    import signal as signals

    from rnnexp import run as run_module
    from rnnexp.errors import Interrupted
    from tests.test_reliability import stop_at_check

    windows = [*ECHO, "train.epochs=4", "train.batches_per_epoch=6", "task.eval_streams=2"]
    clean = run_cfg(tmp_path, *windows, name="clean")
    monkeypatch.setattr(run_module, "stop_on_signals", stop_at_check(look))
    with pytest.raises(Interrupted) as info:
        run_cfg(tmp_path, *windows, name="stopped")
    assert info.value.signum == signals.SIGINT
    monkeypatch.undo()
    resumed = run_cfg(tmp_path, *windows, f"train.resume={tmp_path / 'stopped'}", name="stopped")
    strip = lambda r: [{k: v for k, v in h.items() if "second" not in k} for h in r["history"]]
    assert strip(resumed) == strip(clean) and resumed["test"] == clean["test"]


def test_the_progress_counts_the_batches_a_long_window_runs(compose_cfg):
    """A window longer than one pass over the data (47 batches of a 27-batch epoch) said "47/27
    steps (174%), ~-73 s left": the progress counts the window."""
    from rnnexp.config import load_run_config
    from rnnexp.run import batches_per_epoch
    from rnnexp.tasks import build_task

    run = load_run_config(compose_cfg("task.train_size=64", "train.batches_per_epoch=5"))
    task = build_task(run.task, run.train.batch_size, 0)
    assert task.train_batch_count() == 2 and batches_per_epoch(task, run) == 5
    run = load_run_config(compose_cfg("task.train_size=64"))
    assert batches_per_epoch(task, run) == 2


def test_a_run_that_slows_to_under_half_its_first_rate_for_two_epochs_says_so_once(caplog):
    from types import SimpleNamespace

    from rnnexp.report.slowdown import SlowdownWarning

    watch = SlowdownWarning("chars")
    rates = [13_000, 13_200, 12_000, 6_000, 13_000, 5_000, 1_655, 1_600, 1_500]  # epoch 4 alone is no trend
    with caplog.at_level("WARNING", logger="rnnexp"):
        for epoch, rate in enumerate(rates, start=1):
            watch.on_epoch_end(SimpleNamespace(), {"epoch": epoch, "train/targets_per_second": rate,
                                                   "seconds": 20.0 * epoch})
    warnings = [r.getMessage() for r in caplog.records]
    assert warnings == ["warning: training runs at 1,655 chars/s since epoch 6, under half of its first two "
                        "epochs' 13,100: another process may be using these cores (train.threads=1 helps a small "
                        "model beside others); a time limit now buys less training"]
    quick = SlowdownWarning("seqs")  # epochs of milliseconds are not judged
    for epoch, rate in enumerate([1000, 1000, 100, 100, 100], start=1):
        quick.on_epoch_end(SimpleNamespace(), {"epoch": epoch, "train/targets_per_second": rate, "seconds": 0.01 * epoch})
    assert not quick.warned
