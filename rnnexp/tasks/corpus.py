"""Text corpora for the character language model: a named corpus or any UTF-8 file.

* `python_reference` (the default): the Python Language Reference as CPython ships it for
  `help()` (`pydoc_data.topics`, about 465,000 characters of English prose and code). It is part
  of every CPython installation, so `rnnexp task=charlm` works offline on any machine.
* `tinyshakespeare`: the 1,115,394-character corpus of char-rnn and nanoGPT, downloaded on first
  use with pooch (sha256-verified, written atomically) into a cache directory, and read from
  there offline afterwards. The cache is `$RNNEXP_CACHE_DIR`, else platformdirs' user cache
  (`~/.cache/rnnexp` on Linux). To use a copy you already have, put it there as
  `tinyshakespeare.txt`, or pass its path as `task.corpus=...`.
* anything else is a path to a UTF-8 text file.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

from rnnexp.errors import DataError
from rnnexp.files import read_text_file

TINYSHAKESPEARE_URL = "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
TINYSHAKESPEARE_SHA256 = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"
NAMED = ("python_reference", "tinyshakespeare")


def cache_dir() -> Path:
    env = os.environ.get("RNNEXP_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("rnnexp"))


def python_reference() -> str:
    from pydoc_data.topics import topics

    return "\n\n".join(topics[key] for key in sorted(topics))


def tinyshakespeare() -> str:
    import pooch

    folder = cache_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        path = pooch.retrieve(TINYSHAKESPEARE_URL, known_hash=f"sha256:{TINYSHAKESPEARE_SHA256}",
                              fname="tinyshakespeare.txt", path=folder, progressbar=False)
    except Exception as err:  # no network, a proxy, a bad hash: pooch raises several kinds
        raise DataError(
            f"task.corpus=tinyshakespeare is not cached in {folder} and could not be downloaded "
            f"({type(err).__name__}); offline, copy it there as tinyshakespeare.txt (or set RNNEXP_CACHE_DIR), "
            f"pass a file with task.corpus=path/to/input.txt, or use task.corpus=python_reference") from err
    return Path(path).read_text(encoding="utf-8")


@functools.lru_cache(maxsize=4)
def load_corpus(name_or_path: str) -> str:
    """The corpus text; one-line DataError for anything unusable."""
    if name_or_path == "python_reference":
        return python_reference()
    if name_or_path == "tinyshakespeare":
        return tinyshakespeare()
    if not name_or_path:
        raise DataError(f"task.corpus is empty; use one of {', '.join(NAMED)} or a path to a UTF-8 text file")
    return read_text_file(Path(name_or_path), "UTF-8 text", "task.corpus")
