"""The study's answer: groups of seeds scored on held-out data with a 95% interval, each group
against the best one paired by seed, and the picture (points for categories, lines and bands for
numbers, the baseline on the axis, curves carried forward)."""

import json
import math

import pytest

from rnnexp.sweep.answer import study_answer, t_interval
from rnnexp.sweep.summary import main as summary_main
from rnnexp.sweep.summary import read_jobs
from tests.test_sweeps import fake_job

# model -> the test accuracy of seeds 1, 2, 3
STUDY = {"lstm": [0.95, 0.97, 0.99], "gru": [0.93, 0.955, 0.97], "rnn": [0.25, 0.27, 0.26]}


def study(root, extra=()):
    for i, (model, values) in enumerate(STUDY.items()):
        for seed, value in enumerate(values, start=1):
            fake_job(root, f"{3 * i + seed - 1}_x", [f"model={model}", f"train.seed={seed}", *extra], value=value,
                     target=5 if value > 0.9 else None, target_accuracy=0.9)
    return read_jobs(root)


def test_the_interval_is_students_t_clipped_to_the_metrics_range():
    low, high, clipped = t_interval([0.9, 0.95, 1.0], (0.0, 1.0))
    half = 4.302652729911275 * 0.05 / math.sqrt(3)  # t(0.975, 2 degrees of freedom)
    assert low == pytest.approx(0.95 - half) and high == 1.0 and clipped
    assert t_interval([0.5]) is None and t_interval([0.4, 0.6])[2] is False


def test_the_answer_is_on_the_test_set_per_group_with_each_seed(tmp_path):
    answer = study_answer(study(tmp_path))
    assert answer.metric == "test/accuracy" and "the test set" in answer.what and answer.by == ["model"]
    groups = {g.label: g for g in answer.groups}
    assert groups["model=lstm"].values == [(1, 0.95), (2, 0.97), (3, 0.99)]
    assert groups["model=lstm"].mean == pytest.approx(0.97) and groups["model=lstm"].solved == "3 of 3"
    assert groups["model=rnn"].solved == "0 of 3" and answer.baseline == 0.25 and answer.best == "model=lstm"


def test_groups_are_compared_with_the_best_by_paired_seeds(tmp_path):
    comparisons = {c.group: c for c in study_answer(study(tmp_path)).comparisons}
    gru, rnn = comparisons["model=gru"], comparisons["model=rnn"]
    # gru - lstm per seed: -0.02, -0.015, -0.02: small but consistent, so paired it is resolved
    assert gru.pairs == 3 and gru.difference == pytest.approx(-0.01833, abs=1e-4)
    assert gru.interval[1] < 0 and gru.verdict == "model=lstm better"
    assert rnn.verdict == "model=lstm better"


def test_a_difference_the_seeds_do_not_resolve_says_so(tmp_path):
    STUDY_B = {"lstm": [0.95, 0.80, 0.99], "gru": [0.90, 0.97, 0.93]}
    for i, (model, values) in enumerate(STUDY_B.items()):
        for seed, value in enumerate(values, start=1):
            fake_job(tmp_path, f"{3 * i + seed - 1}_x", [f"model={model}", f"train.seed={seed}"], value=value)
    (c,) = study_answer(read_jobs(tmp_path)).comparisons
    assert c.interval[0] < 0 < c.interval[1] and c.verdict == "not resolved with 3 seeds (the interval spans 0)"


def test_a_paired_difference_of_accuracies_stays_within_minus_one_and_one(tmp_path):
    for i, (model, values) in enumerate({"lstm": [0.99, 0.30], "gru": [0.20, 0.95]}.items()):
        for seed, value in enumerate(values, start=1):
            fake_job(tmp_path, f"{2 * i + seed - 1}_x", [f"model={model}", f"train.seed={seed}"], value=value)
    (c,) = study_answer(read_jobs(tmp_path)).comparisons
    assert c.interval == (-1.0, 1.0), "two seeds: t(0.975, 1) = 12.7 would give about [-5, 5]"


def test_a_diverged_run_is_not_averaged_and_counts_as_not_solved(tmp_path):
    rows = study(tmp_path)
    fake_job(tmp_path, "9_x", ["model=lstm", "train.seed=4"], status="diverged", value=0.1, target_accuracy=0.9)
    lstm = next(g for g in study_answer(read_jobs(tmp_path)).groups if g.label == "model=lstm")
    assert len(rows) == 9 and lstm.values == [(1, 0.95), (2, 0.97), (3, 0.99)] and lstm.solved == "3 of 4"


def test_summary_chooses_the_metric_and_the_grouping(tmp_path, capsys):
    study(tmp_path, extra=["task.delay=3"])
    fake_job(tmp_path, "9_x", ["model=lstm", "train.seed=1", "task.delay=5"], value=0.5)
    summary_main([str(tmp_path)])  # the sweep's own answer ...
    own = (tmp_path / "answer.json").read_bytes()
    summary_main([str(tmp_path), "--metric", "val/accuracy", "--by", "model"])
    assert (tmp_path / "answer.json").read_bytes() == own, "... is kept: another question has files of its own"
    assert (tmp_path / "summary-val_accuracy-by_model.png").is_file()
    data = json.loads((tmp_path / "answer-val_accuracy-by_model.json").read_text())
    assert data["metric"] == "val/accuracy" and data["by"] == ["model"] and "validation" in data["what"]
    lstm = next(g for g in data["groups"] if g["group"] == {"model": "lstm"})
    assert lstm["runs"] == 4 and lstm["completed"] == 4  # both delays in one group, seed 1 twice: every run counts
    assert [v["seed"] for v in lstm["values"]] == [1, 1, 2, 3]
    out = capsys.readouterr().out
    assert "answer: val/accuracy (validation, at the epoch that selected the best model)" in " ".join(out.split())
    with pytest.raises(SystemExit) as exit_:
        summary_main([str(tmp_path), "--metric", "accuracy"])
    assert exit_.value.code == 2 and "use test/NAME or val/NAME" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        summary_main([str(tmp_path), "--metric", "test/mse"])
    assert exit_.value.code == 2 and "--metric test/mse: no run has it; these runs have test/accuracy, test/loss, " \
        "val/accuracy, val/loss" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        summary_main([str(tmp_path), "--by", "modle"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "--by modle: no run has this key; these runs differ in model, train.seed" in err


def test_a_wrong_by_names_the_keys_the_runs_differ_in(tmp_path, capsys):
    study(tmp_path, extra=["task.delay=3"])  # (every run sets it alike: they do not differ in it)
    with pytest.raises(SystemExit):
        summary_main([str(tmp_path), "--by", "stage"])
    assert "--by stage: no run has this key; these runs differ in model, train.seed (any" in capsys.readouterr().err


def test_by_takes_a_short_name_and_a_key_no_run_changed(tmp_path):
    rows = study(tmp_path)
    for row in rows:  # each run's config, as results.json keeps it
        row["results"]["config"] = {"model": {"hidden_size": 4}, "train": {"seed": int(row["params"]["train.seed"])}}
    answer = study_answer(rows, by=["seed", "model.hidden_size"])
    assert answer.by == ["train.seed", "model.hidden_size"]
    assert sorted(g.label for g in answer.groups) == ["seed=1 hidden_size=4", "seed=2 hidden_size=4",
                                                     "seed=3 hidden_size=4"]


def test_a_loss_is_better_smaller_and_a_run_without_a_finite_value_is_left_out_and_said(tmp_path):
    for i, (model, losses) in enumerate({"lstm": [0.10, 0.12, 0.11], "gru": [0.30, 0.33, 0.31]}.items()):
        for seed, loss in enumerate(losses, start=1):
            fake_job(tmp_path, f"{3 * i + seed - 1}_x", [f"model={model}", f"train.seed={seed}"], value=0.5)
            res = json.loads((tmp_path / f"{3 * i + seed - 1}_x" / "results.json").read_text())
            res["test"]["test/loss"] = loss
            (tmp_path / f"{3 * i + seed - 1}_x" / "results.json").write_text(json.dumps(res))
    fake_job(tmp_path, "6_x", ["model=gru", "train.seed=4"], value=0.5)
    res = json.loads((tmp_path / "6_x" / "results.json").read_text())
    res["test"]["test/loss"] = float("nan")
    (tmp_path / "6_x" / "results.json").write_text(json.dumps(res))
    answer = study_answer(read_jobs(tmp_path), metric="test/loss")
    assert answer.direction == "min" and answer.best == "model=lstm"
    (gru_vs_lstm,) = answer.comparisons
    assert gru_vs_lstm.difference == pytest.approx(0.2033, abs=1e-3) and gru_vs_lstm.verdict == "model=lstm better"
    gru = next(g for g in answer.groups if g.label == "model=gru")
    assert len(gru.values) == 3 and gru.partial == ["6_x (test/loss = nan)"]


def test_categories_are_points_with_intervals_and_the_axis_holds_the_baseline(tmp_path):
    import matplotlib.pyplot as plt

    from rnnexp.sweep.plot import draw_answer, include_baseline

    answer = study_answer(study(tmp_path))
    fig, ax = plt.subplots()
    assert draw_answer(ax, answer) == "points"
    joined = [line for line in ax.lines if len(set(line.get_xdata())) > 1 and len(line.get_xdata()) > 1]
    assert not joined, "categorical groups are never joined by a line"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["lstm", "gru", "rnn"] and ax.get_xlabel() == "model", \
        "one key: named once on the axis, each tick its value (long names overlapped)"
    fake = type(answer)(answer.metric, answer.direction, answer.what, answer.groups, answer.by, baseline=0.1)
    include_baseline(ax, fake)
    assert ax.get_ylim()[0] <= 0.1 and ax.get_ylim()[1] <= 1.02
    plt.close(fig)


def test_a_numeric_sweep_is_lines_with_bands_and_curves_carry_stopped_seeds(tmp_path):
    import matplotlib.pyplot as plt
    from matplotlib.collections import PolyCollection

    from rnnexp.sweep.plot import draw_answer, draw_curves

    for i, (delay, values) in enumerate({3: [0.99, 0.97], 10: [0.7, 0.8], 20: [0.5, 0.52]}.items()):
        for seed, value in enumerate(values, start=1):
            fake_job(tmp_path, f"{2 * i + seed - 1}_x", ["model=gru", f"task.delay={delay}", f"train.seed={seed}"],
                     value=value, epochs=3 + seed)  # seed 1 stops an epoch before seed 2
    rows = read_jobs(tmp_path)
    answer = study_answer(rows, by=["model", "task.delay"])
    fig, (left, right) = plt.subplots(1, 2)
    assert draw_answer(left, answer) == "lines"
    assert [list(line.get_xdata()) for line in left.lines] == [[3.0, 10.0, 20.0]]
    assert any(isinstance(c, PolyCollection) for c in left.collections)  # the band
    draw_curves(right, rows, answer)
    assert any(line.get_linestyle() == "--" for line in right.lines), "a stopped seed is carried, dashed"
    top = max(v[1] for c in right.collections if isinstance(c, PolyCollection) for p in c.get_paths() for v in p.vertices)
    assert top <= 1.0, "an accuracy's band stops at 1"
    plt.close(fig)


def test_a_sweep_leaves_the_picture_as_png_and_svg_and_the_answer(tmp_path):
    from rnnexp.sweep.summary import summarise

    study(tmp_path)
    summarise(tmp_path)
    assert (tmp_path / "summary.png").stat().st_size > 0 and (tmp_path / "summary.svg").is_file()
    from PIL import Image

    width, height = Image.open(tmp_path / "summary.png").size
    assert width / height == pytest.approx(16 / 9, abs=0.01) and width >= 2400
    assert "Answer: test/accuracy" in (tmp_path / "summary.md").read_text()


def test_tensorboard_shows_each_groups_band_across_seeds_and_no_run_without_scalars(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from rnnexp.sweep.summary import summarise

    study(tmp_path)
    (tmp_path / "summary").mkdir()  # an earlier rnnexp's image-only run: gone after the summary
    summarise(tmp_path)
    assert not (tmp_path / "summary").exists()
    runs = sorted(p.parent for p in tmp_path.glob("across-seeds/*/events.out.tfevents.*"))
    assert [p.name for p in runs] == ["model=gru", "model=lstm", "model=rnn"]
    for run in runs:
        events = EventAccumulator(str(run), size_guidance={"scalars": 0}).Reload()
        tags = events.Tags()["scalars"]
        assert {"across_seeds/val/accuracy/mean", "across_seeds/val/accuracy/lower",
                "across_seeds/val/accuracy/upper"} <= set(tags)
    lstm = EventAccumulator(str(tmp_path / "across-seeds" / "model=lstm")).Reload()
    means = [s.value for s in lstm.Scalars("across_seeds/val/accuracy/mean")]
    assert means[-1] == pytest.approx(0.97, abs=1e-6)  # the mean of the seeds' last values
    from tensorboard.plugins.custom_scalar import layout_pb2
    from tensorboard.util import tensor_util

    layout = layout_pb2.Layout()
    layout.ParseFromString(tensor_util.make_ndarray(lstm.Tensors("custom_scalars__config__")[0].tensor_proto).item())
    (series,) = layout.category[0].chart[0].margin.series  # one margin chart: the band of every group's run
    assert (series.value, series.lower, series.upper) == ("across_seeds/val/accuracy/mean",
                                                          "across_seeds/val/accuracy/lower",
                                                          "across_seeds/val/accuracy/upper")


def test_an_interval_of_equal_runs_is_not_called_wide():
    from rnnexp.sweep.answer import Answer, Group
    from rnnexp.sweep.answer_table import interval_text

    answer = Answer("test/accuracy", "max", "test", [], [])
    assert interval_text(answer, Group({}, [(1, 1.0), (2, 1.0), (3, 1.0)])) == "[1.0000, 1.0000] (all 3 runs equal)"
    assert interval_text(answer, Group({}, [(1, 0.5), (2, 0.7), (3, 0.6)])).endswith("(wide: 3 runs)")
