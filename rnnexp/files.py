"""Safe file writing and reading: atomic replace, and text files checked with one-line errors."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

from rnnexp.errors import DataError


def atomic_write(path: Path, write: Callable[[Any], None], mode: str = "wb") -> None:
    """Write through a temporary file in the same directory, then rename over `path`.

    A kill at any instant leaves either the old file or the new one, never a torn one.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json(path: Path, data: Any) -> None:
    atomic_write(path, lambda f: json.dump(data, f, indent=2, sort_keys=False), mode="w")


def read_text_file(path: Path, what: str, key: str) -> str:
    """A UTF-8 text file's contents, or a DataError that names `key` and the problem."""
    path = Path(path).expanduser()
    if not path.exists():
        raise DataError(f"{key}={path}: no such file; give the path of a UTF-8 text file")
    if path.is_dir():
        raise DataError(f"{key}={path} is a directory; give the path of a {what} file inside it")
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise DataError(f"{key}={path} cannot be read ({err.strerror}); check its permissions") from err
    if not raw.strip():
        raise DataError(f"{key}={path} is empty; give a non-empty {what} file")
    if b"\x00" in raw[:8192]:
        raise DataError(f"{key}={path} looks binary (it has NUL bytes); give a {what} file")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise DataError(f"{key}={path} is not UTF-8 (byte {err.start}); convert it from its encoding, e.g. "
                        f"iconv -f latin1 -t utf-8 {path.name} > {path.stem}.utf8{path.suffix}") from err
