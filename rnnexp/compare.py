"""`rnnexp-compare`: several finished runs of one task in one picture, the same example through each.

    rnnexp-compare RUN_A RUN_B RUN_C what=gradients             (the lecture's point in one image)
    rnnexp-compare run=RUN_A run=RUN_B what=curves
    rnnexp-compare RUN_A RUN_B what=gates example=BaXbcYdE out=gates.png

`what=gradients` (the default): |d loss / d h_t| of each run's best model on one example (the
first run's validation example, or `example=` in the task's alphabet) against the steps before the
read-out, on a log axis: e.g. the ReLU RNN, the IRNN and the LSTM on QRSU hard. `what=curves`:
each run's validation objective against epochs. `what=gates`: the mean of each gate of the last
layer over the example (LSTM, GRU; a run without gates is named in the title). Runs of different
tasks are refused, in one line. Writes `out` (default: compare_<what>.png here) and prints it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Optional

from rnnexp.errors import ConfigError

WHAT = ("gradients", "curves", "gates")
KEYS = ("run", "what", "example", "out")


def parse(argv: list[str]) -> dict[str, Any]:
    args: dict[str, Any] = {"runs": []}
    for word in argv:
        key, sep, value = word.partition("=")
        if Path(word).expanduser().is_dir() and key not in KEYS:
            args["runs"].append(word)
        elif key == "run" and sep:
            args["runs"].append(value)
        elif key in KEYS and sep:
            args[key] = value
        else:
            raise ConfigError(f"{word!r} is not an argument of rnnexp-compare; use RUN_DIR... [what={'|'.join(WHAT)}] "
                              f"[example=TEXT] [out=FILE.png]")
    if len(args["runs"]) < 2:
        raise ConfigError("rnnexp-compare needs two or more run directories (with best.pt), e.g. "
                          "rnnexp-compare RUN_A RUN_B what=gradients")
    if args.get("what", "gradients") not in WHAT:
        raise ConfigError(f"what={args['what']!r} is not a picture rnnexp-compare draws; use what={'|'.join(WHAT)}")
    return args


def load(run_dir: Path) -> dict[str, Any]:
    """A run's config, task (its state restored), best model and results."""
    import torch
    from omegaconf import OmegaConf

    from rnnexp.config import load_run_config
    from rnnexp.engine.checkpoint import with_added_keys
    from rnnexp.models.load import load_best, model_from_payload
    from rnnexp.run import picture_title
    from rnnexp.tasks import build_task

    payload = load_best(run_dir)
    config = with_added_keys(OmegaConf.create(payload["config"]))
    config.train.device, config.train.resume, config.train.init_from = "cpu", None, None
    run = load_run_config(config)
    task = build_task(run.task, run.train.batch_size, run.train.seed)
    task.load_state_dict(payload["task"])
    results = run_dir / "results.json"
    return {"dir": run_dir, "run": run, "task": task, "label": picture_title(run), "config": payload["config"],
            "model": model_from_payload(payload, task, torch.device("cpu")),
            "results": json.loads(results.read_text()) if results.is_file() else {}}


def compare(run_dirs: list[Path], what: str = "gradients", text: Optional[str] = None,
            out: Optional[Path] = None) -> Path:
    runs = [load(Path(d).expanduser()) for d in run_dirs]
    names = {r["run"].task.name for r in runs}
    if len(names) > 1:
        raise ConfigError(f"rnnexp-compare draws runs of one task, and these are of {', '.join(sorted(names))}; "
                          f"compare runs of the same task")
    for run, label in zip(runs, labels(runs)):
        run["label"] = label
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with plt.rc_context({"font.size": 12}):
        fig, ax = plt.subplots(figsize=(12.8, 6.4))
        title = {"gradients": _gradients, "curves": _curves, "gates": _gates}[what](ax, runs, text)
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        out = Path(out) if out is not None else Path(f"compare_{what}.png")
        fig.savefig(out, dpi=150)
        plt.close(fig)
    return out


def labels(runs: list[dict[str, Any]]) -> list[str]:
    """Each run's legend: its task and model, and where that names two runs alike (a strategy, a
    seed), the settings the runs differ in, else its directory's name."""
    from rnnexp.settings import HOW_IT_RUNS, flat

    if len({r["label"] for r in runs}) == len(runs):
        return [r["label"] for r in runs]

    flats = [flat(r["config"]) for r in runs]
    keys = [k for k in dict.fromkeys(k for f in flats for k in f)
            if k not in HOW_IT_RUNS and len({repr(f.get(k)) for f in flats}) > 1]
    def apart(f: dict[str, Any]) -> str:
        return ", ".join(f"{k.split('.', 1)[1]}={f.get(k)}" for k in keys)

    named = [r["label"] + (f" ({apart(f)})" if keys else "") for r, f in zip(runs, flats)]
    if len(set(named)) < len(named):  # (the same settings: their directories tell them apart)
        named = [f"{name} [{r['dir'].name}]" for name, r in zip(named, runs)]
    return named


def _example(runs: list[dict[str, Any]], text: Optional[str]) -> Any:
    return runs[0]["task"].example(text)  # one example for every run (the same task reads it the same)


def _gradients(ax: Any, runs: list[dict[str, Any]], text: Optional[str]) -> str:
    from rnnexp.insight import look
    from rnnexp.models.family import model_family

    example = _example(runs, text)
    for r in runs:
        if not model_family(r["run"].model).replay:
            raise ConfigError(f"{r['dir']} is a model of family {r['run'].model.family}, which has no step-by-step "
                              f"replay for gradients; leave it out, or use what=curves")
        norms = look(r["model"], r["task"], example).gradients.numpy()
        before = list(range(len(norms) - 1, -1, -1))  # steps before the read-out: the last step is 0
        ax.semilogy(before, [max(v, 1e-30) for v in norms], marker="o", markersize=3, label=r["label"])
    ax.invert_xaxis()
    ax.set_xlabel("steps before the read-out")
    ax.set_ylabel("‖∂ loss / ∂ h_t‖ (last layer)")
    return f"{runs[0]['run'].task.label}: gradients through time, one example through every run's best model"


def _curves(ax: Any, runs: list[dict[str, Any]], text: Optional[str]) -> str:
    name = ""
    for r in runs:
        objective = (r["results"].get("objective") or {}).get("name") or "val/accuracy"
        name = objective
        history = r["results"].get("history") or []
        ax.plot([h["epoch"] for h in history], [h.get(objective) for h in history], label=r["label"])
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # (epochs are whole)
    ax.set_xlabel("epoch")
    ax.set_ylabel(name)
    return f"{runs[0]['run'].task.label}: {name} of every run"


def _gates(ax: Any, runs: list[dict[str, Any]], text: Optional[str]) -> str:
    from rnnexp.insight import look
    from rnnexp.models.gates import SIGMOID_GATES

    example, without = _example(runs, text), []
    for i, r in enumerate(runs):
        rep = look(r["model"], r["task"], example).replay
        names = SIGMOID_GATES.get(rep.cell, ())
        if not names:
            without.append(r["label"])
            continue
        for j, gate in enumerate(names):
            mean = rep.layers[-1].gates[gate][0].mean(-1).detach().numpy()
            ax.plot(range(len(mean)), mean, color=f"C{i}", linestyle=("-", "--", ":")[j % 3],
                    label=f"{r['label']}: {gate}")
    ax.set_xlabel("time step")
    ax.set_ylabel("mean gate value (0 closed, 1 open)")
    ax.set_ylim(-0.02, 1.02)
    return (f"{runs[0]['run'].task.label}: gates of the last layer over one example"
            + (f" ({', '.join(without)}: no gates)" if without else ""))


def main() -> None:
    from rnnexp.report.errors import run_reporting_errors

    def entry() -> None:
        if any(word in ("-h", "--help") for word in sys.argv[1:]):
            print(f"usage: rnnexp-compare RUN_DIR RUN_DIR... [what={'|'.join(WHAT)}] [example=TEXT] [out=FILE.png]\n\n"
                  + (__doc__ or "").split("\n\n", 1)[1].rstrip())
            return
        args = parse(sys.argv[1:])
        out = Path(args["out"]).expanduser() if "out" in args else None
        print(compare([Path(r) for r in args["runs"]], args.get("what", "gradients"), args.get("example"), out))

    run_reporting_errors(entry, "rnnexp-compare")
