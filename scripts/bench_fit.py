"""Side by side: the fit time of two arms of the same run, alternating, with the curves compared.

An arm is this checkout (the installed rnnexp) or another checkout of rnnexp (`--b-checkout`, e.g.
a `git worktree` of an older commit), plus extra overrides. Examples:

    # the engine before and after a change, same settings, same seed (same curve expected)
    git worktree add ../rnnexp-before 2107931
    python scripts/bench_fit.py --b-checkout ../rnnexp-before -- task=qrsu model=lstm train.seed=0
    # what the pictures of the hidden state cost per epoch (the lecture's QRSU settings)
    python scripts/bench_fit.py --a "train.insight_every=0" --b "train.insight_every=10" -- \
        task=qrsu model=lstm train.epochs=30 train.target_accuracy=null

Each run is a fresh `python -m rnnexp` process on one torch thread; its results.json gives the
training seconds (`train_seconds`: the loop, evaluation and callbacks, not the start-up) and the
history. Prints the median seconds per run and per epoch of each arm, the ratio, and whether the
two arms' curves (train/val loss and accuracy) are identical.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Optional

CURVES = ("train/loss", "train/accuracy", "val/loss", "val/accuracy")


def run_arm(checkout: Optional[Path], overrides: list[str], work: Path, name: str) -> dict[str, Any]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if checkout is not None:  # another checkout: its package, and its conf/ as rnnexp.conf
        conf = checkout / "rnnexp" / "conf"
        if not conf.exists():
            conf.symlink_to(Path("..") / "conf")
        env["PYTHONPATH"] = str(checkout)
    run_dir = work / name
    args = [sys.executable, "-m", "rnnexp", *overrides, f"hydra.run.dir={run_dir}", "train.threads=1",
            "train.progress=lines"]
    proc = subprocess.run(args, cwd=work, env=env, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"{shlex.join(args)} failed: {proc.stderr.strip().splitlines()[-1]}")
    res = json.loads((run_dir / "results.json").read_text())
    return {"seconds": res["train_seconds"], "epochs": res["epochs_run"],
            "curve": [[round(h[k], 10) for k in CURVES] for h in res["history"]]}


def same_curve(a: list[list[float]], b: list[list[float]]) -> bool:
    """Equal accuracies at every epoch and losses equal to 1e-6 (the engines may add the same
    float32 losses in another order)."""
    return len(a) == len(b) and all(
        x[1] == y[1] and x[3] == y[3] and abs(x[0] - y[0]) <= 1e-6 * abs(y[0]) and abs(x[2] - y[2]) <= 1e-6 * abs(y[2])
        for x, y in zip(a, b))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--a", default="", help="extra overrides of arm A (this checkout)")
    parser.add_argument("--b", default="", help="extra overrides of arm B")
    parser.add_argument("--b-checkout", type=Path, help="arm B runs another checkout of rnnexp")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("overrides", nargs="*", help="the run's overrides, shared by both arms")
    args = parser.parse_args()
    arms = {"A": (None, args.overrides + shlex.split(args.a)),
            "B": (args.b_checkout.resolve() if args.b_checkout else None, args.overrides + shlex.split(args.b))}
    results: dict[str, list[dict[str, Any]]] = {"A": [], "B": []}
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(args.repeats):
            for arm, (checkout, overrides) in arms.items():  # alternating: noise hits both alike
                results[arm].append(run_arm(checkout, overrides, Path(tmp), f"{arm}{repeat}"))
    summary = {}
    for arm, runs in results.items():
        seconds = statistics.median(r["seconds"] for r in runs)
        per_epoch = statistics.median(r["seconds"] / r["epochs"] for r in runs)
        summary[arm] = {"median_seconds": round(seconds, 3), "median_seconds_per_epoch": round(per_epoch, 4),
                        "epochs": sorted({r["epochs"] for r in runs}), "all_seconds": [r["seconds"] for r in runs]}
        label = f"B ({args.b_checkout})" if arm == "B" and args.b_checkout else arm
        print(f"{label}: {' '.join(arms[arm][1])}\n    median {seconds:.3f} s per run, {per_epoch * 1000:.1f} ms "
              f"per epoch, epochs {summary[arm]['epochs']}, runs {summary[arm]['all_seconds']}")
    same = all(same_curve(r["curve"], results["A"][0]["curve"]) for r in results["A"] + results["B"])
    ratio = summary["B"]["median_seconds_per_epoch"] / summary["A"]["median_seconds_per_epoch"]
    print(f"per epoch, B / A = {ratio:.2f}; the same curve in every run of both arms (accuracies equal, "
          f"losses to 1e-6): {same}")
    print(json.dumps({"arms": summary, "ratio_b_over_a": round(ratio, 3), "same_curve": same}))


if __name__ == "__main__":
    main()
