"""What a finished run reports: results.json (the file scripts and sweep summaries read) and the
rows of the end-of-run summary table."""

from __future__ import annotations

from typing import Any

from rnnexp.config import RunConfig
from rnnexp.engine.loop import LoopState

RESULTS = "results.json"


def objective_value(history: list[dict[str, float]], key: str, direction: str) -> float:
    values = [h[key] for h in history]
    return max(values) if direction == "max" else min(values)


def completed_results(run: RunConfig, loop: LoopState, objective: tuple[str, str]) -> dict[str, Any]:
    history = loop.history
    key, direction = objective
    if loop.target_epoch is not None:
        stopped_by = "target accuracy reached"
    elif len(history) < run.train.epochs:
        stopped_by = f"time limit ({run.train.time_limit_minutes:g} min)"
    else:
        stopped_by = "all epochs run"
    return {
        "status": "completed", "stopped_by": stopped_by, "epochs_run": len(history),
        "target_accuracy": run.train.target_accuracy,
        "target_epoch": loop.target_epoch, "train_seconds": round(loop.seconds, 3),
        "final": {k: v for k, v in history[-1].items() if "/" in k},
        "best": {"val/accuracy": max(h["val/accuracy"] for h in history),
                 "val/loss": min(h["val/loss"] for h in history)},
        "objective": {"name": key, "direction": direction, "value": objective_value(history, key, direction)},
        "history": history,
    }


def summary_rows(run: RunConfig, results: dict[str, Any], unit: str, run_dir: str) -> list[tuple[str, str]]:
    final = results["final"]
    rows = [("epochs run", f"{results['epochs_run']} / {run.train.epochs} ({results['stopped_by']})")]
    if run.train.target_accuracy is not None:
        reached = f"epoch {results['target_epoch']}" if results["target_epoch"] else "not reached"
        rows.append((f"target val/accuracy {run.train.target_accuracy:g}", reached))
    objective = results["objective"]
    rows += [(f"best {objective['name']} (objective)", f"{objective['value']:.4f}"),
             ("final val/accuracy", f"{final['val/accuracy']:.4f}"),
            ("final val/loss", f"{final['val/loss']:.4f}")]
    rows += [(k, f"{v:.4f}") for k, v in final.items() if k.startswith("val/") and k not in ("val/accuracy", "val/loss")]
    rows += [(f"train {unit}/s", f"{final['train/targets_per_second']:,.0f}"),
             ("parameters", f"{results['parameters']:,}"), ("train seconds", f"{results['train_seconds']:.1f}"),
             ("run directory", run_dir)]
    return rows


def hparams(run: RunConfig, hidden: int) -> dict[str, Any]:
    return {"task": run.task.label, "cell": run.model.cell, "hidden_size": hidden,
            "num_layers": run.model.num_layers, "optimizer": run.train.optimizer, "lr": run.train.lr,
            "batch_size": run.train.batch_size, "seed": run.train.seed}
