"""rnnexp's default sweep launcher: Hydra's basic launcher (jobs one after another in this process),
which trains the jobs that differ only in `train.seed` (and in when they stop: epochs, target, time
limit) as one packed model where that is faster.

    rnnexp -m task=qrsu model=rnn,lstm train.seed=1,2,3     two groups of three seeds
    rnnexp -m ... train.pack_seeds=off                      one job after another, bit for bit single runs

With `train.pack_seeds=auto` (the default) a group is packed when its config can be (the recurrent
family, no dropout, no token inputs, curriculum, schedule, bf16 or warm start) and a probe of a few
training steps (rnnexp.engine.packed.probe, 0.1-1.2 s) measured the packed step 1.2x faster per seed;
otherwise its jobs run one by one, as with `off`. A resumed group keeps how it trained: packed
checkpoints resume packed (exactly), single-run ones one by one. Each job keeps its own directory,
`.hydra/` record and results.json; the group's log lines go to every seed's run.log.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import signal
from pathlib import Path
from typing import Any, Optional, Sequence

from hydra._internal.core_plugins import basic_launcher
from hydra._internal.core_plugins.basic_launcher import BasicLauncher
from hydra.core.utils import JobReturn, JobStatus, configure_log, filter_overrides, run_job, setup_globals
from omegaconf import DictConfig, OmegaConf, open_dict

log = logging.getLogger("rnnexp")

SEED = "train.seed="
#: Keys a packed group's jobs may differ in besides the seed: when each stops (each seed keeps its
#: own early stop). experiment=lecture_qrsu's 10-epoch jobs then train beside its 100-epoch ones.
STOPS = ("train.epochs=", "train.target_accuracy=", "train.time_limit_minutes=")


def seed_groups(job_overrides: Sequence[Sequence[str]]) -> list[list[int]]:
    """Job indices grouped by their overrides less `train.seed` and when they stop (STOPS), in the
    order of their first job; a job without a seed of its own is a group of one."""
    groups: dict[tuple[str, ...], list[int]] = {}
    for index, overrides in enumerate(job_overrides):
        if not any(o.startswith(SEED) for o in overrides):
            groups[(f"#{index}",)] = [index]
            continue
        key = tuple(sorted(o for o in overrides if not o.startswith((SEED, *STOPS))))
        groups.setdefault(key, []).append(index)
    return list(groups.values())


def pack_refusal(cfg: DictConfig) -> Optional[str]:
    """Why a job's config does not train packed (None: it can)."""
    from rnnexp.config import load_run_config
    from rnnexp.models.family import model_family
    from rnnexp.tasks import task_class

    run = load_run_config(cfg)
    t = run.train
    if t.pack_seeds == "off":
        return "train.pack_seeds=off"
    for key, value, default in (("curriculum", t.curriculum, None), ("lr_schedule", t.lr_schedule, "none"),
                                ("precision", t.precision, "fp32"), ("init_from", t.init_from, None)):
        if value != default:
            return f"train.{key}={value}"
    task_cls = task_class(run.task.name)
    if task_cls.decodes:
        return f"task={run.task.name} decodes"
    return model_family(run.model).pack_refusal(task_cls)


#: Whether a sweep ran on this launcher in this process (the CLI then exits without the teardown).
LAUNCHED = {"sweep": False}


class PackingLauncher(BasicLauncher):
    def __init__(self, n_jobs: Any = "auto") -> None:
        super().__init__()
        self.n_jobs = n_jobs  # (read from the config at launch: conf/hydra/launcher/packing.yaml)
        self._composed: dict[tuple[str, ...], DictConfig] = {}

    def setup(self, *, hydra_context: Any, task_function: Any, config: DictConfig) -> None:
        """Hydra's sweeper composes every job's config to check it before the launch (~85 ms a job),
        with the loader this launcher composes each job with again when it starts: the loader keeps
        the sweeper's compositions for this sweep, and a job starts from a copy (~4 ms)."""
        super().setup(hydra_context=hydra_context, task_function=task_function, config=config)
        self._keep_compositions()

    def _keep_compositions(self, keep: bool = True) -> None:
        """(On while the sweeper checks a batch of jobs; off while it runs: the loader then pickles,
        for the helpers, and the launcher alone composes.)"""
        assert self.hydra_context is not None
        loader = self.hydra_context.config_loader
        vars(loader).pop("load_sweep_config", None)  # (the loader's own method again)
        if not keep:
            return
        compose = loader.load_sweep_config

        def load_sweep_config(master_config: DictConfig, sweep_overrides: list[str]) -> DictConfig:
            composed = compose(master_config, sweep_overrides)
            if master_config is self.config:  # (this sweep's: another's config is not kept)
                self._composed[tuple(sweep_overrides)] = copy.deepcopy(composed)
            return composed

        loader.load_sweep_config = load_sweep_config

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        setup_globals()
        assert self.hydra_context is not None and self.config is not None and self.task_function is not None
        LAUNCHED["sweep"] = True
        self._keep_compositions(False)
        try:
            return self._launch(job_overrides, initial_job_idx)
        finally:
            self._keep_compositions()  # (for the sweeper's check of a next batch)

    def _launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from rnnexp.sweep.side_by_side import Units, helper_after, run_side_by_side

        assert self.hydra_context is not None and self.config is not None and self.task_function is not None
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        Path(str(self.config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
        basic_launcher.log.info(f"Launching {len(job_overrides)} jobs locally")  # (as Hydra's basic launcher says)
        self._overrides, self._first_idx = [list(o) for o in job_overrides], initial_job_idx
        self._configs: dict[int, DictConfig] = {}
        # A group (its jobs differ only in the seed) is one unit: packed, or given back as units of
        # one job; units go in the order of their first job, a packed group at its first job's place.
        groups = seed_groups(job_overrides)
        units = Units(groups, _stop_signal)
        # (at most one unit per group at first: a group that packs needs no helper beside it)
        workers, why = side_by_side(self.config, len(groups))
        with open_dict(self.config):  # (each job's config reads it: its threads, its pictures)
            self.config.hydra.launcher.n_jobs = workers
        from rnnexp.engine import threads
        from rnnexp.sweep.side_by_side import running_units

        threads.jobs_running_now = running_units  # (pictures: aside while no helper trains beside)
        if workers == 1:
            runs: dict[int, JobReturn] = {}
            while (unit := units.take()) is not None:
                done, given_back = self.run_unit(unit)
                runs.update(done)
                units.done(given_back)
        else:
            after = helper_after(planned_epochs(self._composed.values()))
            log.info(f"up to {workers} units at a time, packed groups or single jobs ({why}; a helper "
                     f"process starts {f'after {after:g} s' if after else 'at once'})")
            from rnnexp.sweep.summary import get_ready

            runs = run_side_by_side(units, self.run_unit, workers - 1, self._payload(), _stop_signal,
                                    cores_free if n_jobs_setting(self.config) == "auto" else None, get_ready, after)
        missing = [i for i in range(len(job_overrides)) if i not in runs]
        if missing:  # (units that never started: the sweep was stopped)
            from rnnexp.errors import Interrupted

            raise Interrupted(_stop_signal() or signal.SIGINT)
        return [runs[i] for i in range(len(job_overrides))]

    def run_unit(self, unit: Any) -> tuple[dict[int, JobReturn], dict[int, float]]:
        """Run a group (packed where it packs; the jobs it does not train are given back, each with
        the seconds its probe estimates: infinite where none ran, so they keep the jobs' order ahead
        of the estimated ones) or one job."""
        _, indices, announced = unit
        if len(indices) > 1:
            for j in indices:
                self._configs[j] = self._config(self._overrides[j], self._first_idx + j)
            estimates: dict[int, float] = {}
            runs = self._packed(list(indices), [self._configs[j] for j in indices], estimates) or {}
            configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)  # type: ignore[union-attr]
            return runs, {i: estimates.get(i, math.inf) for i in indices if i not in runs}
        i = indices[0]  # (one by one: bit for bit a single run)
        config = self._configs.pop(i, None) or self._config(self._overrides[i], self._first_idx + i, announced)
        ret = self._one(config)
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)  # type: ignore[union-attr]
        return {i: ret}, {}

    def _parallel(self) -> int:
        """Units running at once in this sweep at most (each job's threads depend on it)."""
        from rnnexp.engine.threads import parallel_jobs

        return parallel_jobs(self.config.hydra.launcher)  # type: ignore[union-attr]

    def _payload(self) -> bytes:
        """What a helper process needs to run units as this process does (Hydra's state included)."""
        import pickle

        from hydra.core.singleton import Singleton

        task = self.task_function
        state = {"_overrides": self._overrides, "_first_idx": self._first_idx, "_configs": {},
                 "_composed": self._composed}  # (each job's config as the sweeper composed it)
        return pickle.dumps((type(self), {"hydra_context": self.hydra_context, "config": self.config},
                             (task.__module__, task.__name__), Singleton.get_state()["instances"],
                             str(self.config.hydra.sweep.dir), state))  # type: ignore[union-attr]

    def _config(self, overrides: Sequence[str], idx: int, announced: bool = False) -> DictConfig:
        assert self.hydra_context is not None and self.config is not None
        if not announced:  # (a job given back by a group was announced with it)
            log.info(f"\t#{idx} : {' '.join(filter_overrides(overrides))}")
        kept = self._composed.pop(tuple(overrides), None)
        config = kept if kept is not None else self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
        with open_dict(config):
            config.hydra.job.id = idx
            config.hydra.job.num = idx
            config.hydra.launcher.n_jobs = self.config.hydra.launcher.n_jobs  # (as launch resolved it)
        return config

    def _one(self, config: DictConfig, task_function: Any = None) -> JobReturn:
        assert self.hydra_context is not None
        return run_job(hydra_context=self.hydra_context, task_function=task_function or self.task_function,
                       config=config, job_dir_key="hydra.sweep.dir", job_subdir_key="hydra.sweep.subdir")

    def _packed(self, group: list[int], configs: list[DictConfig],
                estimates: Optional[dict[int, float]] = None) -> Optional[dict[int, JobReturn]]:
        """Run what of `group` trains packed and return those jobs' results; the jobs left out (or
        None: all) run one by one. Where a probe chose one by one, `estimates` gets each job's
        seconds as the probe foresees them (its step time x the planned steps: a cap where a target
        stops it sooner)."""
        from rnnexp.errors import Interrupted, RnnexpError
        from rnnexp.sweep.jobs import SweepState

        if SweepState.stop_signal:  # Ctrl-C between two groups
            raise Interrupted(SweepState.stop_signal)
        try:
            refusal = pack_refusal(configs[0])
        except RnnexpError:
            return None  # (a config that does not load: each job says why when it runs)
        from rnnexp.sweep.jobs import HOW_IT_RAN

        label = " ".join(o for o in filter_overrides(configs[0].hydra.overrides.task)
                         if not o.startswith((SEED, *STOPS, *HOW_IT_RAN)))
        if refusal is not None:
            if not refusal.startswith("train.pack_seeds=off"):
                log.info(f"seeds one by one ({label}): {refusal}")
            return None
        # Each job's directory and .hydra/ record, as Hydra makes them; the training comes after.
        from rnnexp.engine.signals import stop_on_signals

        made: list[Any] = []

        def collect(cfg: DictConfig) -> None:
            made.append(cfg)  # (its Hydra config: the copy run_job keeps in its JobReturn)

        with stop_on_signals():  # (a Ctrl-C from here on stops the group after its first step)
            collected = {i: self._one(config, collect) for i, config in zip(group, configs)}
            from rnnexp.run_packed import Job

            jobs = {i: Job(cfg, full, Path(str(full.hydra.runtime.output_dir)), [str(o) for o in full.hydra.overrides.task])
                    for i, cfg, full in ((i, cfg, collected[i].hydra_cfg) for i, cfg in zip(group, made))}
            states = {i: trained_as(job.run_dir) for i, job in jobs.items()}
            runs: dict[int, JobReturn] = {}
            # A packed group resumes as the group it was, in its order (its checkpoints name it): the
            # packed model is then built as the uninterrupted group's was, from the seeds still training.
            for layout in dict.fromkeys(s for s in states.values() if isinstance(s, tuple)):
                by_dir = {jobs[i].run_dir.name: i for i in group if states[i] == layout}
                members = [by_dir.get(name) for name in layout]
                runs.update(self._run_packed(members, jobs, collected, None))
            fresh = [i for i in group if states[i] == "fresh" and i not in runs]
            if len(fresh) > 1:
                probe = _probe(jobs[fresh[0]].cfg, len(fresh), self._parallel())
                epoch_seconds = probe.pop("epoch_seconds")  # (one job's, alone: not the group's record)
                if probe["speedup"] >= MIN_SPEEDUP:
                    runs.update(self._run_packed(list(fresh), jobs, collected, probe))
                else:
                    if estimates is not None:
                        estimates.update({i: job_seconds(epoch_seconds, jobs[i].cfg) for i in fresh})
                    log.info(f"seeds one by one ({label}): packing {len(fresh)} measured {probe['speedup']:g}x "
                             f"(one step {probe['single_ms']:g} ms alone, {probe['packed_ms']:g} ms packed)")
        return runs

    def _run_packed(self, members: list[Optional[int]], jobs: dict[int, Any], collected: dict[int, JobReturn],
                    probe: Optional[dict[str, Any]]) -> dict[int, JobReturn]:
        from rnnexp.run_packed import run_packed
        from rnnexp.sweep.jobs import read_plan

        assert self.config is not None
        resume = read_plan(Path(str(self.config.hydra.sweep.dir))).get("resume", "rnnexp -m ... train.resume=auto")
        group = [jobs[i] if i is not None else None for i in members]
        handlers = _log_to_every([job for job in group if job is not None])
        try:
            outcomes = run_packed(group, resume, probe, self._parallel())
        finally:
            root = logging.getLogger()
            for handler in handlers:
                root.removeHandler(handler)
                handler.close()
        return {i: _returned(collected[i], outcome) for i, outcome in zip(members, outcomes) if i is not None}


def job_seconds(epoch_seconds: float, config: Any) -> float:
    """A job's seconds as its probe foresees them: an epoch's, times its epochs, at most its time limit."""
    seconds = epoch_seconds * planned_epochs([config])
    limit = OmegaConf.select(config, "train.time_limit_minutes", default=None)
    return min(seconds, float(limit) * 60) if limit else seconds


def planned_epochs(configs: Any) -> int:
    """train.epochs summed over the jobs' configs (0 for one that does not say)."""
    total = 0
    for config in configs:
        try:
            total += int(OmegaConf.select(config, "train.epochs", default=0) or 0)
        except Exception:  # noqa: BLE001 - (an interpolation that does not resolve: its job says why)
            pass
    return total


def side_by_side(config: DictConfig, jobs: int) -> tuple[int, str]:
    """How many units may run at once (`hydra.launcher.n_jobs`; auto: one per core, one on a GPU;
    a helper then starts only where a core is free when it would: `cores_free`) and why."""
    from rnnexp.engine.threads import available_cores

    setting = n_jobs_setting(config)
    cores = available_cores()
    if setting != "auto":
        n = int(setting)
        return max(1, min(jobs, cores + 1 + n if n < 0 else n)), f"hydra.launcher.n_jobs={setting}"
    if jobs < 2 or cores < 2:
        return 1, "auto"
    import torch

    device = str(OmegaConf.select(config, "train.device", default="auto"))
    if device.startswith("cuda") or (device == "auto" and torch.cuda.is_available()):
        return 1, "auto: one GPU, one job at a time"
    return min(cores, jobs), f"hydra.launcher.n_jobs=auto: {cores} cores, a helper for each one free"


def cores_free() -> int:
    """Cores other processes leave free (this one's own work not counted as busy)."""
    from rnnexp.engine.threads import available_cores, busy_cores_elsewhere

    return max(1, available_cores() - round(busy_cores_elsewhere()))


def n_jobs_setting(config: DictConfig) -> str:
    """`hydra.launcher.n_jobs` of rnnexp's launcher, checked: "auto" or an integer."""
    from rnnexp.errors import ConfigError

    setting = str(OmegaConf.select(config, "hydra.launcher.n_jobs", default="auto"))
    if setting != "auto" and (not setting.lstrip("-").isdigit() or int(setting) == 0):
        raise ConfigError(f"hydra.launcher.n_jobs={setting}: use auto (one unit per free core), 1 (one after "
                          "another) or a number of units side by side (-1: every core)")
    return setting


def _stop_signal() -> int:
    """A stop of the sweep: its own process's signal, or one a job recorded in the sweep directory."""
    from rnnexp.sweep.jobs import SweepState, stop_requested_for

    if SweepState.stop_signal:
        return SweepState.stop_signal
    return stop_requested_for(Path(SweepState.directory)) if SweepState.directory else 0


#: Pack a group when the probe measured at least this speed-up per seed (below it, one by one
#: also keeps each seed's pictures and is bit for bit a single run).
MIN_SPEEDUP = 1.2


def _probe(cfg: DictConfig, seeds: int, parallel_jobs: int = 1) -> dict[str, Any]:
    from rnnexp.config import load_run_config
    from rnnexp.engine.loop import Engine
    from rnnexp.engine.packed import probe
    from rnnexp.engine.threads import apply_threads, choose_threads
    from rnnexp.models.build import count_parameters
    from rnnexp.models.family import model_family
    from rnnexp.run import pick_device, seed_everything
    from rnnexp.tasks import build_task

    run = load_run_config(cfg)
    device = pick_device(run.train.device)
    seed_everything(run.train.seed)
    task = build_task(run.task, run.train.batch_size, run.train.seed)
    family = model_family(run.model)
    model = family.build(task, family.size(task)).to(device)
    apply_threads(choose_threads(run.train.threads, count_parameters(model), device, parallel_jobs)[0])  # (a seed's, as it trains)
    measured = probe(Engine(task, model, run.train, device, cuda_graph=False), seeds, family.packed)
    steps = run.train.batches_per_epoch or task.train_batch_count()
    return {**measured, "epoch_seconds": measured["single_ms"] / 1000 * steps}


def trained_as(run_dir: Path) -> Any:
    """How the job in `run_dir` trained so far: "fresh" (never), "done" (completed or diverged),
    "single" (a single run's checkpoint), or the packed group it trained in (its directories, in
    order; from its results, or its checkpoint where the run was killed before writing them)."""
    from rnnexp.engine.checkpoint import CHECKPOINT, load_payload
    from rnnexp.errors import RnnexpError

    try:
        results = json.loads((run_dir / "results.json").read_text())
    except (OSError, ValueError):
        results = {}
    group = (results.get("packing") or {}).get("group")
    if results.get("status") in ("completed", "diverged"):
        return tuple(group) if group else "done"
    if not (run_dir / CHECKPOINT).is_file():
        return "fresh"
    if group:
        return tuple(group)
    try:
        packed_with = load_payload(run_dir / CHECKPOINT).get("packed_with")
    except RnnexpError:
        return "single"  # (resuming it says what is wrong with it)
    return tuple(packed_with["dirs"]) if packed_with else "single"


def _log_to_every(jobs: list[Any]) -> list[logging.Handler]:
    """The group's lines into every seed's run.log, and only there: Hydra's file handler (the last
    job it set up) gives way to one per seed, with its format; all are removed after the group."""
    root = logging.getLogger()
    hydra_files = [h for h in root.handlers if isinstance(h, logging.FileHandler)]
    for handler in hydra_files:
        root.removeHandler(handler)
        handler.close()
    own = hydra_files[0] if hydra_files else None
    added: list[logging.Handler] = []
    for job in jobs:
        handler = logging.FileHandler(job.run_dir / "run.log")
        if own is not None:
            handler.setFormatter(own.formatter)
            handler.setLevel(own.level)
        root.addHandler(handler)
        added.append(handler)
    return added


def _returned(ret: JobReturn, outcome: Any) -> JobReturn:
    """The job's JobReturn with its outcome: a value (a diverged seed's NaN: a result of the sweep,
    as for a job alone), or the error it failed with (Hydra reports the failed job)."""
    from rnnexp.errors import DivergedError

    if isinstance(outcome, DivergedError):  # (said when it diverged)
        outcome = float("nan")
    if isinstance(outcome, BaseException):
        ret.status, ret.return_value = JobStatus.FAILED, outcome
    else:
        ret.status, ret.return_value = JobStatus.COMPLETED, outcome
    return ret

