"""The study's answer (rnnexp.sweep.answer) on the console, in summary.md and in answer.json."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

from rich.console import Console

from rnnexp.sweep.answer import Answer, Group, WIDE

HEADERS = ["runs", "mean ± sd", "95% interval", "each seed", "solved", "parameters", "median ep. to target",
           "train s"]


def _num(value: Optional[float], digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def interval_text(answer: Answer, group: Group) -> str:
    interval = answer.interval(group)
    if interval is None:
        return "- (1 run)" if group.values else "-"
    low, high, clipped = interval
    n = len(group.values)
    if low == high:  # (every run the same value: no spread to judge by, not a certain answer)
        return f"[{low:.4f}, {high:.4f}] (all {n} runs equal)"
    marks = [m for m, on in (("clipped", clipped), (f"wide: {n} runs", n < WIDE)) if on]
    return f"[{low:.4f}, {high:.4f}]" + (f" ({'; '.join(marks)})" if marks else "")


def cells(answer: Answer, group: Group) -> list[str]:
    completed = f"{len(group.values)} of {group.runs}" + (f", {group.diverged} diverged" if group.diverged else "")
    spread = f"{_num(group.mean)} ± {_num(group.sd)}" if group.sd is not None else _num(group.mean)
    seeds = " ".join(f"{seed}:{value:.3f}" for seed, value in sorted(group.values)) or "-"
    params = "-" if not group.parameters else (f"{group.parameters[0]:,}" if len(group.parameters) == 1
                                                else f"{group.parameters[0]:,}-{group.parameters[-1]:,}")
    return [completed, spread, interval_text(answer, group), seeds, group.solved or "-", params,
            _num(group.epochs_to_target, 1), _num(group.train_seconds, 1)]


def comparison_lines(answer: Answer) -> list[str]:
    if not answer.comparisons:
        return []
    lines = [f"against the best ({answer.best}), paired by seed, difference of {answer.metric} (group - best):"]
    for c in answer.comparisons:
        diff = "-" if c.difference is None else f"{c.difference:+.4f}"
        interval = "" if c.interval is None else f" [{c.interval[0]:+.4f}, {c.interval[1]:+.4f}]"
        lines.append(f"  {c.group}: {diff}{interval} over {c.pairs} seeds: {c.verdict}")
    return lines


def derived_lines(answer: Answer) -> list[str]:
    """What comes with each group's key (a preset's per-cell settings): "model=rnn: init=identity ..."."""
    return [f"{g.label} comes with " + " ".join(f"{k}={v}" for k, v in g.derived.items())
            for g in answer.groups if g.derived]


def notes(group: Group) -> list[str]:
    out = []
    if group.time_limited:
        out.append(f"{group.time_limited} time-limited")
    if group.partial:
        out.append("not averaged: " + ", ".join(group.partial))
    return out


def print_answer(answer: Answer, console: Console) -> None:
    from rnnexp.sweep.summary import _print_words, _table, _width

    _print_words(console, f"answer: {answer.what}".split(" "), indent="  ")
    headers = [k for k in answer.by] + HEADERS
    lines = [[g.key.get(k, "-") for k in answer.by] + cells(answer, g) for g in answer.groups]
    table = _table(headers, lines, set(range(len(answer.by) + 1, len(headers))))
    if _width(table) <= console.width:
        console.print(table)
    else:  # too narrow: one block per group
        for g, line in zip(answer.groups, lines):
            _print_words(console, [f"{h}: {v}" for h, v in zip(HEADERS, line[len(answer.by):])], indent="    ",
                         first=f"  {g.label}:")
    if answer.baseline is not None:
        console.print(f"  baseline (a model that learned nothing): {answer.metric} {answer.baseline:.4f}", markup=False)
    for line in derived_lines(answer):
        _print_words(console, line.split(" "), indent="    ", first="  ")
    for g in answer.groups:
        if notes(g):
            _print_words(console, "; ".join(notes(g)).split(" "), indent="    ", first=f"  {g.label}:")
    for line in comparison_lines(answer):
        _print_words(console, line.split(), indent="      ", first="  " * line.startswith("  "))


def answer_markdown(answer: Answer) -> str:
    headers = [k for k in answer.by] + HEADERS
    lines = [f"Answer: {answer.what}", "", "| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(c.replace("|", "/") for c in [g.key.get(k, "-") for k in answer.by] + cells(answer, g))
              + " |" for g in answer.groups]
    if answer.baseline is not None:
        lines += ["", f"Baseline (a model that learned nothing): {answer.metric} {answer.baseline:.4f}"]
    if derived_lines(answer):
        lines += [""] + [f"- {line}" for line in derived_lines(answer)]
    lines += [""] + comparison_lines(answer) if answer.comparisons else []
    return "\n".join(lines) + "\n"


def write_answer(root: Path, answer: Answer, name: str = "answer.json") -> None:
    """answer.json: the numbers of the answer, to read back."""
    groups = []
    for g in answer.groups:
        interval = answer.interval(g)
        groups.append({"group": g.key, "values": [{"seed": s, "value": v} for s, v in sorted(g.values)], "runs": g.runs,
                       "completed": len(g.values), "diverged": g.diverged, "mean": g.mean, "sd": g.sd,
                       "interval95": list(interval[:2]) if interval else None,
                       "interval_clipped": bool(interval and interval[2]), "solved": g.solved,
                       "parameters": g.parameters, "median_epochs_to_target": g.epochs_to_target,
                       "mean_train_seconds": g.train_seconds, "time_limited": g.time_limited, "partial": g.partial,
                       "comes_with": g.derived})
    data: dict[str, Any] = {"metric": answer.metric, "direction": answer.direction, "what": answer.what,
                            "by": answer.by, "baseline": answer.baseline, "best": answer.best, "groups": groups,
                            "comparisons": [{"group": c.group, "best": c.best, "pairs": c.pairs,
                                             "difference": c.difference, "interval95": c.interval,
                                             "verdict": c.verdict} for c in answer.comparisons]}
    (root / name).write_text(json.dumps(data, indent=1))
