"""A sweep as a whole: its planned jobs, Ctrl-C in the sweep's own process, the command that resumes it.

At the start of a multirun (the `SummariseSweep` callback) rnnexp writes `jobs.json` into the sweep
directory: every job the basic sweeper will run (the product of the swept values, presets included),
with its settings (rnnexp.settings) and its directory, and the one command that resumes the whole
sweep:

    rnnexp -m <the sweep's own overrides> hydra.sweep.dir=<that directory> train.resume=auto

A job's directory names the keys whose resolved values differ across the planned jobs, and only
those: `model=rnn,hidden_size=64,init=identity,lr=0.0001,seed=101` for experiment=long_lags (the
preset's per-cell settings count), `model=gru,seed=2` for a plain sweep over cells and seeds.

A job is known by its overrides, not its number: with `train.resume=auto` each planned job finds
the directory that holds its overrides (from this plan or an earlier one, also the numbered
directories of sweeps made before names said what differs), and there a completed job is kept (its
objective is read back), an interrupted one continues from its checkpoint, one that never ran
starts. So seeds added to a finished sweep (`train.seed=1,2,3` -> `1,2,3,4,5,6`, with the same
hydra.sweep.dir and train.resume=auto) run only the new jobs. The summary lists every planned job,
also those that never started.
"""

from __future__ import annotations

import json
import re
import shlex
import signal
import sys
import zlib
from pathlib import Path
from typing import Any, Optional

from omegaconf import DictConfig, OmegaConf

PLAN = "jobs.json"
#: Overrides that say how a job ran, not what it is (not part of a plan, a column or a group).
HOW_IT_RAN = ("hydra", "train.resume", "train.overwrite", "train.pack_seeds")
STOP = ".stop"  # written when the sweep's own process is stopped; removed when the sweep (re)starts


class SweepState:
    """The sweep running in this process (set by the callback at the start of a multirun)."""

    directory: Optional[str] = None
    stop_signal: int = 0  # a Ctrl-C / SIGTERM the sweep's own process received


def raw(overrides: Any) -> list[str]:
    """Overrides as typed: `hydra.sweep.subdir=${hydra.job.num}` stays text (reading the list
    item by item would resolve it, and hydra.job.num has no value outside a job)."""
    return [str(o) for o in OmegaConf.to_container(overrides, resolve=False)]


def planned_jobs(config: DictConfig) -> Optional[list[list[str]]]:
    """Each job's overrides, in launch order, for Hydra's basic sweeper; None for sweepers that
    decide as they go (Optuna)."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    if not str(OmegaConf.select(config, "hydra.sweeper._target_", default="")).endswith("BasicSweeper"):
        return None
    params = OmegaConf.select(config, "hydra.sweeper.params", default=None) or {}
    arguments = [f"{key}={value}" for key, value in params.items()] + raw(config.hydra.overrides.task)
    overrides = OverridesParser.create().parse_overrides(arguments)
    return [job for batch in BasicSweeper.split_arguments(overrides, None) for job in batch]


def resume_command(config: DictConfig) -> str:
    """The one command that resumes this sweep, quoted so that it pastes into a shell."""
    task = [o for o in raw(config.hydra.overrides.task) if not o.startswith(("train.resume=", "train.overwrite="))]
    own = [o for o in raw(config.hydra.overrides.hydra)
           if not o.startswith(("hydra.sweep.dir=", "hydra.mode=", "hydra.job_logging", "hydra.hydra_logging"))]
    words = ["rnnexp", "-m", *task, *own, f"hydra.sweep.dir={config.hydra.sweep.dir}", "train.resume=auto"]
    return " ".join(shlex.quote(w) for w in words)


def identity(overrides: Any) -> tuple[str, ...]:
    """What a job is: its overrides, in any order, less those that say how it ran."""
    return tuple(sorted(str(o) for o in overrides if not str(o).startswith(HOW_IT_RAN)))


NAMED_SUBDIR = "${rnnexp_job_dir:}"  # conf/config.yaml's hydra.sweep.subdir: jobs named by what differs


def write_plan(config: DictConfig) -> None:
    directory = Path(str(config.hydra.sweep.dir))
    directory.mkdir(parents=True, exist_ok=True)
    jobs = planned_jobs(config)
    plan: dict[str, Any] = {"resume": resume_command(config), "jobs": None}
    if jobs is not None:
        settings, values = job_settings(config, jobs)
        # (a hydra.sweep.subdir of one's own names the jobs itself: no directory is planned)
        named = OmegaConf.to_container(config.hydra.sweep, resolve=False).get("subdir") == NAMED_SUBDIR
        dirs = job_dirs(jobs, values, settings, existing_jobs(directory)) if named else [None] * len(jobs)
        plan["jobs"] = [{"job": n, "overrides": o, **({"dir": d} if d else {}), "settings": s, "values": v}
                        for n, (o, d, s, v) in enumerate(zip(jobs, dirs, settings, values))]
    (directory / PLAN).write_text(json.dumps(plan, indent=2))


def job_settings(config: DictConfig, jobs: list[list[str]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Each planned job's settings (rnnexp.settings: composed as its launcher will compose it), and
    its values of every key that some job sets (the defaults filled in), by which jobs are named,
    grouped and told apart. Hydra composes once per distinct choice of config groups (~0.1 s
    each); a job's plain `key=value` overrides are applied to a copy. A job that does not compose
    (a preset without a setting for a cell, an unknown key) is planned by its overrides alone:
    it fails when it runs, the others run."""
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from rnnexp.settings import flat, naming_keys, settings_of

    loader, parser = GlobalHydra.instance().config_loader(), OverridesParser.create()
    composed: dict[tuple[str, ...], Any] = {}
    settings, fulls = [], []
    for job in jobs:
        try:
            parsed = parser.parse_overrides(job)
            plain = [(o, p) for o, p in zip(job, parsed) if _is_plain(p)]
            groups = tuple(o for o in job if o not in {o for o, _ in plain})
            if groups not in composed:
                try:
                    composed[groups] = loader.load_sweep_config(config, list(groups))
                except PLANNING_ERRORS as err:  # (one bad job must not stop the sweep's plan)
                    composed[groups] = err
            if isinstance(composed[groups], Exception):
                raise composed[groups]
            cfg = composed[groups].copy()
            for _, override in plain:
                OmegaConf.update(cfg, override.key_or_group, override.value(), merge=False)
            one = settings_of(cfg, job)
            full = {**flat(cfg), **{k: v for k, v in one.items() if "." not in k}}
        except PLANNING_ERRORS:  # (the job says why when it runs)
            one = {o.split("=", 1)[0]: o.split("=", 1)[1] for o in job if "=" in o and not o.startswith(HOW_IT_RAN)}
            full = dict(one)
        settings.append(one)
        fulls.append(full)
    keys = naming_keys(settings)
    return settings, [{k: full.get(k, ABSENT) for k in keys} for full in fulls]


def _planning_errors() -> tuple[type[BaseException], ...]:
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from rnnexp.errors import RnnexpError

    return (HydraException, OmegaConfBaseException, RnnexpError, ValueError, KeyError, TypeError)


PLANNING_ERRORS = _planning_errors()


def _is_plain(override: Any) -> bool:
    """`train.lr=0.1`: a value for a key, which changes no config group (those are composed)."""
    return (not (override.is_add() or override.is_delete() or override.is_force_add()) and "." in override.key_or_group and "/" not in override.key_or_group
            and not override.key_or_group.startswith("hydra.") and override.package is None
            and not override.is_sweep_override())


ABSENT = "-"  # a key a job's config does not have (a task.* key of another task)


def job_dirs(jobs: list[list[str]], values: list[dict[str, Any]], settings: list[dict[str, Any]],
             existing: dict[tuple[str, ...], list[str]]) -> list[str]:
    """Each job's directory: the one that already holds its overrides, else a name made of the keys
    whose values differ across the jobs (`model=gru,seed=2`; where only keys of how a job runs
    differ, `threads=2`), never one another job has."""
    from rnnexp.settings import HOW_IT_RUNS, text

    how = [k for k in HOW_IT_RUNS if len({text(s.get(k)) for s in settings}) > 1]
    values = [{**v, **{k: s.get(k, ABSENT) for k in how}} for v, s in zip(values, settings)]
    keys = [k for k in (values[0] if values else {}) if len({text(v[k]) for v in values}) > 1]
    last = [k.rsplit(".", 1)[-1] for k in keys]
    short = {k: (name if last.count(name) == 1 else k) for k, name in zip(keys, last)}
    taken = {d for dirs in existing.values() for d in dirs}
    free = {key: list(dirs) for key, dirs in existing.items()}
    out = []
    for job, value in zip(jobs, values):
        if free.get(identity(job)):
            out.append(free[identity(job)].pop(0))
            continue
        name = (",".join(f"{short[k]}={text(value[k])}" for k in keys)  # (one job: its task and model)
                or "_".join(text(value[k]) for k in ("task", "model", "experiment") if value.get(k, ABSENT) not in (ABSENT, None))
                or "job")
        name = re.sub(r"[^A-Za-z0-9_.,=+\-\[\]]+", "_", name)
        if len(name) > 150:  # (file names end at 255 bytes)
            name = f"{name[:140]}-{zlib.crc32(name.encode()):08x}"
        unique = next(candidate for n in range(1, len(jobs) + len(taken) + 2)
                      if (candidate := name if n == 1 else f"{name}-{n}") not in taken)
        taken.add(unique)
        out.append(unique)
    return out


def existing_jobs(directory: Path) -> dict[tuple[str, ...], list[str]]:
    """The job directories `directory` already holds, by their overrides: from its plan, and from
    every job directory's own record (`.hydra/overrides.yaml`: a sweep made before jobs.json named
    them)."""
    import yaml

    found: dict[tuple[str, ...], list[str]] = {}
    for job in read_plan(directory).get("jobs") or []:
        if job.get("dir") and (directory / job["dir"]).is_dir():
            found.setdefault(identity(job["overrides"]), []).append(job["dir"])
    for record in sorted(directory.glob("*/.hydra/overrides.yaml")):
        job = record.parent.parent
        if ".replaced-" in job.name or any(job.name in dirs for dirs in found.values()):
            continue
        try:
            found.setdefault(identity(yaml.safe_load(record.read_text()) or []), []).append(job.name)
        except (OSError, yaml.YAMLError):
            continue
    return found


def job_dir(*, _root_: Any) -> str:
    """`hydra.sweep.subdir: ${rnnexp_job_dir:}`: the directory the plan gives this job (its number
    and overrides; a job given twice gets two); Hydra's `NUMBER_OVERRIDES` for a sweeper that
    decides as it goes (Optuna: no plan)."""
    hydra = _root_.hydra
    mine, number = identity(raw(hydra.overrides.task)), hydra.job.num
    jobs = read_plan(Path(str(hydra.sweep.dir))).get("jobs") or []
    if isinstance(number, int) and 0 <= number < len(jobs) and jobs[number].get("dir") \
            and identity(jobs[number]["overrides"]) == mine:
        return str(jobs[number]["dir"])
    for job in jobs:
        if job.get("dir") and identity(job["overrides"]) == mine:
            return str(job["dir"])
    return f"{hydra.job.num}_{hydra.job.override_dirname}"


def check_same_sweep(directory: Path, config: DictConfig) -> None:
    """A sweep resumed into `directory` (train.resume=auto) must plan every job that is there (and
    may add more: new seeds); a plan that leaves jobs out is another sweep, not this one resumed."""
    from rnnexp.errors import RunDirError

    old, new = read_plan(directory), planned_jobs(config)
    if not old.get("jobs") or new is None:
        return
    planned = {identity(job) for job in new}
    left_out = [job["overrides"] for job in old["jobs"] if identity(job["overrides"]) not in planned]
    if left_out:
        from rnnexp.settings import RESUMABLE

        def what(job: Any) -> tuple[str, ...]:
            return tuple(o for o in identity(job) if o.split("=", 1)[0] not in RESUMABLE)

        if {what(job) for job in left_out} <= {what(job) for job in new}:
            before = {o for job in left_out for o in identity(job) if o.split("=", 1)[0] in RESUMABLE}
            now = {o for job in new for o in identity(job) if o.split("=", 1)[0] in RESUMABLE}
            changed = sorted({o.split("=", 1)[0] for o in before ^ now})
            raise RunDirError(f"{directory} holds these jobs with other {', '.join(changed) or 'settings'}; a sweep "
                              f"resumes with its own (its command: {old.get('resume')}); to train a job on, resume "
                              f"it alone: rnnexp train.resume={directory}/<job> train.epochs=N, or choose another "
                              f"hydra.sweep.dir")
        example = " ".join(o for o in left_out[0] if not o.startswith(HOW_IT_RAN))
        raise RunDirError(f"{directory} holds another sweep than this command plans ({len(left_out)} of its "
                          f"{len(old['jobs'])} jobs are not in it, e.g. {example}); resume it with its own command: "
                          f"{old.get('resume')}, or with more values (new seeds), or choose another hydra.sweep.dir")


def read_plan(directory: Path) -> dict[str, Any]:
    path = Path(directory) / PLAN
    try:
        return json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, json.JSONDecodeError):
        return {}


def mark_stopped(directory: Path, signum: int) -> None:
    """Tell the jobs of a parallel sweep, each in a process of its own, that the sweep is stopping."""
    try:
        (Path(directory) / STOP).write_text(str(signum))
    except OSError:
        pass  # a job that starts anyway is stopped by the next Ctrl-C


def clear_stop(directory: Path) -> None:
    """A sweep that (re)starts: an earlier, stopped attempt's mark no longer holds."""
    (Path(directory) / STOP).unlink(missing_ok=True)


def stop_requested_for(directory: Path) -> int:
    """The signal that stopped the sweep in `directory`, 0 if none: a job of a parallel sweep looks
    before it starts, since the pool goes on handing out jobs while the running ones save."""
    try:
        return int((Path(directory) / STOP).read_text() or signal.SIGINT)
    except (OSError, ValueError):
        return 0


def catch_stop_signals() -> None:
    """In the sweep's own process: the first Ctrl-C (or SIGTERM) is recorded, not raised, so the
    running jobs (which get it too) can save their checkpoints and report back; the sweep then
    stops with a summary. A second Ctrl-C stops at once."""

    def record(signum: int, frame: Any) -> None:
        SweepState.stop_signal = SweepState.stop_signal or signum
        if SweepState.directory:  # for parallel jobs, each in a process of its own
            mark_stopped(Path(SweepState.directory), SweepState.stop_signal)
        what = "Ctrl-C" if signum == signal.SIGINT else f"signal {signum}"
        print(f"rnnexp: stopping the sweep ({what}); running jobs save their checkpoints (Ctrl-C to stop at once)",
              file=sys.stderr)
        signal.signal(signal.SIGINT, signal.default_int_handler)

    record.records_stop = True  # a job's own handler (engine.signals) passes the signal on
    try:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, record)
    except ValueError:  # not the main thread
        pass
