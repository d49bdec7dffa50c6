"""rnnexp against the peers' approach, side by side on this machine: JSON plus a readable table.

    python scripts/bench.py                      (every section; ~25 minutes on 2 cores)
    python scripts/bench.py qrsu charlm          (some sections)
    python scripts/bench.py --quick              (tiny settings: checks that the benchmark runs)

Sections (each arm is a fresh process; arms alternate, repeated; medians):
* qrsu: seconds per epoch (training plus the validation after it) of the lecture's own notebook
  code (scripts/lecture_notebook.py), of a lean rewrite of its loop (scripts/peers.py) and of
  `rnnexp task=qrsu` with the same settings, easy (LSTM h4) and moderate (LSTM h12); the
  validation accuracy curves of all three.
* charlm: chars/s of word_language_model's loop (scripts/peers.py) and of rnnexp at its
  configuration (LSTM 2x256, embedding 128, chunks 64, batch 32, SGD lr 20, clip 0.25) in fp32
  and bf16, and the training seconds each needs to reach a validation loss of 2.06 nats (rnnexp
  also with its `experiment=charlm_quick` preset).
* startup: wall seconds of `rnnexp --help` and of a config error.
* threads: training speed with train.threads=1, 2 and auto, idle and beside 1 and 2 busy processes.
* sweep: `experiment=lecture_qrsu` (24 jobs) one job after the other and with the parallel launcher.
* gpu (only where CUDA is): per-step time eager vs CUDA graph, and which device `auto` picks.
Results go to outputs/bench/bench.json (and the table to outputs/bench/bench.md).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
PEERS = ROOT / "scripts" / "peers.py"
NOTEBOOK = ROOT / "scripts" / "lecture_notebook.py"  # the lecture's own QRSU code (numpy generator, Keras padding)
SHAKESPEARE = ROOT.parent / "shared" / "data" / "tinyshakespeare.txt"
# word_language_model's configuration in rnnexp's keys (dropout 0.2 on the embeddings, between the
# layers and on the outputs). One difference stays: rnnexp keeps torch's default initialisation
# (embedding N(0, 1), linear layers U(+-1/sqrt(fan_in))) where the peer draws U(-0.1, 0.1).
WLM_CONFIG = ["model=lstm", "model.hidden_size=256", "model.num_layers=2", "model.embedding_size=128",
              "model.dropout=0.2", "model.input_dropout=0.2", "task.chunk_length=64", "train.batch_size=32", "train.optimizer=sgd",
              "train.lr=20", "train.grad_clip=0.25", "train.lr_schedule=none", "task.sample_length=0"]


CHECKOUT: Path | None = None  # --rnnexp-checkout: measure another checkout of rnnexp (e.g. before a change)


def run(args: list[str], threads: int = 1, **kwargs: Any) -> subprocess.CompletedProcess:
    """`threads` 0: torch's own default (what a notebook gets)."""
    env = dict(os.environ)
    if CHECKOUT is not None and args[1:3] == ["-m", "rnnexp"]:
        env["PYTHONPATH"] = str(CHECKOUT)
    for key in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env.pop(key, None)
        if threads:
            env[key] = str(threads)
    proc = subprocess.run(args, env=env, capture_output=True, text=True, cwd=kwargs.pop("cwd", ROOT), **kwargs)
    if proc.returncode:
        raise SystemExit(f"failed: {' '.join(args)}\n{proc.stderr[-2000:]}")
    return proc


def rnnexp(overrides: list[str], work: Path, name: str, threads: int = 1) -> dict[str, Any]:
    run_dir = work / name
    if CHECKOUT is not None:  # an older rnnexp: without the options it did not have yet
        overrides = [o for o in overrides if not o.startswith("model.input_dropout=")]
    # (run from `work`: `python -m` puts the working directory first on sys.path)
    run([sys.executable, "-m", "rnnexp", *overrides, f"hydra.run.dir={run_dir}", "train.progress=lines"], threads,
        cwd=work)
    return json.loads((run_dir / "results.json").read_text())


def baseline(script: str, *args: str, threads: int = 1) -> dict[str, Any]:
    """A peer's script (scripts/peers.py, scripts/lecture_notebook.py): its one JSON line."""
    return json.loads(run([sys.executable, script, *args, "--threads", str(threads)], threads).stdout)


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


# -- sections ----------------------------------------------------------------------------------
def bench_qrsu(opts: argparse.Namespace, work: Path) -> dict[str, Any]:
    """The lecture's loop as a notebook runs it (torch's default threads) and on one thread, and
    rnnexp with its defaults (its thread policy, TensorBoard, checkpoints and pictures included)."""
    out: dict[str, Any] = {}
    for difficulty, hidden in (("easy", 4), ("moderate", 12)):
        epochs = 2 if opts.quick else opts.epochs
        times: dict[str, list[float]] = {"notebook": [], "notebook 1 thread": [], "lecture": [],
                                         "lecture 1 thread": [], "rnnexp": []}
        curves: dict[str, list[float]] = {}
        for repeat in range(1 if opts.quick else opts.repeats):
            for name, command, threads in (("notebook", [str(NOTEBOOK)], 0), ("notebook 1 thread", [str(NOTEBOOK)], 1),
                                            ("lecture", [str(PEERS), "lecture_qrsu"], 0),
                                            ("lecture 1 thread", [str(PEERS), "lecture_qrsu"], 1)):
                p = baseline(*command, "--difficulty", difficulty, "--hidden", str(hidden), "--epochs", str(epochs),
                             "--device", opts.device, threads=threads)
                times[name].append(p["seconds_per_epoch"])
                curves[name] = p["val_accuracy"]
            r = rnnexp(["task=qrsu", f"task.difficulty={difficulty}", "model=lstm", f"model.hidden_size={hidden}",
                        f"train.epochs={epochs}", "train.target_accuracy=null", f"train.device={opts.device}"],
                       work, f"qrsu-{difficulty}-{repeat}",
                       threads=0)
            times["rnnexp"].append(r["history"][-1]["seconds"] / len(r["history"]))
            curves["rnnexp"] = [h["val/accuracy"] for h in r["history"]]
        med = {name: median(values) for name, values in times.items()}
        out[difficulty] = {"hidden": hidden, "epochs": epochs, "s_per_epoch": med,
                           "speedup_vs_notebook": med["notebook"] / med["rnnexp"],
                           "speedup_vs_notebook_1_thread": med["notebook 1 thread"] / med["rnnexp"],
                           "speedup": med["lecture"] / med["rnnexp"],
                           "speedup_vs_1_thread": med["lecture 1 thread"] / med["rnnexp"],
                           "val_accuracy_curves": curves}
        say(f"qrsu {difficulty}: " + ", ".join(f"{k} {v * 1e3:.1f} ms/epoch" for k, v in med.items()))
    return out


def seconds_to(history: list[dict[str, float]], target: float) -> float | None:
    return next((h["seconds"] for h in history if h["val/loss"] <= target), None)


def bench_charlm(opts: argparse.Namespace, work: Path) -> dict[str, Any]:
    corpus = opts.corpus
    if not Path(corpus).is_file():
        return {"skipped": f"no corpus at {corpus} (--corpus)"}
    seconds, target, threads = (4, 4.0, 1) if opts.quick else (opts.charlm_seconds, 2.06, os.cpu_count() or 1)
    minutes = f"train.time_limit_minutes={seconds / 60:.4f}"
    common = ["task=charlm", f"task.corpus={corpus}", "train.epochs=1000", minutes, f"train.threads={threads}"]
    window = "train.batches_per_epoch=40"  # validation every 40 chunks (a few seconds), like the peer's
    out: dict[str, Any] = {}
    arms: dict[str, Callable[[int], dict[str, Any]]] = {
        "word_language_model": lambda i: _wlm(corpus, seconds, target, threads),
        "rnnexp fp32": lambda i: _mine(rnnexp([*common, *WLM_CONFIG, window], work, f"charlm-fp32-{i}", threads), target),
        "rnnexp bf16": lambda i: _mine(rnnexp([*common, *WLM_CONFIG, window, "train.precision=bf16"], work,
                                              f"charlm-bf16-{i}", threads), target),
        "rnnexp charlm_quick": lambda i: _mine(rnnexp([*common, "experiment=charlm_quick"], work,
                                                     f"charlm-quick-{i}", threads), target),
    }
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in arms}
    for i in range(1 if opts.quick else opts.charlm_repeats):
        for name, arm in arms.items():
            try:
                results[name].append(arm(i))
            except SystemExit as failed:  # an older checkout without the option
                if CHECKOUT is None:
                    raise
                say(f"charlm {name}: not available here ({str(failed).splitlines()[-1]})")
                continue
            say(f"charlm {name}: {results[name][-1]}")
    results = {name: rows for name, rows in results.items() if rows}
    for name, rows in results.items():
        reached = [r["seconds_to_target"] for r in rows if r["seconds_to_target"] is not None]
        out[name] = {"chars_per_second": median([r["chars_per_second"] for r in rows]),
                     "seconds_to_target": median(reached) if len(reached) == len(rows) else None,
                     "best_val_loss": median([r["best_val_loss"] for r in rows])}
    base = out["word_language_model"]
    for name in results:
        out[name]["speed_ratio"] = out[name]["chars_per_second"] / base["chars_per_second"]
        if base["seconds_to_target"] and out[name]["seconds_to_target"]:
            out[name]["time_ratio"] = base["seconds_to_target"] / out[name]["seconds_to_target"]
    out["target_nats"], out["threads"], out["seconds"] = target, threads, seconds
    return out


def _wlm(corpus: str, seconds: float, target: float, threads: int) -> dict[str, Any]:
    p = baseline(str(PEERS), "wlm_charlm", "--corpus", corpus, "--seconds", str(seconds), "--target", str(target),
                 "--eval-seconds", "5", threads=threads)
    return {"chars_per_second": p["chars_per_second"], "seconds_to_target": p["seconds_to_target"],
            "best_val_loss": p["best_val_loss"]}


def _mine(result: dict[str, Any], target: float) -> dict[str, Any]:
    """chars/s over the whole run as the peer counts it (all training chars / training time: the
    harmonic mean of the equal windows' speeds; the last, cut by the time limit, left out).
    The time to the target is rnnexp's clock, which counts its validation too (the peer's does not)."""
    history = result["history"]
    speeds = [h["train/targets_per_second"] for h in (history[:-1] or history)]
    return {"chars_per_second": len(speeds) / sum(1 / v for v in speeds),
            "seconds_to_target": seconds_to(history, target), "best_val_loss": min(h["val/loss"] for h in history)}


def bench_startup(opts: argparse.Namespace, work: Path) -> dict[str, Any]:
    cases = {"--help": ["--help"], "config error": ["train.lr=-1"]}
    out = {}
    for name, args in cases.items():
        times = []
        for _ in range(1 if opts.quick else 5):
            env = {**os.environ, **({"PYTHONPATH": str(CHECKOUT)} if CHECKOUT is not None else {})}
            start = time.perf_counter()
            subprocess.run([sys.executable, "-m", "rnnexp", *args], cwd=work, capture_output=True, env=env)
            times.append(time.perf_counter() - start)
        out[name] = median(times)
        say(f"startup {name}: {out[name]:.2f} s")
    return out


def bench_threads(opts: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Training speed per thread setting, idle and beside busy processes (a `while True` each)."""
    limit = 0.05 if opts.quick else 0.2
    models = {"charlm lstm 256": ["task=charlm", f"task.corpus={opts.corpus}", *WLM_CONFIG,
                                  "train.batches_per_epoch=20", "train.epochs=1000"],
              "qrsu lstm h4": ["task=qrsu", "model=lstm", "train.epochs=1000", "train.target_accuracy=null",
                               "train.insight_every=0"]}
    if not Path(opts.corpus).is_file():
        models.pop("charlm lstm 256")
    out: dict[str, Any] = {}
    for busy in opts.loads:
        hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(busy)]
        try:
            for model, overrides in models.items():
                row = {}
                for setting in ("1", "2", "auto"):
                    r = rnnexp([*overrides, f"train.threads={setting}", f"train.time_limit_minutes={limit}"],
                               work, f"threads-{busy}-{setting}-{len(out)}", threads=2)
                    row[setting] = median([h["train/targets_per_second"] for h in r["history"][1:] or r["history"]])
                    row[f"{setting} chose"] = r["threads"]
                best = max(row["1"], row["2"])
                row["auto_vs_best"] = row["auto"] / best
                out[f"{model}, {busy} busy"] = row
                say(f"threads {model}, {busy} busy: {row}")
        finally:
            for hog in hogs:
                hog.kill()
    return out


def bench_sweep(opts: argparse.Namespace, work: Path) -> dict[str, Any]:
    extra = ["train.epochs=2", "model=lstm", "task.difficulty=easy"] if opts.quick else []
    times = {}
    for name, launcher in (("sequential", []), ("parallel", ["hydra/launcher=local_parallel"])):
        start = time.perf_counter()
        run([sys.executable, "-m", "rnnexp", "experiment=lecture_qrsu", *launcher, *extra,
             f"hydra.sweep.dir={work / ('sweep-' + name)}"], threads=1, cwd=work)
        times[name] = time.perf_counter() - start
    times["ratio"] = times["parallel"] / times["sequential"]
    say(f"sweep: {times}")
    return times


def bench_gpu(opts: argparse.Namespace, work: Path) -> dict[str, Any]:
    import torch

    if not torch.cuda.is_available():
        return {"skipped": "no CUDA device"}
    sys.path.insert(0, str(ROOT / "scripts"))
    from gpu_check import gpu_report  # noqa: E402

    return gpu_report(quick=opts.quick)


SECTIONS = {"qrsu": bench_qrsu, "charlm": bench_charlm, "startup": bench_startup, "threads": bench_threads,
            "sweep": bench_sweep, "gpu": bench_gpu}


# -- report ------------------------------------------------------------------------------------
def table(results: dict[str, Any]) -> str:
    rows = ["| figure | peer | rnnexp | ratio | goal |", "|---|---|---|---|---|"]
    q = results.get("qrsu", {})
    for difficulty, goal in (("easy", "10x"), ("moderate", "5x")):
        if difficulty in q:
            r = q[difficulty]
            t = r["s_per_epoch"]
            rows.append(f"| QRSU {difficulty}, LSTM h{r['hidden']}, time per epoch, vs the lecture notebook | "
                        f"{t['notebook'] * 1e3:.1f} ms ({t['notebook 1 thread'] * 1e3:.1f} on 1 thread) | "
                        f"{t['rnnexp'] * 1e3:.1f} ms | {r['speedup_vs_notebook']:.2f}x "
                        f"({r['speedup_vs_notebook_1_thread']:.2f}x) | {goal} |")
            rows.append(f"| ... vs the lean rewrite of its loop | {t['lecture'] * 1e3:.1f} ms "
                        f"({t['lecture 1 thread'] * 1e3:.1f} on 1 thread) | {t['rnnexp'] * 1e3:.1f} ms | "
                        f"{r['speedup']:.2f}x ({r['speedup_vs_1_thread']:.2f}x) | {goal} |")
    c = results.get("charlm", {})
    if "word_language_model" in c:
        base = c["word_language_model"]
        for name in ("rnnexp fp32", "rnnexp bf16", "rnnexp charlm_quick"):
            if name not in c:
                continue
            r = c[name]
            rows.append(f"| charlm chars/s, {name} | {base['chars_per_second']:,.0f} | {r['chars_per_second']:,.0f} "
                        f"| {r['speed_ratio']:.2f}x | 1.5x |")
            peer_t, mine_t = base["seconds_to_target"], r["seconds_to_target"]
            rows.append(f"| charlm s to {c['target_nats']} nats, {name} | {_s(peer_t)} | {_s(mine_t)} | "
                        f"{_ratio(peer_t, mine_t)} | 5x |")
    for name, seconds in results.get("startup", {}).items():
        rows.append(f"| `rnnexp {name}` (s) | - | {seconds:.2f} | - | < 1.5 s |")
    for name, row in results.get("threads", {}).items():
        rows.append(f"| threads auto vs best, {name} | best {max(row['1'], row['2']):,.0f}/s | auto {row['auto']:,.0f}/s "
                    f"({row['auto chose']} threads) | {row['auto_vs_best']:.2f} | >= 0.90 |")
    s = results.get("sweep", {})
    if "ratio" in s:
        rows.append(f"| lecture_qrsu sweep, wall s | sequential {s['sequential']:.1f} | parallel {s['parallel']:.1f} "
                    f"| {s['ratio']:.2f} | <= 0.55 |")
    for name, row in results.get("gpu", {}).items():
        if isinstance(row, dict) and "eager_ms" in row:
            rows.append(f"| GPU step, {name} | eager {row['eager_ms']:.3f} ms | graph {row['graph_ms']:.3f} ms "
                        f"| {row['eager_ms'] / row['graph_ms']:.1f}x | 5x |")
    return "\n".join(rows)


def _s(value: float | None) -> str:
    return "not reached" if value is None else f"{value:.1f}"


def _ratio(peer_t: float | None, mine_t: float | None) -> str:
    return "-" if not (peer_t and mine_t) else f"{peer_t / mine_t:.2f}x"


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sections", nargs="*", metavar="section", help=f"any of {', '.join(SECTIONS)} (default: all)")
    parser.add_argument("--quick", action="store_true", help="tiny settings: checks the benchmark runs")
    parser.add_argument("--epochs", type=int, default=30, help="QRSU epochs per run")
    parser.add_argument("--device", default="cpu", help="QRSU on cpu or cuda (both the lecture loop and rnnexp)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--corpus", default=str(SHAKESPEARE))
    parser.add_argument("--charlm-seconds", type=float, default=60.0)
    parser.add_argument("--charlm-repeats", type=int, default=1)
    parser.add_argument("--loads", type=int, nargs="+", default=[0, 1, 2], help="threads: busy processes beside the run")
    parser.add_argument("--out", default=str(ROOT / "outputs" / "bench" / "bench.json"))
    parser.add_argument("--rnnexp-checkout", help="measure this checkout of rnnexp instead (git worktree of an "
                                                  "older commit: the 'before' column); arms it cannot run are left out")
    opts = parser.parse_args()
    if opts.rnnexp_checkout:  # its package, with its conf/ as rnnexp.conf (as installed)
        global CHECKOUT
        CHECKOUT = Path(opts.rnnexp_checkout).resolve()
        if not (CHECKOUT / "rnnexp" / "conf").exists():
            (CHECKOUT / "rnnexp" / "conf").symlink_to(Path("..") / "conf")
    unknown = [s for s in opts.sections if s not in SECTIONS]
    if unknown:
        parser.error(f"unknown section {unknown[0]!r}; choose from {', '.join(SECTIONS)}")
    sections = opts.sections or list(SECTIONS)
    results: dict[str, Any] = {"machine": machine(), "quick": opts.quick, "qrsu_device": opts.device}
    with tempfile.TemporaryDirectory(prefix="rnnexp-bench-") as tmp:
        for name in sections:
            results[name] = SECTIONS[name](opts, Path(tmp))
    out = Path(opts.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    text = table(results)
    out.with_suffix(".md").write_text(text + "\n")
    print(text)
    print(f"\n(results: {out})")


def machine() -> dict[str, Any]:
    import platform

    import torch

    return {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(), "python": platform.python_version(),
            "torch": torch.__version__, "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "date": time.strftime("%Y-%m-%d %H:%M")}


if __name__ == "__main__":
    main()
