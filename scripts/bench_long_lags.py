"""Long time lags, measured: which cell, initialisation and curriculum solve QRSU hard and nightmare,
the adding problem and copy memory, on how many seeds, after how many training sequences.

    python scripts/bench_long_lags.py qrsu --jobs 2                 (QRSU hard and nightmare, 5 seeds)
    python scripts/bench_long_lags.py qrsu --difficulties hard --seeds 1 2 --jobs 2
    python scripts/bench_long_lags.py adding copy --device cuda --jobs 4
    python scripts/bench_long_lags.py --report outputs/bench/long_lags      (tables from earlier runs)

Every run is `rnnexp experiment=long_lags ...` (or the adding/copy presets) with one thing changed,
one torch thread, in its own process; its results.json is the record. Writes `runs.json` and
`tables.md` (seeds solved out of 5, median training sequences and seconds to 99% validation
accuracy; adding: MSE; copy: loss against the memoryless baseline) into --out.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

INITS = {"lstm": ["default", "forget_bias", "chrono"], "gru": ["default", "forget_bias", "chrono"],
         "rnn": ["default", "identity"]}
CURRICULA = {"hard": ["null", "[easy,normal,moderate]"], "nightmare": ["null", "[easy,normal,moderate,hard]"]}
EPOCHS = {"hard": 100, "nightmare": 60}
TRAIN_SIZE = 1000  # QRSU sequences per epoch (the lecture's and the preset's)


def qrsu_runs(difficulties: list[str], seeds: list[int], cells: list[str]) -> list[dict[str, Any]]:
    runs = []
    chosen = {cell: inits for cell, inits in INITS.items() if cell in cells}
    for difficulty, (cell, inits), seed in itertools.product(difficulties, chosen.items(), seeds):
        for init, curriculum in itertools.product(inits, CURRICULA[difficulty]):
            runs.append({"group": f"qrsu {difficulty}", "cell": cell, "init": init, "curriculum": curriculum,
                         "seed": seed, "args": ["experiment=long_lags", f"model={cell}", f"model.init={init}",
                                                "model.forget_bias=2", f"task.difficulty={difficulty}",
                                                f"train.curriculum={curriculum}", f"train.epochs={EPOCHS[difficulty]}",
                                                f"train.seed={seed}"]})
    return runs


def long_t_runs(tasks: list[str], seeds: list[int], minutes: float) -> list[dict[str, Any]]:
    """The adding problem at T = 200 and 400, copy memory at T = 100 and 200, per cell with the
    preset's initialisation for it, and the LSTM with PyTorch's default for contrast."""
    grid = {"adding": ("task.length", [200, 400]), "copy": ("task.delay", [100, 200])}
    runs = []
    for task in tasks:
        key, values = grid[task]
        for value, seed in itertools.product(values, seeds):
            for cell, init in (("lstm", "chrono"), ("gru", "chrono"), ("rnn", "identity"), ("lstm", "default")):
                runs.append({"group": f"{task} T={value}", "cell": cell, "init": init, "curriculum": "null",
                             "seed": seed, "args": [f"experiment={task}_long", f"model={cell}", f"model.init={init}",
                                                    f"{key}={value}", f"train.seed={seed}",
                                                    f"train.time_limit_minutes={minutes}"]})
    return runs


def run_one(run: dict[str, Any], out: Path, device: str) -> dict[str, Any]:
    name = "_".join(str(run[k]) for k in ("group", "cell", "init", "curriculum", "seed")).replace(" ", "-")
    run_dir = out / "runs" / name.replace("[", "").replace("]", "").replace(",", "-")
    args = [sys.executable, "-m", "rnnexp", *run["args"], f"hydra.run.dir={run_dir}", "train.overwrite=true",
            "train.threads=1", f"train.device={device}", "train.progress=lines", "train.insight_every=0", "train.checkpoint_minutes=10"]
    started = time.time()
    proc = subprocess.run(args, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    result = {k: v for k, v in run.items() if k != "args"}
    result.update(returncode=proc.returncode, wall=round(time.time() - started, 1),
                  error=proc.stderr.strip().splitlines()[-1] if proc.returncode else "")
    path = run_dir / "results.json"
    if path.is_file():
        res = json.loads(path.read_text())
        result.update({k: res.get(k) for k in ("status", "epochs_run", "target_epoch", "train_seconds", "best",
                                                "test", "baseline", "objective", "device")})
    print(f"{result['wall']:>6.1f}s {name}: {result.get('status')} target_epoch={result.get('target_epoch')}",
          flush=True)
    return result


def median(values: list[float]) -> Any:
    return round(statistics.median(values), 1) if values else "-"


def tables(results: list[dict[str, Any]]) -> str:
    lines = []
    qrsu = [r for r in results if r["group"].startswith("qrsu")]
    if qrsu:
        lines += ["| task | cell | init | curriculum | solved (99% val) | median sequences | median seconds | "
                  "best val acc (unsolved) |", "|---|---|---|---|---|---|---|---|"]
        for key, rows in itertools.groupby(sorted(qrsu, key=_key), key=_key):
            rows = list(rows)
            # (rnnexp/sweep/stats.py's rules: a diverged run is counted, and never solved)
            solved = [r for r in rows if r.get("target_epoch") and r.get("status") == "completed"]
            diverged = sum(r.get("status") == "diverged" for r in rows)
            unsolved = [f"{r['best']['val/accuracy']:.2f}" + (" (diverged)" if r.get("status") == "diverged" else "")
                        for r in rows if r not in solved and r.get("best")]
            lines.append(f"| {key[0]} | {key[1]} | {key[2]} | {key[3]} | {len(solved)}/{len(rows)}"
                         f"{f', {diverged} diverged' if diverged else ''} | "
                         f"{median([r['target_epoch'] * TRAIN_SIZE for r in solved])} | "
                         f"{median([r['train_seconds'] for r in solved])} | "
                         f"{', '.join(unsolved) or '-'} |")
    other = [r for r in results if not r["group"].startswith("qrsu")]
    if other:
        lines += ["", "| task | cell | init | seed | best val loss | baseline | test loss | test accuracy | epochs | "
                  "seconds | device |", "|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in sorted(other, key=_key):
            if not r.get("best"):
                lines.append(f"| {r['group']} | {r['cell']} | {r['init']} | {r['seed']} | {r.get('error')} |")
                continue
            lines.append(f"| {r['group']} | {r['cell']} | {r['init']} | {r['seed']} | {r['best']['val/loss']:.4f} | "
                         f"{r['baseline'].get('loss', 0):.4f} | {r['test']['test/loss']:.4f} | "
                         f"{r['test']['test/accuracy']:.3f} | {r['epochs_run']} | {r['train_seconds']:.0f} | {r['device']} |")
    return "\n".join(lines) + "\n"


def _key(r: dict[str, Any]) -> tuple:
    return (r["group"], r["cell"], r["init"], r["curriculum"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("tasks", nargs="*", default=["qrsu"], help="qrsu, adding, copy (default: qrsu)")
    parser.add_argument("--difficulties", nargs="+", default=["hard", "nightmare"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3, 4, 5])
    parser.add_argument("--cells", nargs="+", default=["lstm", "gru", "rnn"])
    parser.add_argument("--jobs", type=int, default=2, help="runs at once (one torch thread each)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--minutes", type=float, default=10.0, help="time limit of each adding/copy run")
    parser.add_argument("--out", type=Path, default=Path("outputs/bench/long_lags"))
    parser.add_argument("--report", type=Path, nargs="+", help="only print the tables of earlier --out folders")
    args = parser.parse_args()
    unknown = set(args.tasks) - {"qrsu", "adding", "copy"}
    if unknown:
        parser.error(f"unknown task(s) {', '.join(sorted(unknown))}; choose from qrsu, adding, copy")
    if args.report:  # later folders replace earlier ones' rows of the same configuration and seed
        merged: dict[tuple, dict[str, Any]] = {}
        for folder in args.report:
            for run in json.loads((folder / "runs.json").read_text()):
                merged[(*_key(run), run["seed"])] = run
        print(tables(list(merged.values())))
        return
    runs = qrsu_runs(args.difficulties, args.seeds, args.cells) if "qrsu" in args.tasks else []
    runs += long_t_runs([t for t in args.tasks if t != "qrsu"], args.seeds, args.minutes)
    args.out.mkdir(parents=True, exist_ok=True)
    results: list[dict[str, Any]] = []

    def run_and_record(run: dict[str, Any]) -> None:
        results.append(run_one(run, args.out, args.device))
        (args.out / "runs.json").write_text(json.dumps(results, indent=1))  # so far: a stopped bench keeps them

    with ThreadPoolExecutor(args.jobs) as pool:  # threads that wait on processes
        list(pool.map(run_and_record, runs))
    report = tables(results)
    (args.out / "tables.md").write_text(report)
    print(report)


if __name__ == "__main__":
    main()
