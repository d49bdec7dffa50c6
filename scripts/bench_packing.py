"""Seed packing (issue 20): G seeds trained as one packed model against one seed alone and against
the lecture's notebook, per seed and epoch, side by side in one run.

    python scripts/bench_packing.py                                  QRSU easy, LSTM h4, 10 seeds, 30 epochs
    python scripts/bench_packing.py --difficulty moderate --hidden 12 --seeds 10 --processes 2
    python scripts/bench_packing.py --difficulty hard --cell rnn --hidden 64 --seeds 5 --init identity
    python scripts/bench_packing.py --device cuda --seeds 100 --no-notebook          (on a GPU)

Each figure is the training loop alone (`Engine.fit` / `PackedGroup.fit` without callbacks, the
validation pass of every epoch included, target accuracy off), one torch thread per process, the
median of `--repeats`. `--processes 2` splits the seeds into two groups trained at the same time in
two processes (both cores). The notebook (`scripts/lecture_notebook.py`) is timed as a whole
epoch (training and its test batches) with its own generator, as the lecture runs it. Prints a
Markdown table (BENCHMARKS.md, "Seed packing").

On a GPU (`--device cuda`) each seed's batches are still made on the CPU by its own generator and
copied over (the same data as a single run's); the issue's goal of 100 seeds at most 2x one run
assumes data made on the device, which rnnexp's tasks do not do yet.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def build(overrides: list[str], seed: int, device: str = "cpu"):
    import torch
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    from rnnexp.config import load_run_config
    from rnnexp.engine.loop import Engine
    from rnnexp.models.family import model_family
    from rnnexp.run import seed_everything
    from rnnexp.tasks import build_task

    GlobalHydra.instance().clear()
    with initialize_config_module(config_module="rnnexp.conf", version_base="1.3"):
        cfg = compose(config_name="config", overrides=[*overrides, f"train.seed={seed}"])
    run = load_run_config(cfg)
    seed_everything(seed)
    task = build_task(run.task, run.train.batch_size, seed)
    family = model_family(run.model)
    model = family.build(task, family.size(task)).to(device)
    return Engine(task, model, run.train, torch.device(device), cuda_graph=False)


def train(overrides: list[str], seeds: list[int], device: str = "cpu") -> float:
    """Seconds to train `seeds` (one: alone; several: packed) for the configured epochs."""
    import torch

    from rnnexp.engine.callbacks import Callback, Callbacks
    from rnnexp.engine.packed import PackedGroup

    torch.set_num_threads(1)
    engines = [build(overrides, s, device) for s in seeds]
    start = time.perf_counter()
    if len(engines) == 1:
        engines[0].fit(Callbacks([]))
    else:
        group = PackedGroup(engines, engines[0].cfg, engines[0].device)
        group.fit([Callback() for _ in engines])
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - start


def _worker(args: tuple[list[str], list[int]]) -> float:
    return train(*args)


def packed_in_processes(overrides: list[str], seeds: list[int], processes: int) -> float:
    """Wall seconds for `seeds` split into `processes` packed groups trained at once."""
    parts = [seeds[i::processes] for i in range(processes)]
    with mp.get_context("spawn").Pool(processes) as pool:
        pool.map(_worker, [(overrides, [seeds[0]]) for _ in range(processes)])  # (imports, warm-up)
        start = time.perf_counter()
        pool.map(_worker, [(overrides, part) for part in parts])
        return time.perf_counter() - start


def notebook(args: argparse.Namespace) -> float:
    out = subprocess.run([sys.executable, str(REPO / "scripts" / "lecture_notebook.py"), "--difficulty", args.difficulty,
                          "--hidden", str(args.hidden), "--epochs", str(min(args.epochs, 10)), "--threads", "1"],
                         capture_output=True, text=True, check=True).stdout
    return float(json.loads(out.strip().splitlines()[-1])["seconds_per_epoch"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--difficulty", default="easy")
    parser.add_argument("--cell", default="lstm")
    parser.add_argument("--hidden", type=int, default=4)
    parser.add_argument("--init", default=None)
    parser.add_argument("--optimizer", default="rmsprop")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--no-notebook", action="store_true")
    args = parser.parse_args()
    overrides = ["task=qrsu", f"task.difficulty={args.difficulty}", f"model={args.cell}", f"model.hidden_size={args.hidden}",
                 f"train.epochs={args.epochs}", "train.target_accuracy=null", f"train.optimizer={args.optimizer}",
                 f"train.lr={args.lr}", *([f"model.init={args.init}"] if args.init else [])]
    seeds = list(range(1, args.seeds + 1))
    one, many, note = [], [], []
    for _ in range(args.repeats):
        one.append(train(overrides, seeds[:1], args.device))
        many.append(train(overrides, seeds, args.device) if args.processes == 1
                    else packed_in_processes(overrides, seeds, args.processes))
        if not args.no_notebook:
            note.append(notebook(args))
    one_s, many_s = statistics.median(one), statistics.median(many)
    per_seed_epoch = many_s / (args.seeds * args.epochs)
    print(f"QRSU {args.difficulty}, {args.cell} h{args.hidden}, {args.epochs} epochs, {args.seeds} seeds"
          f"{f' in {args.processes} processes' if args.processes > 1 else ''} (median of {args.repeats})\n")
    print("| figure | seconds |\n|---|---|")
    print(f"| one seed alone, {args.epochs} epochs | {one_s:.2f} |")
    print(f"| {args.seeds} seeds packed | {many_s:.2f} ({many_s / one_s:.2f}x one seed; {args.seeds * one_s / many_s:.1f}x "
          f"the throughput of one by one) |")
    print(f"| per seed and epoch: packed / alone | {per_seed_epoch * 1000:.1f} ms / {one_s / args.epochs * 1000:.1f} ms |")
    if note:
        nb = statistics.median(note)
        print(f"| the lecture's notebook, per epoch | {nb * 1000:.1f} ms ({nb / per_seed_epoch:.1f}x packed per seed and "
              f"epoch, {nb / (one_s / args.epochs):.1f}x one seed alone) |")


if __name__ == "__main__":
    main()
