"""Runs saved before model families (rnnexp d402c5f, checkpoint format 4, checked in under
tests/data/runs_v4) still resume, sample and inspect, and give what that rnnexp gave."""

from __future__ import annotations

import json
import logging
import shutil
import sys
from pathlib import Path

import torch

DATA = Path(__file__).parent / "data" / "runs_v4"
NO_SECONDS = lambda history: [{k: v for k, v in h.items() if "second" not in k} for h in history]  # noqa: E731


def copied(tmp_path: Path, name: str) -> Path:
    return Path(shutil.copytree(DATA / name, tmp_path / name))


def test_an_old_run_resumes_and_ends_where_the_old_rnnexp_ended(run_cfg, tmp_path, caplog):
    from rnnexp.engine import checkpoint

    checkpoint._NOTED.clear()
    run = copied(tmp_path, "qrsu_lstm")  # trained for 2 epochs by d402c5f
    with caplog.at_level(logging.INFO, logger="rnnexp"):
        res = run_cfg(tmp_path, f"train.resume={run}", "train.epochs=3", name="qrsu_lstm")
    # its config had `nonlinearity: tanh`, which an LSTM never used: dropped, said once
    notes = [r.getMessage() for r in caplog.records if "no longer apply" in r.getMessage()]
    assert notes == ["note: this run was saved with keys that no longer apply; dropped model.nonlinearity"]
    straight = json.loads((DATA / "qrsu_lstm_3_epochs_straight.json").read_text())  # d402c5f, 3 epochs in one go
    assert res["status"] == "completed" and res["model"] == "lstm" and res["epochs_run"] == 3
    assert NO_SECONDS(res["history"]) == NO_SECONDS(straight["history"])
    assert res["test"] == straight["test"]


def test_keys_that_no_longer_apply_are_dropped_with_one_note(run_cfg, tmp_path, caplog):
    run = copied(tmp_path, "qrsu_lstm")
    for name in ("checkpoint.pt", "best.pt"):  # as a key retired after the run was saved would be
        payload = torch.load(run / name, weights_only=True)
        payload["config"]["model"]["retired_knob"] = 3
        torch.save(payload, run / name)
    with caplog.at_level(logging.INFO, logger="rnnexp"):
        res = run_cfg(tmp_path, f"train.resume={run}", "train.epochs=3", name="qrsu_lstm")
        from rnnexp.inspect import inspect_run

        inspect_run(run, None, tmp_path / "pictures")  # reads the config again (its best.pt has the key too)
    notes = [r.getMessage() for r in caplog.records if "no longer apply" in r.getMessage()]
    assert res["status"] == "completed" and len(notes) == 1 and "model.retired_knob" in notes[0]


def test_an_old_character_model_samples_what_it_sampled_before(tmp_path, monkeypatch, capsys):
    from rnnexp import sample

    run = copied(tmp_path, "charlm_gru")
    monkeypatch.setattr(sys, "argv", ["rnnexp-sample", f"run={run}", "prompt=def ", "length=40", "seed=3"])
    sample.main()
    assert capsys.readouterr().out == (DATA / "charlm_gru_sample_def_40_seed3.txt").read_text()


def test_an_old_run_is_inspected(tmp_path):
    from rnnexp.inspect import inspect_run

    written = inspect_run(copied(tmp_path, "qrsu_lstm"), "BaXbcYdE", tmp_path / "pictures")
    assert {p.name for p in written} >= {"states.png", "gradients_through_time.png", "gates.png"}
    assert all(p.stat().st_size > 0 for p in written)
