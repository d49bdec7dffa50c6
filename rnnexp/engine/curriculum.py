"""A curriculum over difficulty (`train.curriculum`), as a callback: train on easier stages first.

    rnnexp task=qrsu task.difficulty=hard train.curriculum=[easy,normal,moderate]

Training data comes from the current stage (the task's `curriculum_key`: QRSU's difficulty, the
adding problem's length, copy's delay); validation and test always come from the target, so
early stopping, the best model and the reported numbers mean what they say. After each epoch the
model is scored on a held-out set of the current stage; at `train.curriculum_threshold` accuracy
it moves on, and after the last listed stage it trains on the target. The stage is the task's
state, so it travels in checkpoints and a resumed run continues at it. Logged every epoch as
`train/stage` (0 = the first listed stage, len(stages) = the target) and `stage/accuracy`.

Curriculum learning for recurrent networks: Bengio et al. 2009 ("Curriculum learning"); Zaremba
& Sutskever 2014 ("Learning to execute") for sequence lengths.

Strategies (`train.curriculum_strategy`), as Learning to Execute's code has them:

    none       the target only (the listed stages are not used: a sweep over strategies keeps its list)
    naive      the stages in order, moving on at `train.curriculum_threshold` (95%): the above
    mix        every example from a stage drawn uniformly among the listed ones and the target
    combined   1 example in 5 as in mix, the others from naive's current stage

As the paper's code, per example (rnnexp.tasks.mixing): a batch holds sequences of several
stages, each padded on the right and read at its own last step, so none scores differently for
the company it keeps; execute draws each program's nesting too (1 to the target's). The draws come
from the epoch's own streams: a resumed run mixes as the uninterrupted one did.
"""

from __future__ import annotations

import logging
from typing import Any, Optional

from rnnexp.engine.callbacks import Callback

#: A stage passed: the terminal (not in sweep jobs, as the start lines) and run.log.
stage_log = logging.getLogger("rnnexp.start.curriculum")


class Curriculum(Callback):
    def __init__(self, stages: list[Any], threshold: float):
        self.stages, self.threshold = list(stages), threshold

    def position(self, stage: Any) -> int:
        return len(self.stages) if stage is None else self.stages.index(stage)

    def on_fit_start(self, engine: Any) -> None:
        if engine.state.global_step == 0 and engine.state.epoch == 1:
            engine.task.set_stage(self.stages[0])  # a fresh run; a resumed one keeps its saved stage

    def on_epoch_end(self, engine: Any, metrics: dict[str, float]) -> None:
        task = engine.task
        index = self.position(task.stage)
        metrics["train/stage"] = index
        if task.stage is None:
            return
        accuracy = engine.evaluate("stage")["stage/accuracy"]
        metrics["stage/accuracy"] = accuracy
        if accuracy >= self.threshold:
            following = self.stages[index + 1] if index + 1 < len(self.stages) else None
            task.set_stage(following)
            ahead = (f"the target (task.{task.curriculum_key}={getattr(task.cfg, task.curriculum_key)})"
                     if following is None else f"stage {index + 1} ({following})")
            stage_log.info(f"curriculum: stage {index} ({self.stages[index]}) passed at epoch {int(metrics['epoch'])} "
                           f"(its held-out accuracy {accuracy:.4f} >= {self.threshold:g}); next: {ahead}")


def curriculum_report(stages: Any, strategy: str, threshold: float, history: list[dict[str, Any]]) -> Optional[dict[str, Any]]:
    """results.json's `curriculum`, from each epoch's `train/stage` and `stage/accuracy` (so a
    resumed run reports it whole): the epoch each listed stage was passed at (null: not passed),
    and the first epoch on the target with how many were trained there (naive and combined); mix
    trains on every stage and the target every epoch."""
    if not stages or strategy == "none":
        return None
    report: dict[str, Any] = {"stages": [str(s) for s in stages], "strategy": strategy}
    if strategy == "mix":
        return {**report, "mixed": "every epoch draws each example from a stage or the target"}
    passed = [next((h["epoch"] for h in history if h.get("train/stage") == i and h.get("stage/accuracy", -1.0) >= threshold),
                   None) for i in range(len(stages))]
    on_target = [h["epoch"] for h in history if h.get("train/stage") == len(stages)]
    return {**report, "threshold": threshold, "passed_at_epoch": passed,
            "target_from_epoch": on_target[0] if on_target else None, "epochs_on_target": len(on_target)}


def curriculum_words(report: Optional[dict[str, Any]]) -> Optional[str]:
    """The end-of-run table's line for a curriculum (None: there was none)."""
    if report is None:
        return None
    if "mixed" in report:
        return f"{report['strategy']}: stages {', '.join(report['stages'])} and the target mixed every epoch"
    done = [f"{stage} at epoch {epoch}" for stage, epoch in zip(report["stages"], report["passed_at_epoch"]) if epoch]
    passed = f"passed {', '.join(done)}; " if done else ""
    if report["target_from_epoch"] is None:
        left = report["stages"][len(done)] if len(done) < len(report["stages"]) else report["stages"][-1]
        return f"{report['strategy']}: {passed}NEVER ON THE TARGET (last trained on stage {left})"
    count = report["epochs_on_target"]
    return (f"{report['strategy']}: {passed}on the target from epoch {report['target_from_epoch']} "
            f"({count} epoch{'s' if count != 1 else ''})")


#: The share of examples a strategy draws from a uniformly chosen stage (Task.mix).
MIX_SHARE = {"mix": 1.0, "combined": 0.2}


def curriculum_callbacks(stages: Any, threshold: float, strategy: str, task: Any) -> list[Callback]:
    """The callbacks (and the task's mixing) of `train.curriculum` under `strategy`."""
    if not stages or strategy == "none":
        return []
    if strategy in MIX_SHARE:
        task.mix([*stages, None], MIX_SHARE[strategy])  # (None: the target)
    return [] if strategy == "mix" else [Curriculum(stages, threshold)]
