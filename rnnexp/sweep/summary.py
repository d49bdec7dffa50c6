"""Sweep summaries: one table for a multirun (or any outputs directory), from the results files.

    rnnexp-summary outputs/multirun/<date>/<time>     (also written at the end of every sweep)

Reads every job's `results.json` (and its `.hydra/overrides.yaml`), so failed and diverged jobs
are listed too; Hydra skips `on_multirun_end` when a job fails, so the CLI calls this itself then.
Writes `summary.csv`, `summary.md` and `summary.png` (the final metric against the swept
parameter, one line per model; also in TensorBoard under `summary/`) into the directory.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
from pathlib import Path
from typing import Any, Optional

import yaml
from rich.console import Console
from rich.table import Table

current_sweep_dir: Optional[str] = None  # set when a multirun starts (see hydra_callbacks)


def read_jobs(root: Path) -> list[dict[str, Any]]:
    """One row per results.json under `root`: overrides, status, metrics."""
    rows = []
    for path in sorted(root.rglob("results.json"), key=lambda p: _job_sort_key(p.parent.name)):
        try:
            res = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as err:
            res = {"status": "unreadable", "error": f"{path.name}: {err}"}
        overrides_file = path.parent / ".hydra" / "overrides.yaml"
        overrides = yaml.safe_load(overrides_file.read_text()) if overrides_file.is_file() else []
        objective = res.get("objective") or {}
        final = res.get("final") or {}
        rows.append({
            "job": str(path.parent.relative_to(root)) if path.parent != root else ".",
            "overrides": " ".join(o for o in overrides or [] if not o.startswith("hydra")),
            "params": dict(o.split("=", 1) for o in overrides or [] if "=" in o and not o.startswith("hydra")),
            "status": res.get("status", "unknown"),
            "objective_name": objective.get("name", ""), "objective": objective.get("value"),
            "val_accuracy": final.get("val/accuracy"), "val_loss": final.get("val/loss"),
            "epochs": res.get("epochs_run"), "target_epoch": res.get("target_epoch"),
            "train_seconds": res.get("train_seconds"), "cell": res.get("cell"), "error": res.get("error", ""),
        })
    return rows


def _job_sort_key(name: str) -> tuple[int, str]:
    head = name.split("_", 1)[0]
    return (int(head), name) if head.isdigit() else (10**9, name)


def seed_groups(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean and spread across seeds for each configuration that was run with several seeds."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        key = " ".join(f"{k}={v}" for k, v in sorted(row["params"].items()) if k != "train.seed")
        groups.setdefault(key, []).append(row)
    out = []
    for key, members in groups.items():
        if len(members) < 2:
            continue
        values = [m["objective"] for m in members if m["objective"] is not None]
        reached = [m["target_epoch"] for m in members if m["target_epoch"] is not None]
        out.append({"config": key or "(all)", "runs": len(members),
                    "mean": statistics.fmean(values) if values else None,
                    "std": statistics.stdev(values) if len(values) > 1 else 0.0 if values else None,
                    "reached": f"{len(reached)}/{len(members)}",
                    "mean_target_epoch": statistics.fmean(reached) if reached else None})
    return out


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


COLUMNS = ["job", "overrides", "status", "objective", "val_accuracy", "val_loss", "epochs", "target_epoch",
           "train_seconds", "error"]


def write_summary(root: Path, rows: list[dict[str, Any]], groups: list[dict[str, Any]]) -> None:
    with open(root / "summary.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS + ["objective_name"], extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(_fmt(r[c]).replace("|", "/") for c in COLUMNS) + " |" for r in rows]
    if groups:
        lines += ["", "Across seeds:", "", "| config | runs | mean | std | reached target | mean target epoch |",
                  "|---|---|---|---|---|---|"]
        lines += [f"| {g['config']} | {g['runs']} | {_fmt(g['mean'])} | {_fmt(g['std'])} | {g['reached']} | "
                  f"{_fmt(g['mean_target_epoch'], 1)} |" for g in groups]
    (root / "summary.md").write_text("\n".join(lines) + "\n")


def print_summary(rows: list[dict[str, Any]], groups: list[dict[str, Any]], title: str, console: Console) -> None:
    table = Table(title=title, title_justify="left")
    for column in COLUMNS:
        table.add_column(column, overflow="fold")
    for row in rows:
        style = None if row["status"] == "completed" else "red"
        cells = [_fmt(row[c]) for c in COLUMNS]
        cells[0] = row["job"].split("_", 1)[0]  # the job number; the overrides column says the rest
        table.add_row(*cells, style=style)
    console.print(table)
    if groups:
        seeds = Table(title="across seeds", title_justify="left")
        for column in ("config", "runs", "mean", "std", "reached", "mean target epoch"):
            seeds.add_column(column)
        for g in groups:
            seeds.add_row(g["config"], str(g["runs"]), _fmt(g["mean"]), _fmt(g["std"]), g["reached"],
                          _fmt(g["mean_target_epoch"], 1))
        console.print(seeds)


def summarise(root: Path, console: Optional[Console] = None) -> list[dict[str, Any]]:
    """Table on the console + summary.csv/.md/.png in `root`; returns the rows."""
    from rnnexp.report.console import make_console
    from rnnexp.sweep.plot import plot_sweep

    root = Path(root)
    rows = read_jobs(root)
    groups = seed_groups(rows)
    console = console or make_console()
    if not rows:
        console.print(f"no results.json under {root}")
        return rows
    write_summary(root, rows, groups)
    plot_sweep(root, rows)
    failed = sum(r["status"] != "completed" for r in rows)
    print_summary(rows, groups, f"{root}: {len(rows)} jobs, {failed} not completed", console)
    return rows


def summarise_after_sweep(sweep_dir: Any) -> list[dict[str, Any]]:
    try:
        return summarise(Path(str(sweep_dir)))
    except Exception as err:  # a summary must never hide the sweep's own result
        print(f"rnnexp: could not write the sweep summary: {type(err).__name__}: {err}", file=sys.stderr)
        return []


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(prog="rnnexp-summary", description="Summarise a sweep (or any outputs "
                                     "directory) from its jobs' results.json files: a table, summary.csv, "
                                     "summary.md and summary.png.")
    parser.add_argument("directory", type=Path, help="a sweep directory (outputs/multirun/<date>/<time>) or outputs/")
    args = parser.parse_args(argv)
    if not args.directory.is_dir():
        print(f"rnnexp-summary: error: {args.directory} is not a directory; give a sweep or outputs directory",
              file=sys.stderr)
        sys.exit(2)
    rows = summarise(args.directory)
    if not rows:
        sys.exit(1)
