"""Parity, measured: which cell solves which length, with and without a curriculum over the length.

    python scripts/bench_parity.py                          (rnn/lstm/gru x 10/20/50 bits x 2 x 3 seeds)
    python scripts/bench_parity.py --lengths 20 --seeds 1 --jobs 2
    python scripts/bench_parity.py --report outputs/bench/parity     (the table from earlier runs)

Every run is `rnnexp task=parity ...` (the task's defaults: hidden 16, Adam 3e-3, clipping 1,
2,000 fresh sequences per epoch, up to 100 epochs, stop at 99% validation accuracy) with one
torch thread in its own process; its results.json is the record. The curriculum for length L is
[2, 3, 5, 10, 20] cut below L. Writes runs.json and table.md into --out.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

STAGES = [2, 3, 5, 10, 20]


def curriculum(length: int) -> str:
    return "[" + ",".join(str(s) for s in STAGES if s < length) + "]"


def run_one(run: dict[str, Any], out: Path) -> dict[str, Any]:
    run_dir = out / run["name"]
    args = ["rnnexp", "task=parity", f"model={run['cell']}", f"task.length={run['length']}",
            f"train.curriculum={run['curriculum']}", f"train.seed={run['seed']}", f"train.epochs={run['epochs']}",
            "train.threads=1", "train.insight_every=0", "train.progress=lines", f"hydra.run.dir={run_dir}",
            "train.overwrite=true"]
    proc = subprocess.run(args, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        res = json.loads((run_dir / "results.json").read_text())
    except (OSError, ValueError):
        res = {"status": "failed", "error": proc.stderr.strip().splitlines()[-1:] or ["no results.json"]}
    print(f"{run['name']}: {res.get('status')} target_epoch={res.get('target_epoch')} "
          f"best={(res.get('best') or {}).get('val/accuracy')}", flush=True)
    return {**run, "status": res.get("status"), "target_epoch": res.get("target_epoch"),
            "best_val_accuracy": (res.get("best") or {}).get("val/accuracy"),
            "test_accuracy": (res.get("test") or {}).get("test/accuracy"), "epochs_run": res.get("epochs_run"),
            "train_seconds": res.get("train_seconds"), "stages": (res.get("data") or {}).get("stages")}


def table(records: list[dict[str, Any]]) -> str:
    lines = ["| cell | bits | curriculum | solved (99% val) | median epochs to 99% | best val accuracy (each seed) |",
             "|---|---|---|---|---|---|"]
    key = lambda r: (r["cell"], r["length"], r["curriculum"] != "null")  # noqa: E731
    for (cell, length, taught), group in itertools.groupby(sorted(records, key=key), key=key):
        group = list(group)
        solved = [r["target_epoch"] for r in group if r["target_epoch"] is not None]
        median = f"{statistics.median(solved):g}" if solved else "-"
        best = ", ".join(f"{r['best_val_accuracy']:.3f}" if r["best_val_accuracy"] is not None else r["status"]
                         for r in sorted(group, key=lambda r: r["seed"]))
        lines.append(f"| {cell} | {length} | {curriculum(length) if taught else 'none'} | {len(solved)} of "
                     f"{len(group)} | {median} | {best} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cells", nargs="+", default=["rnn", "lstm", "gru"])
    parser.add_argument("--lengths", nargs="+", type=int, default=[10, 20, 50])
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("outputs/bench/parity"))
    parser.add_argument("--report", type=Path, help="only print the table of runs.json in this directory")
    args = parser.parse_args()
    if args.report:
        print(table(json.loads((args.report / "runs.json").read_text())))
        return
    runs = [{"cell": cell, "length": length, "curriculum": taught, "seed": seed, "epochs": args.epochs,
             "name": f"{cell}_T{length}_{'curriculum' if taught != 'null' else 'plain'}_s{seed}"}
            for cell, length, seed in itertools.product(args.cells, args.lengths, args.seeds)
            for taught in ("null", curriculum(length))]
    args.out.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(args.jobs) as pool:
        records = list(pool.map(lambda run: run_one(run, args.out), runs))
    (args.out / "runs.json").write_text(json.dumps(records, indent=1))
    (args.out / "table.md").write_text(table(records))
    print(table(records))
    sys.exit(0)


if __name__ == "__main__":
    main()
