"""How the console scripts report problems: one line on stderr, a documented exit code.

0 done; 1 a sweep with jobs that did not complete; 2 bad input (config, files, run directory);
3 diverged; 130 / 143 interrupted by Ctrl-C / SIGTERM. `HYDRA_FULL_ERROR=1` shows tracebacks.
"""

from __future__ import annotations

import difflib
import os
import re
import sys
from functools import lru_cache
from typing import Callable, Optional, Sequence

import yaml
from hydra.errors import HydraException, OverrideParseException
from omegaconf.errors import OmegaConfBaseException

from rnnexp.argv import hydra_quote, parse_override, shell_word, split_override
from rnnexp.errors import Rejected, RnnexpError
from rnnexp.errors import Interrupted

EXIT_ON_SIGNAL = {2: 130, 15: 143}  # SIGINT, SIGTERM

#: The config groups a user picks from (`group=option`), in the order --help shows them.
GROUPS = ("task", "model", "train", "experiment", "hparams_search", "hydra/launcher")
SECTIONS = ("task", "model", "train")  # the groups whose keys are set as section.key=value
PRESETS = ("experiment", "hparams_search")  # later ones override earlier ones in conf/config.yaml


def one_line_hydra_error(err: BaseException, known_keys: Sequence[str] = (),
                         argv: Optional[Sequence[str]] = None) -> str:
    """Hydra's and OmegaConf's multi-line messages, folded into one line that keeps the options.

    `known_keys` are the keys a user may set (`section.key` for rnnexp, plain names for
    rnnexp-sample); `argv` the overrides (default: sys.argv[1:]), to know which task was chosen."""
    argv = list(sys.argv[1:] if argv is None else argv)
    text = str(err)
    cause = err.__cause__
    if isinstance(cause, OmegaConfBaseException) and str(cause) not in text:
        text = f"{text}: {getattr(cause, 'msg', cause)}"
    options = re.search(r"Available options in '([^']+)':\s*\n((?:\s+\S+\n?)+)", text)
    head = text.split("\n\n")[0].split("\nConfig search path")[0]
    head = re.sub(r"^In '[^']+': ", "", " ".join(head.split())).split(" full_key:")[0]
    if options:
        group, names = options.group(1), options.group(2).split()
        missing = re.search(rf"Could not (?:find|load) '{re.escape(group)}/([^']*)'", head)
        close = difflib.get_close_matches(missing.group(1), names, n=1) if missing and missing.group(1) else []
        hint = f"did you mean {group}={close[0]}? " if close else ""
        return f"{head}; {hint}choose {group}= one of {', '.join(names)}"
    if "Could not load 'hydra/launcher/" in head or "Could not load 'hydra/sweeper/" in head:
        return f"{head}; the sweep plugins are not installed: pip install -e '.[sweeps]' (or pip install 'rnnexp[sweeps]')"
    if isinstance(err, OverrideParseException):
        return _unparsable_override(head, argv)
    unknown = re.match(r"Could not override '([^']+)'.*(?:is not in struct|not in '\w+')", head)
    if unknown and (known_keys or unknown.group(1).startswith("hydra.")):
        key = unknown.group(1)
        values = [v for _, k, v in map(split_override, argv) if k == key]
        return unknown_key_message(key, values[-1] if values else None, argv, known_keys)
    return head


def unknown_key_message(key: str, value: Optional[str] = None, argv: Optional[Sequence[str]] = None,
                        known_keys: Optional[Sequence[str]] = None, tasks: Optional[Sequence[str]] = None) -> str:
    """One line for a key the config does not have: the group or key meant, never `key` itself.

    For rnnexp (`known_keys` are `section.key` names; None: all of them) the line knows the config
    groups and which task has which keys: `task.difficulty is a key of task=qrsu, not task=echo;
    echo's keys: ...`. `tasks` are the chosen task options (default: read from `argv`)."""
    if known_keys is None:
        from rnnexp.config import known_keys as all_keys

        known_keys = all_keys()
    known = sorted(set(known_keys) - {key})
    if key.startswith("hydra."):
        close = difflib.get_close_matches(key, [k for k in _hydra_keys() if k != key], n=1, cutoff=0.85)
        return f"{key} is not a known key; " + (f"did you mean {close[0]}? " if close else "") + \
            "rnnexp --cfg hydra shows the hydra.* keys"
    if not any("." in k for k in known):  # rnnexp-sample: plain keys, no groups
        close = difflib.get_close_matches(key, known, n=1)
        return f"{key} is not a known key; " + (f"did you mean {close[0]}?" if close else f"valid keys: {', '.join(known)}")
    section, _, name = key.partition(".")
    if not name:
        return _not_a_group_or_key(key, value, known)
    if section == "task":
        return _not_a_task_key(key, name, argv, tasks)
    if section == "model" and (line := _not_a_family_key(key, argv)):
        return line
    hint = _close_key(key, name, [k for k in known if k.startswith(section + ".")], known)
    if hint:
        return f"{key} is not a known key; did you mean {hint}?"
    if section in SECTIONS:
        same = [k for k in known if k.startswith(section + ".")]
        return f"{key} is not a known key; {section} keys: {', '.join(same)} (--help lists the keys)"
    if section in GROUPS:
        return f"{key} is not a known key; {section} is a config group: choose {section}= one of " \
               f"{', '.join(group_options(section))}"
    return f"{key} is not a known key; keys are section.key with section task, model or train " \
           f"(e.g. train.epochs; --help lists the keys), groups are chosen with {', '.join(g + '=' for g in GROUPS)}"


def _close_key(key: str, name: str, same_section: Sequence[str], known: Sequence[str]) -> Optional[str]:
    """A key close to `key`: the same name in another section (model.lr -> train.lr), then a close
    name in its own section (train.lrr -> train.lr), then anywhere (trian.epochs -> train.epochs)."""
    elsewhere = sorted(k for k in known if k.rsplit(".", 1)[-1] == name and not k.startswith("task."))
    if elsewhere:
        return elsewhere[0]
    close = _close_name(name, same_section)
    if close:
        return close
    close = difflib.get_close_matches(key, known, n=1)
    return close[0] if close else None


def _close_name(name: str, keys: Sequence[str], cutoff: float = 0.6) -> Optional[str]:
    """The key of `keys` whose last part is closest to `name` (the shared `section.` prefix would
    make every key of a section look alike)."""
    by_name = {k.rsplit(".", 1)[-1]: k for k in keys}
    close = difflib.get_close_matches(name, list(by_name), n=1, cutoff=cutoff)
    return by_name[close[0]] if close else None


def _not_a_group_or_key(key: str, value: Optional[str], known: Sequence[str]) -> str:
    """`tsak=qrsu`, `Task=echo`, `hydra/launchr=joblib`, `epochs=3`: the group or key meant."""
    shown = f" (groups: {', '.join(GROUPS)}; keys are section.key, e.g. train.epochs; --help lists them)"
    group = difflib.get_close_matches(key.lower(), [g for g in GROUPS if g != key], n=1, cutoff=0.6)
    if group:
        options = group_options(group[0])
        if value in options:
            return f"{key} is not a config group or key; did you mean {group[0]}={value}?{shown}"
        return (f"{key} is not a config group or key; did you mean {group[0]}=? choose {group[0]}= one of "
                f"{', '.join(options)}{shown}")
    names = {k.rsplit(".", 1)[-1]: k for k in known if not k.startswith("task.")}
    names.update({k.rsplit(".", 1)[-1]: k for k in known if k.startswith("task.") and k.rsplit(".", 1)[-1] not in names})
    close = difflib.get_close_matches(key, list(names), n=1)
    if close:
        return f"{key} is not a config group or key; did you mean {names[close[0]]}" \
               f"{'=' + value if value is not None else ''}?{shown}"
    return f"{key} is not a config group or key{shown}"


def _not_a_task_key(key: str, name: str, argv: Optional[Sequence[str]], tasks: Optional[Sequence[str]]) -> str:
    keys = task_keys()
    chosen = [t for t in (tasks if tasks is not None else selected_tasks(argv)) if t in keys]
    lacking = [t for t in chosen if key not in keys[t]] or chosen
    owners = [t for t in keys if key in keys[t]]
    if not lacking:  # the chosen task is unknown: fall back to every task key
        close = difflib.get_close_matches(key, sorted({k for ks in keys.values() for k in ks} - {key}), n=1)
        return f"{key} is not a known key" + (f"; did you mean {close[0]}?" if close else "")
    task = lacking[0]
    own = ", ".join(k for k in keys[task] if k != "task.name")
    if owners:
        return (f"{key} is a key of {_either(owners)}, not {_either(lacking)}; {task}'s keys: {own} "
                f"(--help lists the keys)")
    close = _close_name(name, [k for k in keys[task] if k != key], cutoff=0.8)
    elsewhere = _close_name(name, sorted({k for ks in keys.values() for k in ks} - {key} - set(keys[task])), cutoff=0.8)
    close = close or (None if elsewhere else _close_name(name, [k for k in keys[task] if k != key]))
    if close:
        return f"{key} is not a key of task={task}; did you mean {close}?"
    if elsewhere:
        where = _either([t for t in keys if elsewhere in keys[t]])
        return f"{key} is not a key of task={task}; {elsewhere} is a key of {where}; {task}'s keys: {own}"
    return f"{key} is not a key of task={task}; {task}'s keys: {own} (--help lists the keys)"


def _not_a_family_key(key: str, argv: Optional[Sequence[str]]) -> Optional[str]:
    """`model.weight_drop` with model=mlp: the key of another model family (None: of no family)."""
    from rnnexp.models.family import model_options, not_a_key_of

    for option in selected_models(argv):
        if option in model_options() and (line := not_a_key_of(model_options()[option], key, option)):
            return line
        # a key of the family that this option does not take (model.nonlinearity with model=lstm)
        others = [o for o, family in model_options().items() if family == model_options().get(option)
                  and key.split(".", 1)[1] in _yaml("model", f"{o}.yaml")]
        if option in model_options() and others and option not in others:
            return f"{key} is not a key of model={option}; {' and '.join(f'model={o}' for o in others)} " \
                   f"{'has' if len(others) == 1 else 'have'} it"
    return None


def selected_models(argv: Optional[Sequence[str]] = None) -> list[str]:
    """The model option(s) a command line selects (`model=...`, all values of a sweep), else the default."""
    for arg in reversed(list(sys.argv[1:] if argv is None else argv)):
        if split_override(arg)[1] == "model":
            try:
                override = parse_override(arg)
                values = list(override.sweep_iterator()) if override.is_sweep_override() else [override.value()]
            except Exception:
                continue
            return [str(getattr(v, "text", v)) for v in values if v is not None]
    # else the model a preset or the chosen task picks (task=reverse: model=seq2seq), else the default
    argv = list(sys.argv[1:] if argv is None else argv)
    presets = [(group, value) for arg in argv for _, group, value in [split_override(arg)] if group in PRESETS]
    for group, option in [*presets, *(("task", task) for task in selected_tasks(argv))]:
        for entry in _yaml(group, f"{option}.yaml").get("defaults") or []:
            if isinstance(entry, dict) and entry.get("override /model"):
                return [str(entry["override /model"])]
    for entry in _yaml("config.yaml").get("defaults") or []:
        if isinstance(entry, dict) and "model" in entry:
            return [str(entry["model"])]
    return []


def _either(tasks: Sequence[str]) -> str:
    names = [f"task={t}" for t in tasks]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


# -- what the config offers: groups, options, task keys (read from conf/ and the task registry) ----

@lru_cache(maxsize=1)
def _hydra_keys() -> list[str]:
    """hydra.* keys of Hydra's own schema (hydra.run.dir, hydra.sweep.dir, hydra.job.name, ...)."""
    from hydra.conf import HydraConf
    from omegaconf import DictConfig, OmegaConf

    def walk(node: DictConfig, prefix: str) -> list[str]:
        out = []
        for key in node.keys():
            child = node._get_node(key)
            if isinstance(child, DictConfig) and not child._is_none() and not child._is_missing() and len(child):
                out += walk(child, f"{prefix}.{key}")
            else:
                out.append(f"{prefix}.{key}")
        return out

    try:
        return walk(OmegaConf.structured(HydraConf), "hydra")
    except Exception:
        return []


def _conf():  # type: ignore[no-untyped-def]
    from importlib.resources import files

    return files("rnnexp.conf")


@lru_cache(maxsize=None)
def group_options(group: str) -> list[str]:
    """The options of a config group in conf/ (for hydra/launcher also the plugins' launchers)."""
    folder = _conf().joinpath(*group.split("/"))
    names = {p.name.rsplit(".", 1)[0] for p in folder.iterdir() if p.name.endswith(".yaml")} if folder.is_dir() else set()
    if group == "hydra/launcher":
        names |= {"basic", "joblib", "submitit_local", "submitit_slurm"}
    return sorted(names)


def _yaml(*parts: str) -> dict:
    path = _conf().joinpath(*parts)
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8")) or {} if path.is_file() else {}
    except (OSError, yaml.YAMLError):
        return {}


@lru_cache(maxsize=1)
def task_keys() -> dict[str, list[str]]:
    """task option (conf/task/<option>.yaml) -> its `task.*` keys (the task's Config dataclass)."""
    from dataclasses import fields

    from rnnexp.tasks.base import _REGISTRY, _import_all

    _import_all()
    out = {}
    for option in group_options("task"):
        section = _yaml("task", f"{option}.yaml").get("task") or {}
        cls = _REGISTRY.get(section.get("name", option))
        names = [f.name for f in fields(cls.Config)] if cls is not None else list(section)
        out[option] = sorted(f"task.{n}" for n in names)
    return out


def selected_tasks(argv: Optional[Sequence[str]] = None) -> list[str]:
    """The task option(s) a command line selects: `task=...` (all values of a sweep), else the
    task an experiment or hparams_search preset picks, else conf/config.yaml's default."""
    argv = list(sys.argv[1:] if argv is None else argv)
    chosen: dict[str, list[str]] = {}
    for arg in argv:
        _, key, _ = split_override(arg)
        if key not in ("task",) + PRESETS:
            continue
        try:
            override = parse_override(arg)
            values = list(override.sweep_iterator()) if override.is_sweep_override() else [override.value()]
        except Exception:
            continue
        chosen[key] = [str(getattr(v, "text", v)) for v in values if v is not None]
    if chosen.get("task"):
        return chosen["task"]
    for preset in reversed(PRESETS):
        for option in chosen.get(preset, []):
            for entry in _yaml(preset, f"{option}.yaml").get("defaults") or []:
                if isinstance(entry, dict) and entry.get("override /task"):
                    return [str(entry["override /task"])]
    for entry in _yaml("config.yaml").get("defaults") or []:
        if isinstance(entry, dict) and "task" in entry:
            return [str(entry["task"])]
    return []


def _unparsable_override(head: str, argv: Sequence[str]) -> str:
    """Hydra's LexerNoViableAltException & co: name the override and show quoting that works."""
    head = head.split(" See https://hydra.cc")[0]
    for arg in argv:
        prefix, key, value = split_override(arg)
        if key is None:
            continue
        try:
            parse_override(arg)
            continue
        except Exception:
            pass
        fixed = f"{prefix}{key}={hydra_quote(value, single=True)}"
        try:
            parse_override(fixed)
        except Exception:
            return f"cannot read the override {arg!r} ({head}); see rnnexp --help for the key=value forms"
        if value[:1] in "[{" or re.match(r"\w+\(", value):
            return f"cannot read the override {arg!r} ({head}); a list is [a,b], a sweep a,b or choice(a,b)"
        return (f"cannot read the override {arg!r}: a value with spaces, quotes, commas or letters outside "
                f"ASCII needs quotes for Hydra; type {shell_word(fixed)}")
    return head


def run_reporting_errors(entry: Callable[[], object], prog: str,
                         on_error: Callable[[str], Optional[str]] = lambda message: None,
                         in_sweep: Callable[[], bool] = lambda: False, known_keys: Sequence[str] = (),
                         stopped: Callable[[], int] = lambda: 0) -> None:
    """Run a Hydra entry point; print any problem as one line and exit with its code.

    `on_error(message)` may write a sweep summary and return a better message. `stopped()` is the
    signal a sweep's own process received: a job that failed because of it is a stop, not an error."""
    show_traceback = os.environ.get("HYDRA_FULL_ERROR") == "1"
    os.environ["HYDRA_FULL_ERROR"] = "1"  # let errors reach us instead of Hydra's multi-line report
    try:
        try:
            entry()
        except Rejected as rejected:
            raise rejected.error from None
    except Interrupted as stop:
        sweep_message = on_error("interrupted")  # a sweep: its summary and the command that resumes it
        resume = shell_word(f"train.resume={hydra_quote(str(stop.run_dir), single=True)}") if stop.run_dir else "train.resume=RUN_DIR"
        print(f"{prog}: {sweep_message}" if sweep_message else
              f"{prog}: interrupted by signal {stop.signum}; checkpoint saved. Resume with: rnnexp {resume}",
              file=sys.stderr)
        sys.exit(EXIT_ON_SIGNAL.get(stop.signum, 130))
    except KeyboardInterrupt:  # a second Ctrl-C: at once
        print(f"{prog}: stopped at once; the last checkpoints stay (resume as printed before, or with "
              f"train.resume=RUN_DIR)", file=sys.stderr)
        sys.exit(130)
    except (RnnexpError, HydraException, OmegaConfBaseException) as err:
        if show_traceback:
            raise
        if stopped():
            _exit_stopped(prog, stopped(), on_error)
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
    except ValueError as err:
        if show_traceback or not str(err).startswith("Config group override must be"):
            raise
        print(f"{prog}: error: {_null_group_message()}", file=sys.stderr)  # `experiment=null`
        sys.exit(2)
    except Exception as err:  # a job of a sweep crashed: summarise, then report it as one line
        if show_traceback or not in_sweep():
            raise
        if stopped():  # e.g. submitit reports the jobs that Ctrl-C stopped as failed
            _exit_stopped(prog, stopped(), on_error)
        print(f"{prog}: error: {on_error(f'{type(err).__name__}: {err}')}", file=sys.stderr)
        sys.exit(1)
    finally:
        if not show_traceback:
            os.environ.pop("HYDRA_FULL_ERROR", None)


def _exit_stopped(prog: str, signum: int, on_error: Callable[[str], Optional[str]]) -> None:
    print(f"{prog}: {on_error('interrupted') or f'interrupted by signal {signum}'}", file=sys.stderr)
    sys.exit(EXIT_ON_SIGNAL.get(signum, 130))


def _null_group_message() -> str:
    """Hydra's ValueError for `experiment=null` (a group given null instead of an option)."""
    for arg in sys.argv[1:]:
        _, key, value = split_override(arg)
        if key is not None and value.lower() == "null" and "." not in key:
            options = ", ".join(group_options(key)) if key in GROUPS else "its options"
            none = f"leave {key}= out for none, or " if key in PRESETS else ""
            return f"{key}=null: a config group takes an option name, not null; {none}choose {key}= one of {options}"
    return "a config group was given null; give it an option name (rnnexp --help lists them)"
