"""One run, top to bottom: config -> task and model -> the engine's loop -> reports.

    rnnexp task=qrsu model=lstm           (the CLI calls `run_experiment`; tests call it in-process)

`run_experiment` returns the value a sweeper optimises (the task's objective on validation).
With `train.resume=<run dir>` it continues that run from its checkpoint, in its directory, with
the run's own saved config; `train.resume=auto` (sweeps) resumes each job in its own directory,
skips the completed ones and starts the ones that never ran.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from rnnexp.config import RunConfig, load_run_config
from rnnexp.engine import checkpoint as ckpt
from rnnexp.engine import threads as threads_policy
from rnnexp.engine import warm_start
from rnnexp.engine.callbacks import Callback, Callbacks
from rnnexp.engine.curriculum import curriculum_callbacks
from rnnexp.engine.teacher_forcing import TeacherForcing
from rnnexp.engine.loop import Engine
from rnnexp.engine.precision import bf16_layers
from rnnexp.engine.signals import stop_on_signals, under_submitit
from rnnexp.engine.threads import apply_threads, available_cores, choose_threads
from rnnexp.errors import ConfigError, DivergedError, Interrupted, ResourceError, RnnexpError, RunDirError
from rnnexp.files import write_json
from rnnexp.insight.alignment import AlignmentCallback, has_alignment
from rnnexp.insight.callback import InsightCallback
from rnnexp.insight.drawing import start_drawing_process
from rnnexp.models.build import count_parameters
from rnnexp.models.family import model_family
from rnnexp.report import console as con
from rnnexp.report.results import RESULTS, completed_results, hparams, progress_results, result_line, summary_rows
from rnnexp.report.provenance import provenance, with_resumes
from rnnexp.report.slowdown import SlowdownWarning
from rnnexp.report.tensorboard import TensorBoard
from rnnexp.settings import settings_of
from rnnexp.tasks import build_task
from rnnexp.tasks.splits import stream_seed


def run_experiment(cfg: DictConfig, run_dir: Path, overrides: Sequence[str] = (), parallel_jobs: int = 1,
                   in_sweep: bool = False, defer_pictures: bool = False) -> float:
    """Run one experiment into `run_dir`; return its objective. `overrides` are the command
    line's (on resume they may change only the keys in `checkpoint.RESUMABLE`). With
    `defer_pictures` (a sweep's jobs, one after another in this process) the run returns before its
    last pictures are drawn: the next job trains meanwhile, and `finish_deferred` completes them."""
    finish_deferred(wait=False)
    run_dir = Path(run_dir)
    results: dict[str, Any] = {"status": "starting", "run_dir": str(run_dir)}
    started, had_results = time.time(), earlier_results(run_dir)
    try:
        return _run(cfg, run_dir, list(overrides), parallel_jobs, in_sweep, results, started, defer_pictures)
    except Interrupted as stop:
        stop.run_dir = str(run_dir)
        results.update(status="interrupted", error=f"stopped by signal {stop.signum}",
                       resume=f"rnnexp \"train.resume='{run_dir}'\"")
        if stop.hand_back is not None:  # submitit: its handler requeues the job and exits
            write_json(run_dir / RESULTS, {**results, "wall_seconds": round(time.time() - started, 3)})
            stop.hand_back()
        raise
    except RnnexpError as err:
        results.update(status="diverged" if isinstance(err, DivergedError) else "failed", error=str(err))
        raise
    except BaseException as err:
        results.update(status="failed", error=f"{type(err).__name__}: {err}")
        raise
    finally:
        results.setdefault("wall_seconds", round(time.time() - started, 3))
        results.setdefault("epochs_run", len(results.get("history", [])))  # epochs finished before it stopped
        # A run that never started must not overwrite an earlier run's results (a refused resume);
        # one that failed before it started in a directory of its own (a sweep job's bad config, a
        # crash while building) still says why there.
        started_here = "task" in results or not had_results
        if results["status"] not in ("completed", "skipped") and started_here and run_dir.is_dir():
            write_json(run_dir / RESULTS, results)


def _run(cfg: DictConfig, run_dir: Path, overrides: list[str], parallel_jobs: int, in_sweep: bool,
         results: dict[str, Any], started: float, defer_pictures: bool = False) -> float:
    run = prepare(cfg, run_dir, overrides, parallel_jobs, in_sweep, results, started)
    if run is None:  # a sweep resumed: this job had already finished
        return float((results.get("objective") or {}).get("value", float("nan")))
    finished = False
    try:
        try:
            with stop_on_signals() as stop_requested:  # (a stop during the test is recorded and ignored)
                run.engine.fit(Callbacks(run.callbacks), stop_requested)
                test = run.engine.test()
        except (MemoryError, torch.OutOfMemoryError) as err:
            raise out_of_memory(err) from err
        finally:
            run.after_fit()
        run.complete(test)
        finished = True
    finally:
        # The final pictures, drawn while the test ran and the result was written (in a sweep,
        # while the next job trains); on a stop or an error, waited for here.
        _UNFINISHED.append((run.insight, run.tensorboard))
        finish_deferred(wait=not (defer_pictures and finished))
    return float(results["objective"]["value"])


def out_of_memory(err: BaseException) -> ResourceError:
    return ResourceError(f"out of memory while training ({type(err).__name__}); lower model.hidden_size, "
                         f"train.batch_size or the sequence length, or use train.device=cpu")


@dataclass
class Prepared:
    """A run built and ready to train: its engine and what watches it (`prepare`), and how it
    reports when the loop is over (`after_fit`, then `complete`)."""

    run: RunConfig
    cfg: DictConfig
    run_dir: Path
    engine: Engine
    family: Any
    size: dict[str, int]
    callbacks: list[Callback]
    tensorboard: TensorBoard
    progress: Any
    insight: InsightCallback
    console: Any
    mode: str
    settings: dict[str, Any]
    results: dict[str, Any]
    started: float

    def after_fit(self) -> None:
        """What the epochs so far say (also for a run that stopped or failed)."""
        self.progress.close()
        self.tensorboard.writer.flush()  # also on a stop or an error: what was logged is on disk
        self.results.update(progress_results(self.run, self.engine))  # a stopped run says what it reached too
        if data := self.engine.task.data_report(len(self.engine.state.history)):
            self.results["data"] = data

    def complete(self, test: dict[str, float]) -> None:
        """results.json, TensorBoard's hparams, the summary table and the result line."""
        run, results, engine, task = self.run, self.results, self.engine, self.engine.task
        results.update(completed_results(run, engine, test))
        if warning := engine.divergence.unjudged(engine.state):
            con.log.warning(warning)
            results["warning"] = warning
        results["wall_seconds"] = round(time.time() - self.started, 3)
        write_json(self.run_dir / RESULTS, results)
        self.tensorboard.finish(len(engine.state.history), test, hparams(run, self.family.hparams(self.size), self.settings),
                                [f"val/{task.objective[0]}", *test])
        if self.mode != "quiet":
            con.print_summary(self.console, f"{run.task.label} / {run.model.label}",
                              summary_rows(run, results, task.unit, str(self.run_dir)))
        con.log.info(result_line(run, results, str(self.run_dir)))


def prepare(cfg: DictConfig, run_dir: Path, overrides: list[str], parallel_jobs: int, in_sweep: bool,
            results: dict[str, Any], started: float, pictures: bool = True,
            packed_with: Optional[dict[str, Any]] = None) -> Optional[Prepared]:
    """Config -> task, model, engine and its callbacks, ready to train (a resumed run restored);
    None for a sweep's job that had already finished (its results are read back into `results`).
    `pictures=False`: none for this run (a packed group draws its first seed's only); `packed_with`:
    the group a packed seed trains in (its checkpoints name it: it resumes only with it)."""
    cfg, payload = resume_target(cfg, overrides, run_dir)
    source = None
    if payload is None:  # a fresh run; with train.init_from its model is another run's best
        cfg, source = warm_start.source_config(cfg, overrides)
    if payload == "completed":  # a sweep resumed: this job had already finished (or diverged: a result too)
        results["status"] = "skipped"
        earlier = json.loads((run_dir / RESULTS).read_text())
        results["objective"] = earlier.get("objective") or {}
        con.log.info(f"kept: {run_dir.name} ({earlier.get('status')} before; train.resume=auto keeps it as it is)")
        return None
    run = load_run_config(cfg)
    if payload is not None and payload.get("packed_with") and packed_with is None:
        group = payload["packed_with"]
        if run.train.pack_seeds != "off" and not ckpt.done_in_group(run_dir):
            raise RunDirError(ckpt.alone_refused(run_dir, payload))
        others = ", ".join(d for d in group["dirs"] if d not in (None, run_dir.name))
        con.log.warning(f"note: {run_dir.name} trained packed with {others}; it goes on alone: close to, not bit "
                        f"for bit, what the group would give")
        results.update(packed_with=[d for d in group["dirs"] if d], packing={"group": group["dirs"], "alone_from_epoch":
                                                                            payload["loop"]["epoch"]})
    if payload is not None:
        ckpt.check_not_finished(run, payload, run_dir)

    # The task and the model; the seed fixes the initial weights, each epoch's data its own seed.
    device = pick_device(run.train.device)
    if run.train.precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ConfigError("train.precision=bf16: this GPU has no bfloat16; use train.precision=fp32")
    seed_everything(run.train.seed)
    task = build_task(run.task, run.train.batch_size, run.train.seed)
    family = model_family(run.model)
    if source is not None or (payload is not None and run.train.init_from):
        task.inherit((source or payload)["task"])  # (a warm-started character model keeps the source's vocabulary)
    if source is not None:
        size = source.get("model_size") or {"hidden_size": source["hidden_size"]}
    else:  # a resumed run: the size it was built with (a format-4 checkpoint has none: its config gives it)
        size = (payload or {}).get("model_size") or family.size(task)
    model = family.build(task, size)
    if source is not None:
        warm_start.load_weights(model, source, run.task.name)
    model = model.to(device)
    params = count_parameters(model)
    threads, why = choose_threads(run.train.threads, params, device, parallel_jobs)
    apply_threads(threads)
    # Pictures are drawn in a process of their own where the training leaves a core free; started
    # now, it imports its libraries while this one builds the engine (the optimizer pulls in
    # torch._dynamo: ~1 s), instead of after the first epoch, when a short run then waited for it.
    running = threads_policy.jobs_running_now() if threads_policy.jobs_running_now and parallel_jobs > 1 else parallel_jobs
    draw_aside = device.type == "cuda" or threads * running < available_cores()
    if draw_aside and run.train.insight_every and pictures:
        start_drawing_process()
    engine = Engine(task, model, run.train, device, cuda_graph=family.cuda_graph and packed_with is None)
    if payload is not None:
        ckpt.restore(payload, engine)
    for name, text in task.artifacts().items():
        (run_dir / name).write_text(text, encoding="utf-8")

    # What watches the loop: console, TensorBoard, checkpoints (last: they save what the others added).
    console = con.make_console()
    mode = con.progress_mode(run.train.progress, console, in_sweep)
    con.route_console_logging(console, mode)
    resumed = engine.state if payload is not None else None
    tensorboard = TensorBoard(run_dir, OmegaConf.to_yaml(OmegaConf.create(ckpt.plain_config(cfg))), resumed)
    progress = con.ConsoleProgress(console, mode, task.unit, run.train.epochs, batches_per_epoch(task, run),
                                   label=run_dir.name if packed_with else "")
    insight_every = run.train.insight_every if family.replay and pictures else 0  # (what it lacks is said below)
    insight = InsightCallback(tensorboard.writer, run_dir, insight_every, task.example(), background=draw_aside,
                              title=picture_title(run), deferred=True)
    alignment = ([AlignmentCallback(tensorboard.writer, run_dir, run.train.insight_every, task.example(), picture_title(run))]
                 if run.train.insight_every and pictures and has_alignment(model) else [])  # (a decoder's attention)
    callbacks = [*task_callbacks(run, engine), tensorboard, progress, SlowdownWarning(task.unit), insight, *alignment,
                 ckpt.Checkpoints(run_dir, ckpt.plain_config(cfg), run.train.checkpoint_minutes, size,
                                  packed_with=packed_with)]
    settings = run_settings(cfg, overrides, run_dir, resumed=payload is not None)
    results.update({**family.hparams(size), "model": run.model.label}, status="running", task=run.task.name,
                   settings=settings,
                   parameters=params, threads=threads, device=str(device), config=ckpt.plain_config(cfg),
                   **with_resumes(run_dir, provenance(device, threads, overrides), payload is not None),
                   **({"init_from": earlier_source(run_dir) or warm_start.record(source or {}, run.train.init_from)}
                      if run.train.init_from else {}),
                   history=engine.state.history)
    step = f"; training step: {engine.step_kind}" if engine.step_kind else ""
    if run.train.insight_every and pictures:
        step += "; pictures: by a process of their own" if draw_aside else "; pictures: between epochs (every core trains)"
    for line in start_lines(run, task, model, family.describe(size, params), f"{device}; threads: {threads} ({why}){step}",
                            run_dir, engine):
        con.start_log.info(line)
    if lacks := family.lacks():
        con.start_log.info(lacks)
    if packed_with is not None:
        others = [d for d in packed_with["dirs"] if d not in (None, run_dir.name)]
        con.start_log.info(f"packed into one model with {', '.join(others)} (its own block of weights, its own data, "
                           f"curves and results; train.pack_seeds=off: one by one)")
    return Prepared(run, cfg, run_dir, engine, family, size, callbacks, tensorboard, progress, insight, console, mode,
                    settings, results, started)


_UNFINISHED: list[tuple[InsightCallback, TensorBoard]] = []
KEEP_UNFINISHED = 2  # runs whose pictures may still be drawing (each holds an open event file)


def finish_deferred(wait: bool = True) -> None:
    """Complete the pictures (and close the TensorBoard files) of finished runs: those already
    drawn (whichever they are: a packed group's seeds without pictures never wait behind its
    first), or with `wait` every one; at most KEEP_UNFINISHED are left open, the oldest waited for."""
    for item in [item for item in _UNFINISHED if wait or item[0].drawn()]:
        _UNFINISHED.remove(item)
        item[0].finish()
        item[1].close()
    while len(_UNFINISHED) > KEEP_UNFINISHED:
        insight, tensorboard = _UNFINISHED.pop(0)
        insight.finish()
        tensorboard.close()


def earlier_results(run_dir: Path) -> bool:
    """Whether `run_dir` holds an earlier run's results (a stopped sweep's "not started" marker
    is none: a failure of the job that then starts replaces it)."""
    try:
        return json.loads((run_dir / RESULTS).read_text()).get("status") != "not started"
    except (OSError, ValueError, AttributeError):
        return (run_dir / RESULTS).exists()


def earlier_source(run_dir: Path) -> Any:
    """A resumed warm start's record of its source, as its first results.json gave it."""
    try:
        return json.loads((run_dir / RESULTS).read_text()).get("init_from") if source_known(run_dir) else None
    except (OSError, ValueError, AttributeError):
        return None


def run_settings(cfg: DictConfig, overrides: list[str], run_dir: Path, resumed: bool) -> dict[str, Any]:
    """The keys that make this run what it is (rnnexp.settings); a resumed run keeps the choices its
    first start made (Hydra's record of them; the resume's own command line names none)."""
    recorded = None
    if resumed:
        try:
            import yaml

            saved = yaml.safe_load((run_dir / ".hydra" / "hydra.yaml").read_text()) or {}
            recorded = saved["hydra"]["runtime"]["choices"]
        except (OSError, KeyError, TypeError, ValueError):
            recorded = None  # (a run made in-process: its config says what it is)
    chosen = settings_of(cfg, overrides, recorded, use_hydra=not resumed)
    if resumed and "experiment" not in chosen:
        try:
            earlier = json.loads((run_dir / RESULTS).read_text()).get("settings") or {}
        except (OSError, ValueError, AttributeError):
            earlier = {}
        if "experiment" in earlier:
            chosen = {**{k: v for k, v in chosen.items() if k in ("task", "model")}, "experiment": earlier["experiment"],
                      **{k: v for k, v in chosen.items() if k not in ("task", "model")}}
    return chosen


def source_known(run_dir: Path) -> bool:
    return (run_dir / ckpt.CHECKPOINT).is_file() and (run_dir / RESULTS).is_file()


DONE = ("completed", "diverged")  # a sweep resumed keeps these jobs as they are


def resume_target(cfg: DictConfig, overrides: list[str], run_dir: Path) -> tuple[DictConfig, Any]:
    """(the config to run, the checkpoint to continue from, None for a fresh run, or "completed")."""
    resume = OmegaConf.select(cfg, "train.resume")
    if resume == "auto" or (resume is None and under_submitit()):
        # A sweep job resumed as part of its sweep, or requeued by submitit: its own directory.
        if (run_dir / RESULTS).is_file() and json.loads((run_dir / RESULTS).read_text()).get("status") in DONE:
            return cfg, "completed"
        if not (run_dir / ckpt.CHECKPOINT).is_file():
            return cfg, None
        resume = str(run_dir)
    if resume is None:
        return cfg, None
    return ckpt.resume_config(cfg, overrides, Path(str(resume)).expanduser())


def task_callbacks(run: RunConfig, engine: Engine) -> list[Callback]:
    """Callbacks that change what the loop trains on or look inside it (before the reports, which
    log what they add)."""
    callbacks: list[Callback] = []
    callbacks += curriculum_callbacks(run.train.curriculum, run.train.curriculum_threshold,
                                      run.train.curriculum_strategy, engine.task)
    if getattr(engine.model, "teacher_forcing", None) is not None:  # (a decoder: how often it reads the true previous symbol)
        callbacks.append(TeacherForcing(run.train.teacher_forcing, run.train.teacher_forcing_end, run.train.epochs))
    return callbacks


def picture_title(run: RunConfig) -> str:
    """What the pictures of a run show: "qrsu-hard / lstm-chrono" (the label names an init that is
    not the default; a run from before it did says "lstm (chrono init)")."""
    init, label = getattr(run.model, "init", "default"), run.model.label
    return f"{run.task.label} / {label}" + (f" ({init} init)" if init != "default" and init not in label else "")


def batches_per_epoch(task: Any, run: RunConfig) -> int:
    """The batches the engine runs per epoch: a window of train.batches_per_epoch goes on through
    the data (into the next pass when it is longer than one), else one pass."""
    return run.train.batches_per_epoch or task.train_batch_count()


def start_lines(run: RunConfig, task: Any, model: Any, described: str, device: str, run_dir: Path,
                engine: Engine) -> list[str]:
    lines = [f"run directory: {run_dir}", f"task: {task.describe()}", f"model: {described}",
             f"training: {run.train.optimizer} lr {run.train.lr:g}, batch {run.train.batch_size}, "
             f"up to {run.train.epochs} epoch{'s' * (run.train.epochs != 1)}"
             + (f" of {run.train.batches_per_epoch} batches" if run.train.batches_per_epoch else "")
             + f", seed {run.train.seed}"
             + (f" (held-out sets: seed {run.task.heldout_seed})" if hasattr(run.task, "heldout_seed") else "")
             + (f", at most {run.train.time_limit_minutes:g} min" if run.train.time_limit_minutes else "")
             + (f", curriculum {list(run.train.curriculum)} of task.{task.curriculum_key} ({run.train.curriculum_strategy})"
                if run.train.curriculum and run.train.curriculum_strategy != "none" else "")
             + (f", teacher forcing {run.train.teacher_forcing:g}"
                + (f" to {run.train.teacher_forcing_end:g} by epoch {run.train.epochs}"
                   if run.train.teacher_forcing_end is not None else "")
                if run.train.teacher_forcing != 1.0 or run.train.teacher_forcing_end is not None else "")
             + (f", bf16 autocast ({bf16_layers(model, lambda m: task.forward(m, task.example().batch.to(engine.device), None), engine.device)})"
                if run.train.precision == "bf16" else ""),
             f"device: {device}"]
    s = engine.state
    if s.global_step:
        lines.append(f"resuming at epoch {s.epoch}, batch {s.batch} (step {s.global_step}) with the run's own config")
    return lines


def pick_device(setting: str) -> torch.device:
    """`auto` picks CUDA when present (an unavailable `cuda` was already refused by validation).
    Even for a hidden-4 LSTM that is the faster device, now that the training step runs as a CUDA
    graph: 5 epochs of QRSU easy took 0.08 s on an H200 against 0.34 s on one of its CPU cores,
    eager on the GPU was 1.7x slower than the CPU (scripts/gpu_check.py, BENCHMARKS.md)."""
    if setting == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(setting)


def seed_everything(seed: int) -> None:
    """The initial weights (and dropout) from `train.seed`'s own stream: no data stream shares it."""
    weights = stream_seed(seed, "weights")
    random.seed(weights)
    np.random.seed(weights & 0xFFFFFFFF)
    torch.manual_seed(weights)

