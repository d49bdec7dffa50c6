"""Sweep summaries: one table for a multirun (or any outputs directory), from the results files.

    rnnexp-summary outputs/multirun/2026-11-27/14-05-00     (also written at the end of every sweep)

Reads every job's `results.json` (and its `.hydra/overrides.yaml`), so failed and diverged jobs
are listed too; Hydra skips `on_multirun_end` when a job fails, so the CLI calls this itself then.
Writes `summary.csv`, `summary.md` and `summary.png` (the final metric against the swept
parameter, one line per model; also in TensorBoard under `summary/`) into the directory, and
says where they are. On the terminal the tables fit its width (the swept values as columns, fewer
result columns when narrow, a short block per job when even that does not fit): numbers,
overrides and paths are never split (the full-width table is summary.md).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from pathlib import Path
from typing import Any, Optional

import yaml
from rich import box
from rich.console import Console
from rich.table import Table

from rnnexp.argv import hydra_quote, shell_word
from rnnexp.sweep.jobs import ABSENT, HOW_IT_RAN, read_plan
from rnnexp.sweep.stats import group_stats, notes

current_sweep_dir: Optional[str] = None  # set when a multirun starts (see hydra_callbacks)


def read_jobs(root: Path) -> list[dict[str, Any]]:
    """One row per results.json under `root` (settings, status, metrics), and one per job the
    sweep planned (jobs.json) that left no results: never started, or killed before it could say."""
    rows = read_results(root)
    plan = read_plan(root).get("jobs") or []
    done = {row["job"] for row in rows}
    done_numbers = {row["job"].split("_", 1)[0] for row in rows}  # (a plan from before jobs had names)
    for planned in plan:
        if planned.get("dir"):
            if planned["dir"] in done:
                continue
            name, started = str(planned["dir"]), (root / planned["dir"]).is_dir()
        else:
            name = str(planned["job"])
            if name in done_numbers:
                continue
            started = any(root.glob(f"{name}_*"))
        overrides = [o for o in planned["overrides"] if not o.startswith("hydra")]
        rows.append({**{key: None for key in ROW_KEYS}, "job": name, "overrides": " ".join(overrides),
                     "params": params_of(overrides),
                     "status": "no result" if started else "not started", "error": ""})
    with_settings(rows, plan)
    order = {str(job.get("dir")): job["job"] for job in plan if job.get("dir")}
    for row in rows:
        if row["job"] in order:
            row["number"] = order[row["job"]]
    return sorted(rows, key=lambda row: (order.get(row["job"], 10**9), _job_sort_key(Path(row["job"]).name)))


def with_settings(rows: list[dict[str, Any]], plan: list[dict[str, Any]]) -> None:
    """Each row's `params`: its value of every key that some run sets away from the defaults
    (rnnexp.settings: what a preset set counts), read from its results.json, or for a job that
    left none from the sweep's plan; rows of runs from before settings were kept keep their
    command-line overrides."""
    from rnnexp.settings import flat, naming_keys, text

    planned = {str(job["dir"]): job for job in plan if job.get("dir") and job.get("values") is not None}
    known: list[tuple[dict[str, Any], dict[str, Any]]] = []  # (the row, its full values)
    sets: list[dict[str, Any]] = []
    for row in rows:
        res = row.get("results") or {}
        if isinstance(res.get("settings"), dict):
            known.append((row, {**flat(res.get("config") or {}), **res["settings"]}))
            sets.append(res["settings"])
        elif row["job"] in planned:
            job = planned[row["job"]]
            known.append((row, job["values"]))
            sets.append(job.get("settings") or job["values"])
    keys = naming_keys(sets)
    for row, values in known:
        row["params"] = {k: text(values[k]) if k in values else ABSENT for k in keys}


ROW_KEYS = ("objective_name", "objective", "test_accuracy", "test_loss", "val_accuracy", "val_loss", "epochs",
            "target_epoch", "target_accuracy", "stopped_by", "train_seconds", "model")


def read_results(root: Path) -> list[dict[str, Any]]:
    rows = []
    for path in sorted(root.rglob("results.json"), key=lambda p: _job_sort_key(p.parent.name)):
        try:
            res = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as err:
            res = {"status": "unreadable", "error": f"{path.name}: {err}"}
        overrides = effective_overrides(path.parent)
        objective = res.get("objective") or {}
        final, test = res.get("final") or {}, res.get("test") or {}
        rows.append({
            "job": str(path.parent.relative_to(root)) if path.parent != root else ".",
            "overrides": " ".join(o for o in overrides or [] if not o.startswith("hydra")),
            "params": params_of(overrides or []),
            "status": res.get("status", "unknown"),
            "objective_name": objective.get("name", ""), "objective": objective.get("value"),
            "test_accuracy": test.get("test/accuracy"), "test_loss": test.get("test/loss"),
            "val_accuracy": final.get("val/accuracy"), "val_loss": final.get("val/loss"),
            "epochs": res.get("epochs_run"), "target_epoch": res.get("target_epoch"),
            "target_accuracy": res.get("target_accuracy"), "stopped_by": res.get("stopped_by"),
            "train_seconds": res.get("train_seconds"), "model": res.get("model", res.get("cell")), "error": res.get("error", ""),
            "results": res,
        })
    return rows


def params_of(overrides: list[str]) -> dict[str, str]:
    return dict(o.split("=", 1) for o in overrides if "=" in o and not o.startswith(HOW_IT_RAN))


def effective_overrides(job: Path) -> list[str]:
    """The job's overrides as it ran: its first ones (.hydra/overrides.yaml), then those its
    resumes changed (.hydra/resume-*/overrides.yaml: train.epochs and the other resumable keys)."""
    def load(path: Path) -> list[str]:
        return [str(o) for o in (yaml.safe_load(path.read_text()) or [])] if path.is_file() else []

    merged = {o.split("=", 1)[0]: o for o in load(job / ".hydra" / "overrides.yaml")}
    for resume in sorted((job / ".hydra").glob("resume-*/overrides.yaml")):
        merged.update({o.split("=", 1)[0]: o for o in load(resume) if not o.startswith(HOW_IT_RAN)})
    return list(merged.values())


def _job_sort_key(name: str) -> tuple[int, str]:
    head = name.split("_", 1)[0]
    return (int(head), name) if head.isdigit() else (10**9, name)


def seed_groups(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each configuration that was run with several seeds, with its statistics (rnnexp.sweep.stats:
    completed runs only; diverged, time-limited and partial runs said, never averaged in)."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        key = " ".join(f"{k}={v}" for k, v in sorted(row["params"].items()) if k != "train.seed")
        groups.setdefault(key, []).append(row)
    out = []
    for key, members in groups.items():
        if len(members) < 2:
            continue
        group = {"config": key or "(all)", "params": {k: v for k, v in members[0]["params"].items() if k != "train.seed"},
                 **group_stats(members)}
        group["notes"] = notes(group) or ""
        out.append(group)
    return out


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


COLUMNS = ["job", "overrides", "status", "objective", "test_accuracy", "test_loss", "val_accuracy", "val_loss",
           "epochs", "target_epoch", "train_seconds", "error"]


def write_summary(root: Path, rows: list[dict[str, Any]], groups: list[dict[str, Any]]) -> None:
    with open(root / "summary.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS + ["objective_name"], extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(_fmt(r[c]).replace("|", "/") for c in COLUMNS) + " |" for r in rows]
    if groups:
        lines += ["", f"Across seeds: {seeds_title(groups)}", "",
                  "| config | completed | mean | sd | solved (target reached, of completed + diverged) | mean target epoch | notes |",
                  "|---|---|---|---|---|---|---|"]
        lines += [f"| {g['config']} | {g['completed_of']} | {_fmt(g['mean'])} | {_fmt(g['std'])} | {_fmt(g['solved'])} | "
                  f"{_fmt(g['mean_target_epoch'], 1)} | {g['notes'].replace('|', '/')} |" for g in groups]
    (root / "summary.md").write_text("\n".join(lines) + "\n")


# The job table's result columns, most important first: (row key, header, digits). The narrower
# the terminal, the more of the last ones are left out (they stay in summary.csv/.md).
RESULT_COLUMNS = [("status", "status", 0), ("objective", "best val obj.", 4), ("test_accuracy", "test acc", 4),
                  ("val_accuracy", "final val acc", 4),
                  ("val_loss", "final val loss", 4), ("target_epoch", "target ep", 0), ("epochs", "epochs run", 0),
                  ("train_seconds", "seconds", 1)]
SEED_COLUMNS = [("completed_of", "completed", 0), ("mean", "mean", 4), ("std", "sd", 4), ("solved", "solved", 0),
                ("mean_target_epoch", "mean target ep", 1)]


def seeds_title(groups: list[dict[str, Any]]) -> str:
    """What the across-seeds numbers are."""
    metric = next((g["metric"] for g in groups if g["metric"]), "objective")
    return f"best {metric} per run; mean, sample sd of completed runs"


def varying_params(rows: list[dict[str, Any]], leave_out: tuple[str, ...] = ()) -> tuple[list[str], dict[str, str]]:
    """The override keys whose value differs between jobs (in first-seen order), and those that
    are the same in every job (with their value)."""
    keys: list[str] = []
    for row in rows:
        keys += [k for k in row["params"] if k not in keys and k not in leave_out]
    varying = [k for k in keys if len({row["params"].get(k) for row in rows}) > 1]
    same = {k: rows[0]["params"][k] for k in keys if k not in varying}
    return varying, same


def _headers(keys: list[str], short: bool) -> list[str]:
    """Column headers for override keys: `task.difficulty`, or `difficulty` where that is unique."""
    if not short:
        return list(keys)
    last = [k.rsplit(".", 1)[-1] for k in keys]
    return [name if last.count(name) == 1 else key for key, name in zip(keys, last)]


def _table(headers: list[str], lines: list[list[str]], right: set[int]) -> Table:
    """A table whose cells never wrap: a layout that does not fit is replaced, never squeezed."""
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, collapse_padding=True)
    for i, header in enumerate(headers):
        table.add_column(header, no_wrap=True, overflow="ellipsis", justify="right" if i in right else "left")
    for cells in lines:
        table.add_row(*cells)
    return table


def _width(renderable: Any) -> int:
    """The widest line `renderable` prints when nothing limits it."""
    probe = Console(width=10_000, file=io.StringIO(), record=True, color_system=None)
    probe.print(renderable)
    return max((len(line.rstrip()) for line in probe.export_text().splitlines()), default=0)


def _job_label(row: dict[str, Any], numbered: bool) -> str:
    """The job's number where every job has one (the swept values stand beside it), else its directory."""
    if not numbered:
        return row["job"]
    return str(row["number"]) if "number" in row else Path(row["job"]).name.split("_", 1)[0]


def _print_words(console: Console, words: list[str], indent: str = "", first: str = "") -> None:
    """Words packed into lines that fit the console, never split; a word wider than the console
    (a long path) gets a line of its own, printed whole (the terminal folds it; copying keeps it)."""
    line = first
    for word in words:
        candidate = f"{line} {word}" if line.strip() else f"{line}{word}"
        if len(candidate) <= console.width or not line.strip():
            line = candidate
        else:
            console.print(line, soft_wrap=True, markup=False, highlight=False)
            line = f"{indent}{word}"
    if line.strip():
        console.print(line, soft_wrap=True, markup=False, highlight=False)


def _job_table(rows: list[dict[str, Any]], varying: list[str], width: int) -> Optional[Table]:
    """The widest job table that fits `width`: all result columns, then fewer; None if even the
    job, its parameters, status and objective do not fit."""
    numbered = all("number" in r or (Path(r["job"]).name.split("_", 1)[0].isdigit() and "/" not in r["job"])
                   for r in rows)
    for keep in range(len(RESULT_COLUMNS), 1, -1):
        for short in (False, True):
            results = RESULT_COLUMNS[:keep]
            headers = ["job"] + _headers(varying, short) + [header for _, header, _ in results]
            first_result = 1 + len(varying)
            right = {0} | set(range(first_result + 1, len(headers)))
            lines = [[_job_label(r, numbered)] + [r["params"].get(k, "-") for k in varying]
                     + [_fmt(r[key], digits) if digits else _fmt(r[key]) for key, _, digits in results] for r in rows]
            table = _table(headers, lines, right)
            if _width(table) <= width:
                for i, r in enumerate(rows):
                    if r["status"] != "completed":
                        table.rows[i].style = "red"
                return table
    return None


def _seed_table(groups: list[dict[str, Any]], varying: list[str], width: int) -> Optional[Table]:
    for keep in range(len(SEED_COLUMNS), 2, -1):
        for short in (False, True):
            columns = SEED_COLUMNS[:keep]
            headers = _headers(varying, short) + [header for _, header, _ in columns]
            lines = [[g["params"].get(k, "-") for k in varying]
                     + [_fmt(g[key], digits) if digits else _fmt(g[key]) for key, _, digits in columns] for g in groups]
            table = _table(headers, lines, set(range(len(varying), len(headers))))
            if _width(table) <= width:
                return table
    return None


def print_summary(rows: list[dict[str, Any]], groups: list[dict[str, Any]], title: str, console: Console,
                  root: Optional[Path] = None) -> None:
    """The jobs and the across-seeds means, readable at any width: one table where it fits (fewer
    result columns when narrow), else one short block per job. Numbers, overrides and paths are
    never split (summary.csv and summary.md keep every column)."""
    _print_words(console, title.split(" "))
    varying, same = varying_params(rows)
    if same:
        _print_words(console, [f"{k}={v}" for k, v in same.items()], indent="  ", first="every job:")
    table = _job_table(rows, varying, console.width)
    if table is not None:
        console.print(table)
    else:  # too narrow for a table: a block per job
        for row in rows:
            style = "" if row["status"] == "completed" else " (!)"
            _print_words(console, [f"{k}={row['params'].get(k, '-')}" for k in varying], indent="    ",
                         first=f"job {row['job']}{style}:")
            _print_words(console, [f"{header} {_fmt(row[key], digits) if digits else _fmt(row[key])}"
                                   for key, header, digits in RESULT_COLUMNS if row[key] is not None], indent="    ",
                         first="   ")
    for row in rows:
        if row["status"] != "completed" and row["error"]:
            _print_words(console, f"{row['error']}".split(" "), indent="    ",
                         first=f"job {row['job']} {row['status']}:")
        if row["status"] == "interrupted" and root is not None:
            if (row.get("results") or {}).get("packed_with"):  # (a packed seed resumes with its group)
                console.print(f"    resume (with its packed group): {row['results'].get('resume')}", soft_wrap=True,
                              markup=False, highlight=False)
                continue
            resume = shell_word(f"train.resume={hydra_quote(str(Path(root).resolve() / row['job']), single=True)}")
            console.print(f"    resume: rnnexp {resume}", soft_wrap=True, markup=False, highlight=False)
    if groups:
        seed_keys, _ = varying_params(groups, leave_out=("train.seed",))
        _print_words(console, f"across seeds: {seeds_title(groups)}".split(" "), indent="  ")
        seeds = _seed_table(groups, seed_keys, console.width)
        if seeds is not None:
            console.print(seeds)
        else:
            for g in groups:
                _print_words(console, g["config"].split(" ") + [
                    f"completed {g['completed_of']}", f"mean {_fmt(g['mean'])}", f"sd {_fmt(g['std'])}",
                    f"solved {_fmt(g['solved'])}", f"mean target ep {_fmt(g['mean_target_epoch'], 1)}"],
                    indent="    ", first="  ")
        for g in groups:
            if g["notes"]:
                name = " ".join(f"{k}={g['params'].get(k, '-')}" for k in seed_keys) or g["config"]
                _print_words(console, g["notes"].split(" "), indent="    ", first=f"  {name}:")


def print_written(root: Path, console: Console, view: Optional[str] = None) -> None:
    """Where the summary files are: one line, the path whole (the terminal folds it, copying keeps it)."""
    wanted = (("summary.png", "summary.svg", "summary.md", "summary.csv", "answer.json") if view is None else
              (f"summary-{view}.png", f"summary-{view}.svg", f"answer-{view}.md", f"answer-{view}.json"))
    names = [name for name in wanted if (root / name).is_file()]
    if names:
        where = Path(root).resolve()
        console.print(f"summary written: {where / names[0]}" + "".join(f", {name}" for name in names[1:]) +
                      " (same folder)" * (len(names) > 1), soft_wrap=True, markup=False, highlight=False)


def summarise(root: Path, console: Optional[Console] = None, metric: Optional[str] = None,
              by: Optional[list[str]] = None) -> list[dict[str, Any]]:
    """The jobs and the study's answer (rnnexp.sweep.answer: `metric` on held-out data by group,
    each group against the best) on the console; summary.csv/.md/.png/.svg and answer.json in
    `root`; returns the rows."""
    from rnnexp.report.console import make_console
    from rnnexp.sweep.answer import study_answer
    from rnnexp.sweep.answer_table import answer_markdown, print_answer, write_answer
    from rnnexp.sweep.plot import plot_sweep

    root = Path(root)
    rows = read_jobs(root)
    groups = seed_groups(rows)
    console = console or make_console()
    if not rows:
        console.print(f"no results.json under {root}")
        return rows
    answer = study_answer(rows, metric, by)
    answered = len(answer.groups) > 1 or any(len(g.values) > 1 for g in answer.groups)
    view = view_name(metric, answer.by if by is not None else None)
    if view is None:  # the sweep's own answer
        write_summary(root, rows, groups)
        if answered:
            write_answer(root, answer)
            with open(root / "summary.md", "a") as handle:
                handle.write("\n" + answer_markdown(answer))
        plot_sweep(root, rows, answer)
    else:  # another question of the same runs: files of its own, the sweep's own answer kept
        if answered:
            write_answer(root, answer, f"answer-{view}.json")
            (root / f"answer-{view}.md").write_text(answer_markdown(answer))
        plot_sweep(root, rows, answer, stem=f"summary-{view}")
    # The answer on held-out data stands in for the validation table across seeds (summary.md keeps both).
    print_summary(rows, [] if answered else groups, f"{count_line(rows)}: {Path(root).resolve()}", console, root)
    if answered:
        print_answer(answer, console)
    print_written(root, console, view)
    return rows


def view_name(metric: Optional[str], by: Optional[list[str]]) -> Optional[str]:
    """The files of an answer to another question (`--metric`, `--by`): `answer-test_loss-by_model.json`."""
    if metric is None and by is None:
        return None
    parts = ([metric.replace("/", "_")] if metric else []) + (["by_" + "+".join(by)] if by else [])
    return "-".join(parts)


def count_line(rows: list[dict[str, Any]]) -> str:
    """"24 jobs: 20 completed, 2 interrupted, 2 not started"."""
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    return f"{len(rows)} jobs: " + ", ".join(f"{n} {status}" for status, n in counts.items())


def get_ready() -> None:
    """Import what the summary draws and computes with (matplotlib, scipy: ~1 s), and draw once (its
    fonts): a sweep's process does it while its helpers train the last units, not after."""
    import io

    from rnnexp.sweep.answer import t_interval
    from rnnexp.sweep.plot import plt

    t_interval([0.0, 1.0])  # (scipy's t quantile)
    fig, ax = plt.subplots(figsize=(2, 1))
    ax.plot([0, 1], [0, 1], marker="o", label="warm-up")
    ax.legend()
    fig.savefig(io.BytesIO(), format="png")
    plt.close(fig)


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
    parser.add_argument("directory", type=Path, help="a sweep directory (e.g. outputs/multirun/2026-11-27/14-05-00) or outputs/")
    parser.add_argument("--metric", help="what the answer compares: test/NAME (default: the task's objective on "
                        "the test set, e.g. test/accuracy) or val/NAME (validation at the selected epoch)")
    parser.add_argument("--by", action="append", metavar="KEY", help="group the runs by this key (repeat for "
                        "several; default: every swept key but train.seed), e.g. --by model")
    args = parser.parse_args(argv)
    if not args.directory.is_dir():
        print(f"rnnexp-summary: error: {args.directory} is not a directory; give a sweep or outputs directory",
              file=sys.stderr)
        sys.exit(2)
    if args.metric is not None and (args.metric.split("/", 1)[0] not in ("test", "val") or "/" not in args.metric):
        print(f"rnnexp-summary: error: --metric {args.metric} is not a metric of held-out data; use test/NAME "
              f"or val/NAME, e.g. --metric test/accuracy", file=sys.stderr)
        sys.exit(2)
    by = [key for value in args.by for key in value.split(",")] if args.by else None
    from rnnexp.errors import ConfigError

    try:
        rows = summarise(args.directory, metric=args.metric, by=by)
    except ConfigError as err:
        print(f"rnnexp-summary: error: {err}", file=sys.stderr)
        sys.exit(2)
    if not rows:
        sys.exit(1)
