"""GPU checks and timings for the CUDA-graph training step (run on a machine with CUDA).

    python scripts/gpu_check.py            (about a minute; prints JSON)

For QRSU, echo, adding and charlm models it measures the training step eager and as a CUDA
graph (median ms per step after warm-up, both on the same batches), checks that the graphed run
trains like the eager one (same losses to float tolerance over the same steps from the same
weights), and times one epoch of QRSU easy on the CPU and on the GPU to see which device is
faster for a tiny model (what `train.device=auto` should pick). `scripts/bench.py gpu` calls it.

`trust_checks` (issue 17) proves on a GPU what the CPU cannot: QRSU nightmare's bucketed lengths
keep a run to at most 8 graphs and train like eager; a change of an optimizer setting other than
the learning rate is followed (the graphs are captured again) and trains like eager; a
multi-layer model with dropout between layers runs eagerly (the start line says so).
"""

from __future__ import annotations

import json
import statistics
import time
from typing import Any

import torch
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra

from rnnexp.config import load_run_config
from rnnexp.engine.loop import Engine
from rnnexp.models.build import build_model
from rnnexp.tasks import build_task

CASES = {
    "qrsu easy lstm h4": ["task=qrsu", "model=lstm", "model.hidden_size=4"],
    "qrsu moderate lstm h12": ["task=qrsu", "task.difficulty=moderate", "model=lstm", "model.hidden_size=12"],
    "echo gru h32": ["task=echo", "model=gru", "model.hidden_size=32"],
    "adding T100 gru h128": ["task=adding", "model=gru"],
    "charlm lstm 512": ["task=charlm", "model=lstm", "task.sample_length=0"],
}


def engine_for(overrides: list[str], device: torch.device, graph: bool) -> Engine:
    GlobalHydra.instance().clear()
    with initialize_config_module(config_module="rnnexp.conf", version_base="1.3"):
        cfg = compose(config_name="config", overrides=[*overrides, f"train.cuda_graph={'auto' if graph else 'off'}"])
    run = load_run_config(cfg)
    torch.manual_seed(0)
    task = build_task(run.task, run.train.batch_size, run.train.seed)
    model = build_model(run.model, task).to(device)
    return Engine(task, model, run.train, device)


def time_steps(engine: Engine, batches: list, warmup: int = 10) -> tuple[float, list[float]]:
    """Median ms per step over `batches` (after `warmup` steps), and the first 20 losses."""
    state, losses, times = None, [], []
    for i, batch in enumerate(batches):
        torch.cuda.synchronize()
        start = time.perf_counter()
        state, sums, _ = engine.step(batch, None if batch.reset else state)
        torch.cuda.synchronize()
        if i >= warmup:
            times.append((time.perf_counter() - start) * 1e3)
        if len(losses) < 20:
            losses.append(float(sums["loss"] / sums["count"].clamp(min=1)) if "count" in sums else float(sums["loss"]))
    return statistics.median(times), losses


def all_batches(task: Any):
    epoch = 1
    while True:
        yield from task.train_batches(epoch)
        epoch += 1


def gpu_report(quick: bool = False) -> dict[str, Any]:
    device = torch.device("cuda")
    out: dict[str, Any] = {"device": torch.cuda.get_device_name(0)}
    for name, overrides in CASES.items():
        if quick and "charlm" in name:
            continue
        engines = {mode: engine_for(overrides, device, graph=mode == "graph") for mode in ("eager", "graph")}
        engines["graph"].model.load_state_dict(engines["eager"].model.state_dict())
        batches = [b.to(device) for _, b in zip(range(60 if quick else 200), all_batches(engines["eager"].task))]
        row: dict[str, Any] = {}
        for mode, engine in engines.items():
            engine.model.train()
            row[f"{mode}_ms"], row[f"{mode}_losses"] = time_steps(engine, batches)
        row["speedup"] = row["eager_ms"] / row["graph_ms"]
        row["max_loss_difference"] = max(abs(a - b) for a, b in zip(row["eager_losses"], row["graph_losses"]))
        row["graphs_captured"] = sum(g is not None for g in getattr(engines["graph"].step, "graphs", {}).values())
        out[name] = {k: v for k, v in row.items() if not k.endswith("_losses")}
        print(name, json.dumps(out[name]), flush=True)
    out["trust"] = trust_checks()
    out["device_choice"] = device_choice(quick)
    return out


def paired_losses(overrides: list[str], steps: int, change_at: int = -1) -> dict[str, Any]:
    """Eager and graphed engines from the same weights over the same batches; at step `change_at`
    both get the same new optimizer settings (betas and weight decay)."""
    device = torch.device("cuda")
    engines = {mode: engine_for(overrides, device, graph=mode == "graph") for mode in ("eager", "graph")}
    engines["graph"].model.load_state_dict(engines["eager"].model.state_dict())
    batches = [b.to(device) for _, b in zip(range(steps), all_batches(engines["eager"].task))]
    losses: dict[str, list[float]] = {}
    for mode, engine in engines.items():
        state, losses[mode] = None, []
        for i, batch in enumerate(batches):
            if i == change_at:
                for group in engine.optimizer.param_groups:
                    group.update(betas=(0.5, 0.9), weight_decay=0.01)
            state, sums, _ = engine.step(batch, None if batch.reset else state)
            losses[mode].append(float(sums["loss"]) / max(1.0, float(sums.get("count", 1))))
    graphs = getattr(engines["graph"].step, "graphs", {})
    return {"max_loss_difference": max(abs(a - b) for a, b in zip(losses["eager"], losses["graph"])),
            "graphs_captured": sum(g is not None for g in graphs.values()),
            "step_kind": engines["graph"].step_kind}


def trust_checks() -> dict[str, Any]:
    adam = ["train.optimizer=adam", "train.lr=3e-3"]
    out = {
        "qrsu nightmare: at most 8 graphs, like eager": paired_losses(
            ["task=qrsu", "task.difficulty=nightmare", "model=lstm", "model.hidden_size=16", *adam], 200),
        "optimizer settings changed at step 40: followed": paired_losses(
            ["task=qrsu", "task.difficulty=moderate", "model=gru", "model.hidden_size=16", *adam], 100, change_at=40),
        "2-layer dropout: eager": paired_losses(
            ["task=charlm", "model=lstm", "model.hidden_size=64", "model.num_layers=2", "model.dropout=0.3",
             "task.sample_length=0", *adam], 20),
    }
    for name, row in out.items():
        print(name, json.dumps(row), flush=True)
    return out


def device_choice(quick: bool) -> dict[str, Any]:
    """Seconds for a few epochs of QRSU easy (LSTM h4) and of charlm on each device, in-process,
    and which device `train.device=auto` picks for each."""
    from rnnexp.run import pick_device

    result = {}
    for name, overrides, epochs in (("qrsu easy lstm h4", CASES["qrsu easy lstm h4"], 5),
                                    ("charlm lstm 512", [*CASES["charlm lstm 512"], "train.batches_per_epoch=20"], 2)):
        seconds = {}
        for device in ("cpu", "cuda"):
            torch.set_num_threads(1 if "qrsu" in name else 16)
            engine = engine_for([*overrides, f"train.epochs={1 if quick else epochs}", "train.target_accuracy=null"],
                                torch.device(device), graph=True)
            start = time.perf_counter()
            engine.fit(_NoCallbacks())
            if device == "cuda":
                torch.cuda.synchronize()
            seconds[device] = time.perf_counter() - start
        result[name] = {"seconds": seconds, "faster": min(seconds, key=seconds.get),
                        "auto_picks": str(pick_device("auto"))}
        print(name, result[name], flush=True)
    return result


class _NoCallbacks:
    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: None


if __name__ == "__main__":
    print(json.dumps(gpu_report(), indent=2))
