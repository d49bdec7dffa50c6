"""Free text on the command line: prompts, file and directory names, as the user typed them.

Hydra reads every `key=value` with its override grammar, where an unquoted value may hold only
ASCII letters, digits and a few symbols: `prompt="it's"`, `prompt=Zürich`, `"prompt=café naïve"`
or `task.corpus=książka.txt` fail to parse. For the keys whose value is free text,
`quote_free_text` rewrites `key=<any text>` into a quoted value that Hydra's grammar accepts and
that yields exactly the typed text:

    quote_free_text(["prompt=it's", "model=rnn,lstm"], {"prompt"})
        -> ['prompt="it\\'s"', 'model=rnn,lstm']    # Hydra reads: it's

* A value the user already quoted for Hydra (`prompt='ROMEO:'`, `"train.resume='a,b'"`) means its
  inside, as in Hydra; `'it's'` (quotes around text that has one) means `it's` too.
* A value Hydra already reads as exactly the typed text stays as typed (`prompt=ROMEO:`).
* `${` is literal text in these keys (OmegaConf would read it as an interpolation), except in
  `hydra.*` keys, where `hydra.run.dir=outputs/${now:%H-%M-%S}` is Hydra's own idiom.
* Commas are text, except in a sweep (`-m`) for the keys given as `sweepable`: there
  `task.corpus=a.txt,książka.txt` is two jobs, each value quoted (quote one value that holds a
  comma: `"task.corpus='a,b.txt'"`). Hydra's sweep functions (`choice(...)`) stay as typed.
* Other keys (`model=rnn,lstm`, `train.lr=1e-3`) and flags (`-m`, `--cfg job`) are never touched.
"""

from __future__ import annotations

import re
import shlex
from functools import lru_cache
from typing import Any, Iterable, Optional

from rnnexp.errors import ConfigError

#: Free-text keys of `rnnexp` (values are paths or names that may hold any character).
RNNEXP_FREE_TEXT = frozenset({"task.corpus", "train.resume", "hydra.run.dir", "hydra.sweep.dir",
                              "hydra.sweep.subdir"})
#: Of those, the ones a sweep may list several values of (`-m task.corpus=a.txt,b.txt`).
RNNEXP_SWEEPABLE = frozenset({"task.corpus"})
#: Free-text keys of `rnnexp-sample`.
SAMPLE_FREE_TEXT = frozenset({"run", "prompt"})

MULTIRUN_FLAGS = ("-m", "--multirun")
QUOTES = ("'", '"')


class FreeTextError(ConfigError):
    """A value Hydra's override grammar cannot carry; the message is one line with a fix (exit 2
    when raised inside `run_reporting_errors`)."""


@lru_cache(maxsize=1)
def _parser() -> Any:
    from hydra.core.override_parser.overrides_parser import OverridesParser

    return OverridesParser.create()


def parse_override(arg: str) -> Any:
    """Hydra's reading of one `key=value` (an `Override`); raises Hydra's OverrideParseException."""
    return _parser().parse_overrides([arg])[0]


def hydra_value(arg: str) -> Any:
    """What Hydra makes of `key=value`'s value (a str for a quoted one), or raises."""
    return parse_override(arg).value()


def literal_for_omegaconf(text: str) -> str:
    """`text` such that OmegaConf reads it back as `text`: every `${` escaped (`\\${`), and the
    backslashes just before it doubled (OmegaConf folds `\\\\` to `\\` only in front of `${`)."""
    return re.sub(r"(\\*)\$\{", lambda m: m.group(1) * 2 + "\\${", text)


def literal_container(obj: Any) -> Any:
    """A resolved container (`OmegaConf.to_container(node, resolve=True)`) with every string made
    literal again, so that creating a config from it does not read a `${` of the text as an
    interpolation a second time."""
    if isinstance(obj, str):
        return literal_for_omegaconf(obj)
    if isinstance(obj, dict):
        return {key: literal_container(value) for key, value in obj.items()}
    if isinstance(obj, list):
        return [literal_container(value) for value in obj]
    return obj


def hydra_quote(text: str, single: bool = False) -> str:
    """`text` as one quoted value of Hydra's override grammar that reads back as `text` (the quote
    inside is escaped with a backslash, and so are the backslashes just before a quote). Single
    quotes when `single` (they sit well inside the shell's double quotes), else the fewer escapes."""
    from hydra.core.override_parser.types import Quote, QuotedString

    quote = Quote.double if "'" in text and '"' not in text and not single else Quote.single
    return QuotedString(text=text, quote=quote).with_quotes()


def shell_word(arg: str) -> str:
    """`arg` quoted for bash so that a pasted command passes it unchanged: double quotes where they
    do (`"prompt='it\\'s'"` reads better than shlex's `'prompt='"'"'...`), else shlex's quoting."""
    if re.fullmatch(r"[\w@%+=:,./-]+", arg, flags=re.ASCII):
        return arg
    if "!" in arg or "\n" in arg:  # history expansion, line breaks: only single quotes are safe
        return shlex.quote(arg)
    out = []
    for i, char in enumerate(arg):
        following = arg[i + 1:i + 2]
        if char in '"$`' or (char == "\\" and (following in ('"', "$", "`", "\\") or not following)):
            out.append("\\")
        out.append(char)
    return '"' + "".join(out) + '"'


def _split_sweep(text: str) -> list[str]:
    """`a,b` -> [a, b]; a quoted element may hold commas (`'a,b',c`)."""
    items, current, quote = [], [], None
    i = 0
    while i < len(text):
        char = text[i]
        if quote:
            current.append(char)
            if char == "\\" and i + 1 < len(text):
                current.append(text[i + 1])
                i += 1
            elif char == quote:
                quote = None
        elif char in QUOTES and not current:
            quote = char
            current.append(char)
        elif char == ",":
            items.append("".join(current))
            current = []
        else:
            current.append(char)
        i += 1
    items.append("".join(current))
    return items


def _meant(key: str, text: str) -> str:
    """The text the user means by `text`: the inside of a value quoted for Hydra, else `text`."""
    if len(text) >= 2 and text[0] in QUOTES and text[-1] == text[0]:
        try:
            value = hydra_value(f"{key}={text}")
        except Exception:
            return text[1:-1]  # 'it's': quotes around text that has one
        if isinstance(value, str):
            return value
    return text


def _one_value(key: str, text: str, literal: bool) -> str:
    """The value to give Hydra for `key` so that it reads back as what `text` means."""
    meant = _meant(key, text)
    wanted = literal_for_omegaconf(meant) if literal else meant
    if wanted == meant:
        try:
            if hydra_value(f"{key}={text}") == meant:
                return text  # Hydra already reads it as meant: keep the user's spelling
        except Exception:
            pass
    quoted = hydra_quote(wanted)
    try:
        ok = hydra_value(f"{key}={quoted}") == wanted
    except Exception:
        ok = False
    if not ok:  # not seen with Hydra 1.3's grammar; kept so that a change there stays one line
        raise FreeTextError(f"{key}={text}: Hydra's override grammar cannot carry this value; "
                            f"quote it for Hydra inside shell quotes, e.g. {shell_word(key + '=' + quoted)}")
    return quoted


def quote_free_text(argv: list[str], keys: Iterable[str], sweepable: Iterable[str] = ()) -> list[str]:
    """`argv` with every `key=<any text>` of a free-text key rewritten as a Hydra-quoted value that
    reads back as exactly the typed text; everything else unchanged. Raises FreeTextError (one
    line, with quoting that works) for a value the grammar cannot carry."""
    keys, sweepable = frozenset(keys), frozenset(sweepable)
    multirun = any(a in MULTIRUN_FLAGS for a in argv)
    out = []
    for arg in argv:
        prefix, key, text = split_override(arg)
        if key is None or key not in keys:
            out.append(arg)
            continue
        literal = not key.startswith("hydra.")
        if multirun and key in sweepable and _is_sweep(arg):
            out.append(arg)  # choice(...), range(...) or a list Hydra already reads
        elif multirun and key in sweepable and "," in text:
            out.append(f"{prefix}{key}=" + ",".join(_one_value(key, item, literal) for item in _split_sweep(text)))
        else:
            out.append(f"{prefix}{key}={_one_value(key, text, literal)}")
    return out


def split_override(arg: str) -> tuple[str, Optional[str], str]:
    """`++key=text` -> ("++", "key", "text"); a flag or a bare word -> ("", None, arg)."""
    if arg.startswith("-") or "=" not in arg:
        return "", None, arg
    left, text = arg.split("=", 1)
    key = left.lstrip("+~")
    return left[: len(left) - len(key)], key, text


def _is_sweep(arg: str) -> bool:
    try:
        return bool(parse_override(arg).is_sweep_override())
    except Exception:
        return False
