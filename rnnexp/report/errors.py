"""How the console scripts report problems: one line on stderr, a documented exit code.

0 done; 1 a sweep with jobs that did not complete; 2 bad input (config, files, run directory);
3 diverged; 130 / 143 interrupted by Ctrl-C / SIGTERM. `HYDRA_FULL_ERROR=1` shows tracebacks.
"""

from __future__ import annotations

import difflib
import os
import re
import sys
from typing import Callable, Optional, Sequence

from hydra.errors import HydraException
from omegaconf.errors import OmegaConfBaseException

from rnnexp.errors import Rejected, RnnexpError
from rnnexp.engine.loop import Interrupted

EXIT_ON_SIGNAL = {2: 130, 15: 143}  # SIGINT, SIGTERM


def one_line_hydra_error(err: BaseException, known_keys: Sequence[str] = ()) -> str:
    """Hydra's and OmegaConf's multi-line messages, folded into one line that keeps the options."""
    text = str(err)
    cause = err.__cause__
    if isinstance(cause, OmegaConfBaseException) and str(cause) not in text:
        text = f"{text}: {getattr(cause, 'msg', cause)}"
    options = re.search(r"Available options in '([^']+)':\s*\n((?:\s+\S+\n?)+)", text)
    head = text.split("\n\n")[0].split("\nConfig search path")[0]
    head = re.sub(r"^In '[^']+': ", "", " ".join(head.split())).split(" full_key:")[0]
    if options:
        names = ", ".join(options.group(2).split())
        return f"{head}; choose {options.group(1)}= one of {names}"
    if "Could not load 'hydra/launcher/" in head or "Could not load 'hydra/sweeper/" in head:
        return f"{head}; the sweep plugins are not installed: pip install -e '.[sweeps]' (or pip install 'rnnexp[sweeps]')"
    unknown = re.match(r"Could not override '([^']+)'.*is not in struct", head)
    if unknown and known_keys:
        key = unknown.group(1)
        close = difflib.get_close_matches(key, known_keys, n=1)
        section = key.split(".")[0]
        same = sorted(k for k in known_keys if k.startswith(section + "."))
        hint = f"did you mean {close[0]}?" if close else f"valid keys: {', '.join(same) or ', '.join(sorted(known_keys))}"
        return f"{key} is not a known key; {hint} (--help lists the keys)"
    return head


def run_reporting_errors(entry: Callable[[], object], prog: str,
                         on_error: Callable[[str], Optional[str]] = lambda message: None,
                         in_sweep: Callable[[], bool] = lambda: False, known_keys: Sequence[str] = ()) -> None:
    """Run a Hydra entry point; print any problem as one line and exit with its code.

    `on_error(message)` may write a sweep summary and return a better message."""
    show_traceback = os.environ.get("HYDRA_FULL_ERROR") == "1"
    os.environ["HYDRA_FULL_ERROR"] = "1"  # let errors reach us instead of Hydra's multi-line report
    try:
        try:
            entry()
        except Rejected as rejected:
            raise rejected.error from None
    except Interrupted as stop:
        on_error("interrupted")
        print(f"{prog}: interrupted by signal {stop.signum}; checkpoint saved. Resume with: rnnexp "
              f"\"train.resume='{stop.run_dir or '<run dir>'}'\"", file=sys.stderr)
        sys.exit(EXIT_ON_SIGNAL.get(stop.signum, 130))
    except (RnnexpError, HydraException, OmegaConfBaseException) as err:
        if show_traceback:
            raise
        message = str(err) if isinstance(err, RnnexpError) else one_line_hydra_error(err, known_keys)
        message = on_error(message) or message
        print(f"{prog}: error: {message}", file=sys.stderr)
        sys.exit(1 if in_sweep() else getattr(err, "exit_code", 2))
    except OSError as err:  # the output directory cannot be created or written (permissions, disk)
        if show_traceback:
            raise
        where = f" {err.filename}" if err.filename else ""
        print(f"{prog}: error: cannot write{where}: {err.strerror or err}; check the output directory's "
              f"permissions and free space, or choose another with hydra.run.dir=... (or hydra.sweep.dir=...)",
              file=sys.stderr)
        sys.exit(2)
    except Exception as err:  # a job of a sweep crashed: summarise, then report it as one line
        if show_traceback or not in_sweep():
            raise
        print(f"{prog}: error: {on_error(f'{type(err).__name__}: {err}')}", file=sys.stderr)
        sys.exit(1)
    finally:
        if not show_traceback:
            os.environ.pop("HYDRA_FULL_ERROR", None)
