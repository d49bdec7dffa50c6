"""The answer of a study: runs that differ only in their seed form a group; each group's score on
held-out data with a 95% interval; and each group against the best one, paired by seed.

    rnnexp -m task=qrsu task.difficulty=moderate model=rnn,lstm,gru train.seed=1,2,3
    rnnexp-summary outputs/multirun/2026-12-07/15-20-00 --metric test/loss --by model

The metric is the task's objective on the **test** set (`test/accuracy`, `test/loss`: the best
model by validation, scored once) unless `--metric` names another: `test/<name>`, or
`val/<name>` (the validation value at the epoch that selected the best model). Groups are made
of every swept key but `train.seed` (or the `--by` keys). The statistics follow rnnexp.sweep.stats:
completed runs only, diverged ones counted as not solved, the rest listed.

* mean ± sample sd, and a 95% Student-t interval for the mean, clipped to the metric's range
  (accuracy [0, 1], losses >= 0) and marked when clipped; with fewer than 5 runs the interval is
  wide and says so;
* the comparison: the same seed trains on the same data (and starts from weights drawn from the
  same stream), and every group is tested on one test set, so a group is compared with the best
  one by the differences of their paired seeds: the mean difference and its 95% t interval;
  "not resolved with n seeds" when the interval spans 0.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import Any, Optional

from rnnexp.sweep.stats import COMPLETED, DIVERGED, is_time_limited

IGNORED = ("train.seed",)  # (a preset swept with others is a key like any: constant ones are no key)
WIDE = 5  # below this many runs an interval is wide and says so
RANGES = {"accuracy": (0.0, 1.0), "exact_match": (0.0, 1.0), "forced_accuracy": (0.0, 1.0), "loss": (0.0, math.inf),
          "bpc": (0.0, math.inf), "perplexity": (1.0, math.inf)}


def t_interval(values: list[float], bounds: tuple[float, float] = (-math.inf, math.inf)) -> Optional[tuple[float, float, bool]]:
    """The 95% Student-t interval of the mean of `values` (None for fewer than 2), clipped to
    `bounds`, and whether it was clipped."""
    if len(values) < 2:
        return None
    from scipy.special import stdtrit  # (scipy.stats.t.ppf is this function; importing scipy.stats costs 0.4 s more)

    mean, sd = statistics.fmean(values), statistics.stdev(values)
    half = stdtrit(len(values) - 1, 0.975) * sd / math.sqrt(len(values))
    low, high = max(bounds[0], mean - half), min(bounds[1], mean + half)
    return low, high, (low, high) != (mean - half, mean + half)


@dataclass
class Group:
    key: dict[str, str]                      # the swept values it is made of
    values: list[tuple[int, float]]          # (seed, the metric) of each completed run
    runs: int = 0
    diverged: int = 0
    solved: Optional[str] = None             # "k of n" (completed + diverged), where runs have a target
    parameters: list[int] = field(default_factory=list)
    epochs_to_target: Optional[float] = None  # median over the runs that reached it
    train_seconds: Optional[float] = None     # mean over completed runs
    time_limited: int = 0
    partial: list[str] = field(default_factory=list)
    derived: dict[str, str] = field(default_factory=dict)  # what comes with the key (a preset's per-cell init)

    @property
    def label(self) -> str:
        return " ".join(f"{k.rsplit('.', 1)[-1]}={v}" for k, v in self.key.items()) or "all runs"

    @property
    def numbers(self) -> list[float]:
        return [value for _, value in self.values]

    @property
    def by_seed(self) -> dict[int, float]:
        """The metric per seed (the mean of a seed's runs where a group holds several: --by)."""
        seeds: dict[int, list[float]] = {}
        for seed, value in self.values:
            seeds.setdefault(seed, []).append(value)
        return {seed: statistics.fmean(values) for seed, values in seeds.items()}

    @property
    def mean(self) -> Optional[float]:
        return statistics.fmean(self.numbers) if self.values else None

    @property
    def sd(self) -> Optional[float]:
        return statistics.stdev(self.numbers) if len(self.values) > 1 else None


@dataclass
class Comparison:
    group: str
    best: str
    pairs: int
    difference: Optional[float]              # group - best, mean over paired seeds
    interval: Optional[tuple[float, float]]

    @property
    def verdict(self) -> str:
        if self.interval is None:
            return f"not resolved: {self.pairs} paired seed{'s' * (self.pairs != 1)} (need 2 or more)"
        low, high = self.interval
        if low == high == 0.0:
            return "the same on every paired seed"
        if low <= 0.0 <= high:
            return f"not resolved with {self.pairs} seeds (the interval spans 0)"
        return f"{self.best} better" if self.difference is not None and self._best_is_better() else f"{self.group} better"

    def _best_is_better(self) -> bool:
        return self.sign * (self.difference or 0.0) < 0

    sign: int = 1  # +1: larger is better (accuracy), -1: smaller is better (losses)


@dataclass
class Answer:
    metric: str
    direction: str                            # "max" or "min"
    what: str                                 # says which numbers these are
    groups: list[Group]
    by: list[str]
    baseline: Optional[float] = None
    best: Optional[str] = None
    comparisons: list[Comparison] = field(default_factory=list)

    def interval(self, group: Group) -> Optional[tuple[float, float, bool]]:
        return t_interval(group.numbers, RANGES.get(self.metric.rsplit("/", 1)[-1], (-math.inf, math.inf)))


def metric_value(results: dict[str, Any], metric: str) -> Optional[float]:
    split = metric.split("/", 1)[0]
    if split == "test":
        return (results.get("test") or {}).get(metric)
    if split == "val":
        return (results.get("best") or {}).get(metric)
    return None


def default_metric(rows: list[dict[str, Any]]) -> tuple[str, str]:
    """The task's objective on the test set, and its direction."""
    for row in rows:
        objective = (row.get("results") or {}).get("objective") or {}
        if objective.get("name"):
            return "test/" + objective["name"].split("/", 1)[1], objective.get("direction", "max")
    return "test/accuracy", "max"


def study_answer(rows: list[dict[str, Any]], metric: Optional[str] = None, by: Optional[list[str]] = None) -> Answer:
    """The answer of the runs in `rows` (rows of `summary.read_jobs`, with their results)."""
    objective, direction = default_metric(rows)
    if metric is not None and rows and not any(metric_value(r.get("results") or {}, metric) is not None for r in rows):
        from rnnexp.errors import ConfigError

        known = sorted({k for r in rows for part in ("test", "best") for k in ((r.get("results") or {}).get(part) or {})
                        if k.startswith(("test/", "val/"))})
        raise ConfigError(f"--metric {metric}: no run has it; these runs have {', '.join(known) or 'no metrics'}")
    if metric is None:
        metric = objective
    elif metric.split("/", 1)[-1] != objective.split("/", 1)[-1]:
        direction = "max" if metric.endswith("accuracy") else "min"
    keys = grouping_keys(rows, by) if by is not None else swept_keys(rows)
    grouped: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in rows:
        grouped.setdefault(tuple(row["params"].get(k, "-") for k in keys), []).append(row)
    groups = [_group(dict(zip(keys, values)), members, metric) for values, members in grouped.items()]
    for group, members in zip(groups, grouped.values()):
        group.derived = derived(members, keys, rows)
    baseline = next((b for row in rows if (b := ((row.get("results") or {}).get("baseline") or {})
                                            .get(metric.split("/", 1)[-1])) is not None), None)
    what = (f"{metric} ({'the test set, best model by validation' if metric.startswith('test/') else 'validation, at the epoch that selected the best model'}) "
            f"per run; mean ± sd of completed runs, 95% t interval")
    answer = Answer(metric, direction, what, groups, keys, baseline)
    scored = [g for g in groups if g.values]
    if len(scored) > 1:
        sign = 1 if direction == "max" else -1
        best = max(scored, key=lambda g: sign * (g.mean or 0.0))
        answer.best = best.label
        low, high = RANGES.get(metric.rsplit("/", 1)[-1], (-math.inf, math.inf))
        within = (low - high, high - low)  # (a difference of two values in [low, high])
        answer.comparisons = [_compare(g, best, sign, within) for g in scored if g is not best]
    return answer


def grouping_keys(rows: list[dict[str, Any]], by: list[str]) -> list[str]:
    """`--by` keys as the runs know them: a full name (`train.seed`), or its last part where that
    is unique (`seed`); a key no run changed is read from each run's config (`model.hidden_size`
    at its default), one no run has at all is refused, naming those they have."""
    from rnnexp.errors import ConfigError
    from rnnexp.settings import flat, text

    known = list(dict.fromkeys(k for row in rows for k in row["params"]))
    configs = [flat((row.get("results") or {}).get("config") or {}) for row in rows]
    everything = list(dict.fromkeys([*known, *(k for config in configs for k in config)]))
    keys = []
    for key in by:
        if key not in everything:
            matches = [k for k in everything if k.rsplit(".", 1)[-1] == key]
            if len(matches) != 1:
                differ = [k for k in known if len({repr(row["params"].get(k)) for row in rows}) > 1]
                hint = f"it is one of {', '.join(matches)}" if matches else f"these runs differ in {', '.join(differ) or 'nothing'}"
                raise ConfigError(f"--by {key}: no run has this key; {hint} (any task.*, model.* or train.* key works)")
            key = matches[0]
        keys.append(key)
        for row, config in zip(rows, configs):
            if key not in row["params"] and key in config:
                row["params"][key] = text(config[key])
    return keys


def swept_keys(rows: list[dict[str, Any]]) -> list[str]:
    """The keys whose values differ between runs (but the seed), less those that follow from the
    keys before them: a preset's per-cell settings (experiment=long_lags gives each cell its own
    init, size and learning rate) go with `model` and make no groups, axes or labels of their own
    (`derived` has them)."""
    keys: list[str] = []
    for row in rows:
        keys += [k for k in row["params"] if k not in keys and k not in IGNORED]
    typed = {o.split("=", 1)[0].lstrip("+~") for row in rows for o in str(row.get("overrides") or "").split()}
    kept: list[str] = []
    for key in (k for k in keys if len({row["params"].get(k) for row in rows}) > 1):
        # (only what no command line set can come with another key: a swept or searched key, an
        # Optuna trial's, is a key of its own even where each group happens to have one value)
        if not kept or key in typed or not _follows(rows, kept, key):
            kept.append(key)
    return kept


def _follows(rows: list[dict[str, Any]], keys: list[str], key: str) -> bool:
    """Whether `key`'s value is the same in every run that has the same values of `keys`."""
    seen: dict[tuple[str, ...], str] = {}
    for row in rows:
        given = tuple(row["params"].get(k, "-") for k in keys)
        if seen.setdefault(given, row["params"].get(key, "-")) != row["params"].get(key, "-"):
            return False
    return True


def derived(members: list[dict[str, Any]], keys: list[str], rows: list[dict[str, Any]]) -> dict[str, str]:
    """The values a group's runs share of the keys that differ between groups but make none."""
    varying = [k for k in dict.fromkeys(k for row in rows for k in row["params"])
               if k not in keys and k not in IGNORED and len({row["params"].get(k) for row in rows}) > 1]
    return {k: members[0]["params"].get(k, "-") for k in varying
            if len({m["params"].get(k, "-") for m in members}) == 1}


def _group(key: dict[str, str], members: list[dict[str, Any]], metric: str) -> Group:
    completed = [m for m in members if m["status"] == COMPLETED]
    diverged = [m for m in members if m["status"] == DIVERGED]
    values, unusable = [], []
    for m in completed:
        value = metric_value(m.get("results") or {}, metric)
        if value is None:
            unusable.append(f"{m['job']} (no {metric})")
        elif not math.isfinite(float(value)):
            unusable.append(f"{m['job']} ({metric} = {value})")
        else:
            values.append((_seed(m), float(value)))
    has_target = any(m.get("target_accuracy") is not None for m in completed + diverged)
    reached = [m["target_epoch"] for m in completed if m["target_epoch"] is not None]
    seconds = [m["train_seconds"] for m in completed if m.get("train_seconds") is not None]
    return Group(key, values, runs=len(members), diverged=len(diverged),
                 solved=f"{len(reached)} of {len(completed) + len(diverged)}" if has_target else None,
                 parameters=sorted({p for m in completed if (p := (m.get("results") or {}).get("parameters"))}),
                 epochs_to_target=statistics.median(reached) if reached else None,
                 train_seconds=statistics.fmean(seconds) if seconds else None,
                 time_limited=sum(is_time_limited(m) for m in completed),
                 partial=[f"{m['job']} ({m['status']})" for m in members if m["status"] not in (COMPLETED, DIVERGED)]
                 + unusable)


def _seed(row: dict[str, Any]) -> int:
    seed = row["params"].get("train.seed")
    if seed is None:
        seed = (((row.get("results") or {}).get("config") or {}).get("train") or {}).get("seed", 0)
    return int(seed)


def _compare(group: Group, best: Group, sign: int,
             bounds: tuple[float, float] = (-math.inf, math.inf)) -> Comparison:
    """`group` against `best`, paired by seed; the interval clipped to what a difference can be
    (of two accuracies: [-1, 1])."""
    mine, theirs = group.by_seed, best.by_seed
    seeds = sorted(set(mine) & set(theirs))
    differences = [mine[s] - theirs[s] for s in seeds]
    interval = t_interval(differences, bounds)
    return Comparison(group.label, best.label, len(seeds), statistics.fmean(differences) if differences else None,
                      interval[:2] if interval else None, sign=sign)
