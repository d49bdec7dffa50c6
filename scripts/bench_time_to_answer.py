"""Time to answer: what the user waits for, whole commands on this machine, side by side.

    python scripts/bench_time_to_answer.py                                   (this checkout only)
    python scripts/bench_time_to_answer.py --before /tmp/before/.venv/bin    (against another install)
    python scripts/bench_time_to_answer.py --studies                         (also the two sweeps: minutes)

Each figure is the median of `--repeats` whole processes, the installs alternating, in one run
(this machine is noisy: compare only numbers measured together). Measured:

* floor: `python -c "import torch, hydra, omegaconf, rich, torch.utils.tensorboard"`, plus the
  run's own training seconds (results.json): what no version of rnnexp can go under;
* main job: `rnnexp task=qrsu model=lstm` with its pictures, from start to exit (no process of it
  may outlive the command: checked);
* config error: `rnnexp model.hidden_size=-1` (one line, exit 2);
* with --studies: the 15-job long-lags study (`experiment=long_lags model=lstm,gru,rnn
  train.seed=101,...,105`) and `experiment=lecture_qrsu` (24 jobs), each with its summary.

Writes a Markdown table to stdout (BENCHMARKS.md, "Time to answer").
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FLOOR = "import torch, hydra, omegaconf, rich, torch.utils.tensorboard"
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "120"}


def timed(command: list[str], cwd: Path, expect: int = 0) -> float:
    start = time.perf_counter()
    proc = subprocess.run(command, cwd=cwd, env=ENV, capture_output=True, text=True)
    took = time.perf_counter() - start
    if proc.returncode != expect:
        raise SystemExit(f"{' '.join(command)}: exit {proc.returncode}, expected {expect}\n{proc.stderr[-2000:]}")
    left = subprocess.run(["pgrep", "-f", "rnnexp|multiprocessing.spawn"], capture_output=True, text=True).stdout.split()
    if [pid for pid in left if int(pid) != os.getpid()]:
        time.sleep(0.5)  # (give a straggler its chance, then say it)
        left = subprocess.run(["pgrep", "-af", "multiprocessing.spawn"], capture_output=True, text=True).stdout
        if left.strip():
            print(f"warning: a process outlived `{' '.join(command[:3])}`: {left.strip()}", file=sys.stderr)
    return took


def train_seconds(cwd: Path) -> float:
    newest = max((cwd / "outputs" / "runs").glob("*/*/results.json"), key=lambda p: p.stat().st_mtime)
    return float(json.loads(newest.read_text())["train_seconds"])


def measure(bin_dir: Path, repeats: int, studies: bool) -> dict[str, list[float]]:
    """One repeat of every figure for the install in `bin_dir` (called alternately per install)."""
    out: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        cwd = Path(tmp)
        out["floor (imports)"] = [timed([str(bin_dir / "python"), "-c", FLOOR], cwd)]
        out["main job"] = [timed([str(bin_dir / "rnnexp"), "task=qrsu", "model=lstm"], cwd)]
        out["main job: training seconds"] = [train_seconds(cwd)]
        out["config error"] = [timed([str(bin_dir / "rnnexp"), "model.hidden_size=-1"], cwd, expect=2)]
        if studies:
            seeds = "train.seed=101,102,103,104,105"
            out["long-lags study (15 jobs)"] = [timed([str(bin_dir / "rnnexp"), "-m", "experiment=long_lags",
                                                       "model=lstm,gru,rnn", seeds], cwd)]
            out["lecture_qrsu (24 jobs)"] = [timed([str(bin_dir / "rnnexp"), "experiment=lecture_qrsu"], cwd)]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", type=Path, help="bin/ of another install (a venv of an earlier commit)")
    parser.add_argument("--after", type=Path, default=Path(sys.executable).parent, help="bin/ of this install")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--studies", action="store_true", help="also the two sweeps (several minutes each)")
    args = parser.parse_args()
    installs = {"after": args.after, **({"before": args.before} if args.before else {})}
    results: dict[str, dict[str, list[float]]] = {name: {} for name in installs}
    for _ in range(args.repeats):
        for name, bin_dir in installs.items():
            for key, values in measure(bin_dir, 1, args.studies).items():
                results[name].setdefault(key, []).extend(values)
    names = list(reversed(list(installs)))  # before, after
    print("| figure (median of %d, seconds) | %s |" % (args.repeats, " | ".join(names)))
    print("|---|" + "---|" * len(names))
    for key in results["after"]:
        print(f"| {key} | " + " | ".join(f"{statistics.median(results[n][key]):.2f}" for n in names) + " |")
    for name in names:
        r = {k: statistics.median(v) for k, v in results[name].items()}
        floor = r["floor (imports)"] + r["main job: training seconds"]
        print(f"\n{name}: main job {r['main job']:.2f} s against its floor {floor:.2f} s "
              f"(imports {r['floor (imports)']:.2f} + training {r['main job: training seconds']:.2f}): "
              f"+{r['main job'] - floor:.2f} s")


if __name__ == "__main__":
    main()
