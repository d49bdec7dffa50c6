"""bf16 on the CPU, measured: speed and final validation loss of the character model in fp32 and bf16,
and for the GRU also a variant rnnexp does not use: the whole GRU in bf16 (weights cast at every
forward, the state in bf16), against torch's own autocast, which runs the CPU GRU's matrix
products in bf16 and keeps its state in float32.

    python scripts/bench_bf16.py                       (tinyshakespeare from ../shared/data, else python_reference)
    python scripts/bench_bf16.py --batches 600 --hidden 512

Each arm is one in-process run with the same seed and data; the arms alternate per repeat so that
machine noise hits them alike. Prints a table and writes outputs/bench/bf16.json. The rule rnnexp
follows (README, BENCHMARKS.md): a layer runs more of itself in bf16 only where this measures it
faster with a final validation loss within 1% of fp32.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHAKESPEARE = ROOT.parent / "shared" / "data" / "tinyshakespeare.txt"


def whole_gru_in_bf16(original: Any) -> Any:
    """nn.GRU.forward, but under CPU autocast on a bf16 copy of the weights and in a bf16 state."""
    import torch

    def forward(self: Any, inputs: Any, hx: Any = None) -> Any:
        if getattr(self, "_casting", False) or not torch.is_autocast_enabled("cpu"):
            return original(self, inputs, hx)
        self._casting = True
        try:
            weights = {name: w.to(torch.bfloat16) for name, w in self.named_parameters()}
            start = None if hx is None else hx.to(torch.bfloat16)
            return torch.func.functional_call(self, weights, (inputs.to(torch.bfloat16), start))
        finally:
            self._casting = False
    return forward


def one_run(overrides: list[str], whole_gru: bool, work: Path, name: str) -> dict[str, Any]:
    import torch

    from tests.conftest import compose_config

    from rnnexp.run import run_experiment

    original = torch.nn.GRU.forward
    if whole_gru:
        torch.nn.GRU.forward = whole_gru_in_bf16(original)  # type: ignore[method-assign]
    try:
        cfg = compose_config(*overrides)
        (work / name).mkdir(parents=True)
        run_experiment(cfg, work / name, overrides=overrides)
    finally:
        torch.nn.GRU.forward = original  # type: ignore[method-assign]
    res = json.loads((work / name / "results.json").read_text())
    return {"seconds": res["train_seconds"], "chars_per_s": res["final"]["train/targets_per_second"],
            "val_loss": res["final"]["val/loss"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cells", nargs="+", default=["gru", "lstm"])
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--batches", type=int, default=400)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--corpus", default=str(SHAKESPEARE) if SHAKESPEARE.is_file() else "python_reference")
    parser.add_argument("--out", default=str(ROOT / "outputs" / "bench" / "bf16.json"))
    opts = parser.parse_args()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for cell in opts.cells:
            arms = {"fp32": (["train.precision=fp32"], False), "bf16": (["train.precision=bf16"], False)}
            if cell == "gru":
                arms["bf16, the whole GRU in bf16"] = (["train.precision=bf16"], True)
            runs: dict[str, list[dict[str, Any]]] = {arm: [] for arm in arms}
            for repeat in range(opts.repeats):
                for arm, (extra, whole_gru) in arms.items():
                    overrides = ["task=charlm", f"model={cell}", f"task.corpus={opts.corpus}",
                                 f"model.hidden_size={opts.hidden}", "model.embedding_size=64", "train.batch_size=32",
                                 "task.chunk_length=64", "train.lr=0.005", "train.epochs=1",
                                 f"train.batches_per_epoch={opts.batches}", f"train.threads={opts.threads}",
                                 "train.insight_every=0", "task.sample_length=0", "train.progress=lines", *extra]
                    runs[arm].append(one_run(overrides, whole_gru, Path(tmp), f"{cell}-{arm}-{repeat}"))
            base = runs["fp32"]
            for arm, arm_runs in runs.items():
                speed = statistics.median(r["chars_per_s"] for r in arm_runs)
                loss = statistics.median(r["val_loss"] for r in arm_runs)
                results[f"{cell} {arm}"] = {
                    "chars_per_s": round(speed), "val_loss": round(loss, 4),
                    "speed_vs_fp32": round(speed / statistics.median(r["chars_per_s"] for r in base), 2),
                    "loss_vs_fp32": round(loss / statistics.median(r["val_loss"] for r in base) - 1, 4)}
    print(f"| arm (h={opts.hidden}, {opts.batches} batches of 32 x 64, {opts.threads} threads) | chars/s | "
          f"x fp32 | final val loss | vs fp32 |\n|---|---|---|---|---|")
    for arm, r in results.items():
        print(f"| {arm} | {r['chars_per_s']:,} | {r['speed_vs_fp32']:.2f} | {r['val_loss']:.4f} | "
              f"{100 * r['loss_vs_fp32']:+.2f}% |")
    Path(opts.out).parent.mkdir(parents=True, exist_ok=True)
    Path(opts.out).write_text(json.dumps({"options": vars(opts), "results": results}, indent=2))


if __name__ == "__main__":
    main()
