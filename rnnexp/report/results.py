"""What a finished run reports: `results.json` (the file scripts and sweep summaries read), the
rows of the end-of-run table, the one-line result and the HParams entry."""

from __future__ import annotations

from typing import Any

from rnnexp.config import RunConfig

RESULTS = "results.json"


def stopped_by(run: RunConfig, state: Any) -> str:
    if state.target_epoch is not None:
        return "target accuracy reached"
    if len(state.history) < run.train.epochs:
        return f"time limit ({run.train.time_limit_minutes:g} min)"
    return "all epochs run"


def progress_results(run: RunConfig, engine: Any) -> dict[str, Any]:
    """What the epochs so far say: final and best (by the validation objective) metrics; also
    written for a run that was stopped or failed."""
    s, task = engine.state, engine.task
    name, direction = task.objective
    done = {"epochs_run": len(s.history), "target_accuracy": run.train.target_accuracy,
            "target_epoch": s.target_epoch, "train_seconds": round(s.seconds, 3), "baseline": task.baseline(),
            "divergence": engine.divergence.report(s)}
    from rnnexp.engine.curriculum import curriculum_report

    report = curriculum_report(run.train.curriculum, run.train.curriculum_strategy, run.train.curriculum_threshold, s.history)
    if report is not None:
        done["curriculum"] = report
    if not s.history:
        return done
    best = next(h for h in s.history if h["epoch"] == s.best_epoch)
    return {**done, "final": {k: v for k, v in s.history[-1].items() if "/" in k},
            "best": {"epoch": s.best_epoch, **{k: v for k, v in best.items() if k.startswith("val/")}},
            "objective": {"name": f"val/{name}", "direction": direction, "value": s.best_value}}


def completed_results(run: RunConfig, engine: Any, test: dict[str, float]) -> dict[str, Any]:
    """The results of a finished fit: final, best and test metrics (of the best model)."""
    return {**progress_results(run, engine), "status": "completed", "stopped_by": stopped_by(run, engine.state),
            "test": test, "history": engine.state.history}


def summary_rows(run: RunConfig, results: dict[str, Any], unit: str, run_dir: str) -> list[tuple[str, str]]:
    final, best, test = results["final"], results["best"], results["test"]
    rows = [("epochs run", f"{results['epochs_run']} / {run.train.epochs} ({results['stopped_by']})")]
    if run.train.target_accuracy is not None:
        reached = f"epoch {results['target_epoch']}" if results["target_epoch"] else "not reached"
        rows.append((f"target val/accuracy {run.train.target_accuracy:g}", reached))
    from rnnexp.engine.curriculum import curriculum_words

    if (words := curriculum_words(results.get("curriculum"))) is not None:
        rows.append(("curriculum", words))
    objective = results["objective"]
    rows.append((f"best {objective['name']} (selects)", f"{objective['value']:.4f} at epoch {best['epoch']}"))
    rows += [(f"{key} (best model)", f"{value:.4f}") for key, value in test.items()]
    rows += [(f"baseline {key}", f"{value:.4f}") for key, value in results["baseline"].items()]
    rows += [("final val/accuracy", f"{final['val/accuracy']:.4f}"), ("final val/loss", f"{final['val/loss']:.4f}"),
             (f"train {unit}/s", f"{final.get('train/targets_per_second', 0):,.0f}"),
             ("parameters", f"{results['parameters']:,}"), ("train seconds", f"{results['train_seconds']:.1f}"),
             ("run directory", run_dir)]
    return rows


def result_line(run: RunConfig, results: dict[str, Any], run_dir: str) -> str:
    """The one line a run (or a sweep job) ends with."""
    objective, test = results["objective"], results["test"]
    reached = (f"target reached at epoch {results['target_epoch']}" if results["target_epoch"]
               else "target not reached" if run.train.target_accuracy is not None else results["stopped_by"])
    if (results.get("curriculum") or {}).get("target_from_epoch", 0) is None:
        reached += "; never trained on the target: the curriculum did not pass its stages"
    shown = ("test/accuracy", "test/loss", "test/" + objective["name"].removeprefix("val/"))  # (and what selects)
    tests = " ".join(f"{k}={v:.4f}" for k, v in test.items() if k in shown)
    return (f"result: {run.task.label} {run.model.label} best {objective['name']}={objective['value']:.4f} {tests} "
            f"epochs={results['epochs_run']} ({reached}) train_seconds={results['train_seconds']:.1f}; {run_dir}")


def hparams(run: RunConfig, model: dict[str, Any], settings: dict[str, Any]) -> dict[str, Any]:
    """TensorBoard's HParams: the task, the model family's own (`ModelFamily.hparams`), the loop's,
    and every key the run sets away from its task's and model's defaults (rnnexp.settings), by its
    full name (`model.init`), and the preset (`experiment`)."""
    chosen = {k: v for k, v in settings.items() if "." in k or k == "experiment"}
    return {"task": run.task.label, **model, "model": run.model.label, "optimizer": run.train.optimizer,
            "lr": run.train.lr, "batch_size": run.train.batch_size, "seed": run.train.seed, **chosen}
