"""`rnnexp-inspect`: pictures of the inside of a finished run's best model, for one example.

    rnnexp-inspect run=outputs/runs/2026-11-27/14-05-00_qrsu-moderate_lstm example=BaXbcYdE
    rnnexp-inspect outputs/runs/2026-11-27/14-05-00_echo-d3-c20_gru example=0110100111
    rnnexp-inspect run=RUN_DIR example="ROMEO: it's"  out=pictures/

Prints the model's answer on the example (the class with its probability, a value, or the answer
at each step) and writes states.png (every hidden and cell state over the example's steps),
gradients_through_time.png (|d loss / d h_t| for every step), gates.png (LSTM, GRU) and, for a
character model, units.html into `out` (default: RUN_DIR/inspect/<the example>, so the pictures
of earlier examples stay). For an encoder-decoder with attention (model=seq2seq) it writes
alignment.png instead: where the decoder looked in the source while it wrote each symbol. Without `example=` it uses the run's fixed validation example. The
example is read in the task's own alphabet (QRSU symbols, bits, characters); a symbol outside it
is a one-line error. Arguments are key=value words, so any text works as typed.
"""

from __future__ import annotations

import re
import sys
import zlib
from pathlib import Path
from typing import Any, Optional

import torch
from omegaconf import OmegaConf

from rnnexp.errors import ConfigError

KEYS = ("run", "example", "out")


HELP = __doc__.split("\n\n", 1)[1].rstrip() if __doc__ else ""


def parse(argv: list[str]) -> dict[str, str]:
    """key=value words (a bare directory is run=...); anything else is a one-line error."""
    args: dict[str, str] = {}
    for word in argv:
        key, sep, value = word.partition("=")
        if Path(word).expanduser().is_dir() and key not in KEYS:  # a bare run directory (a sweep job's has "=")
            key, value = "run", word
        elif key not in KEYS or not sep:
            raise ConfigError(f"{word!r} is not an argument of rnnexp-inspect; use run=RUN_DIR [example=TEXT] [out=DIR]")
        args[key] = value
    if "run" not in args:
        raise ConfigError("rnnexp-inspect needs run=RUN_DIR (a run directory with best.pt)")
    return args


def example_folder(text: Optional[str]) -> str:
    """The folder of an example's pictures under RUN_DIR/inspect: its text, made safe for a file name."""
    if text is None:
        return "validation-example"
    safe = re.sub(r"[^A-Za-z0-9.,=+-]+", "_", text)[:48].strip("_.")
    return f"example-{safe or 'text'}-{zlib.crc32(text.encode()):08x}"


def inspect_run(run_dir: Path, text: Optional[str], out: Optional[Path], say: Any = None) -> list[Path]:
    """The pictures of `text` (None: the validation example) through the run's best model, in `out`
    (default: RUN_DIR/inspect/<the example>); `say` receives the model's answer (a line)."""
    from rnnexp.config import load_run_config
    from rnnexp.engine.checkpoint import with_added_keys
    from rnnexp.insight import inspect
    from rnnexp.insight.alignment import FILE as ALIGNMENT_FILE, has_alignment, save_alignment
    from rnnexp.models.family import families_with, model_family
    from rnnexp.models.load import load_best, model_from_payload
    from rnnexp.tasks import build_task

    payload = load_best(run_dir)
    config = with_added_keys(OmegaConf.create(payload["config"]))  # the run's own config, looked at on the CPU
    config.train.device, config.train.resume = "cpu", None
    run = load_run_config(config)
    family = model_family(run.model)
    task = build_task(run.task, run.train.batch_size, run.train.seed)
    task.load_state_dict(payload["task"])
    model = model_from_payload(payload, task, torch.device("cpu"))
    if not family.replay and not family.decoder:
        raise ConfigError(f"rnnexp-inspect draws states, gradients and gates from a step-by-step replay, or an "
                          f"encoder-decoder's attention, and {run_dir} is a model of family {family.name} with neither; "
                          f"inspect a run of model={'|'.join(families_with(lambda f: f.replay))}, or of model=seq2seq")
    example = task.example(text)
    with torch.no_grad():
        outputs, _ = task.predict(model, example.batch, None)
    if say is not None:
        say(task.prediction_text(outputs, example.batch))
    if not family.replay and not has_alignment(model):
        if say is not None:
            say("no picture: an encoder-decoder without attention (model.attention=none) has no alignment to draw; "
                "train one with model.attention=dot|additive")
        return []
    from rnnexp.run import picture_title

    title = f"{picture_title(run)}, best model (epoch {payload['epoch']})"
    folder = out or run_dir / "inspect" / example_folder(text)
    if not family.replay:  # (an encoder-decoder: where it looked while it wrote)
        return [save_alignment(model, task, example, folder / ALIGNMENT_FILE, title)]
    return inspect(model, task, example, folder, title=title)


def main() -> None:
    from rnnexp.report.errors import run_reporting_errors

    def entry() -> None:
        if any(word in ("-h", "--help") for word in sys.argv[1:]):
            print(f"usage: rnnexp-inspect run=RUN_DIR [example=TEXT] [out=DIR]\n\n{HELP}")
            return
        args = parse(sys.argv[1:])
        out = Path(args["out"]).expanduser() if "out" in args else None
        for path in inspect_run(Path(args["run"]).expanduser(), args.get("example"), out, say=print):
            print(path)

    run_reporting_errors(entry, "rnnexp-inspect")
