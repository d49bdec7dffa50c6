"""The inside view through the real run path and the `rnnexp-inspect` command."""

import sys


from rnnexp import inspect as inspect_cli

RUN = ["task=qrsu", "model=lstm", "train.epochs=5", "train.target_accuracy=null", "task.train_size=320",
       "task.val_size=200", "task.test_size=200"]


def images(run_dir, tag):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir), size_guidance={"images": 0})
    acc.Reload()
    return [e.step for e in acc.Images(tag)] if tag in acc.Tags()["images"] else []


def test_a_run_logs_the_pictures_at_the_chosen_epochs_and_writes_pngs(run_cfg, tmp_path):
    run_cfg(tmp_path, *RUN, "train.insight_every=2")
    run_dir = tmp_path / "run"
    for tag in ("insight/states", "insight/gradients_through_time", "insight/gates"):
        assert images(run_dir, tag) == [1, 2, 4], tag
    for name in ("states.png", "gradients_through_time.png", "gates.png"):
        assert (run_dir / name).stat().st_size > 1000


def test_insight_every_0_turns_it_off(run_cfg, tmp_path):
    run_cfg(tmp_path, *RUN, "train.insight_every=0")
    assert images(tmp_path / "run", "insight/states") == [] and not (tmp_path / "run" / "states.png").exists()


def command(main, name, monkeypatch, capsys, *args):
    """Run a key=value command (rnnexp-inspect, rnnexp-compare) in-process: (exit code, stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", [name, *args])
    code = 0
    try:
        main()
    except SystemExit as exit_:
        code = exit_.code or 0
    return code, *capsys.readouterr()


def inspect_main(monkeypatch, capsys, *args):
    return command(inspect_cli.main, "rnnexp-inspect", monkeypatch, capsys, *args)


def test_inspect_writes_the_pictures_of_a_given_example_and_refuses_an_unknown_symbol(run_cfg, tmp_path,
                                                                                    monkeypatch, capsys):
    run_cfg(tmp_path, *RUN, "train.insight_every=0")
    run_dir = tmp_path / "run"
    capsys.readouterr()  # the training run's own output
    code, out, err = inspect_main(monkeypatch, capsys, f"run={run_dir}", "example=BaXbcYdE", f"out={tmp_path / 'pics'}")
    assert code == 0, err
    answer, *paths = out.splitlines()
    assert answer.startswith("prediction ") and " with probability " in answer and ", target R (probability " in answer
    assert sorted(p.split("/")[-1] for p in paths) == ["gates.png", "gradients_through_time.png", "states.png"]
    assert all((tmp_path / "pics" / name).stat().st_size > 1000 for name in ("states.png", "gates.png"))
    code, out, err = inspect_main(monkeypatch, capsys, f"run={run_dir}", "example=BaZbE")
    assert code == 2 and err.strip().count("\n") == 0
    assert "'Z'" in err and "outside QRSU's alphabet" in err
    code, _, err = inspect_main(monkeypatch, capsys, str(run_dir), "colour=red")
    assert code == 2 and "run=RUN_DIR" in err


def test_inspect_keeps_each_examples_pictures_takes_a_bare_sweep_job_and_answers_help(run_cfg, tmp_path,
                                                                                      monkeypatch, capsys):
    job = tmp_path / "0_model=lstm,train.seed=1"  # a sweep job's directory: "=" in its name
    run_cfg(tmp_path, *RUN, "train.insight_every=0", name=job.name)
    capsys.readouterr()
    assert inspect_main(monkeypatch, capsys, str(job))[0] == 0
    assert inspect_main(monkeypatch, capsys, str(job), "example=BaYbcXdE")[0] == 0
    folders = sorted(p.name for p in (job / "inspect").iterdir())
    assert folders[-1] == "validation-example" and folders[0].startswith("example-BaYbcXdE-")
    assert all((job / "inspect" / f / "states.png").is_file() for f in folders)
    code, out, _ = inspect_main(monkeypatch, capsys, "--help")
    assert code == 0 and out.startswith("usage: rnnexp-inspect run=RUN_DIR") and "example=" in out
