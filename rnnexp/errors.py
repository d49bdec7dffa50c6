"""The errors rnnexp reports to a user as one line (the CLI prints the message, no traceback).

Every message names the problem and the fix; `HYDRA_FULL_ERROR=1` shows the traceback.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Optional


class RnnexpError(Exception):
    """A problem the user can fix; `str(error)` is the whole one-line message."""

    exit_code = 2


class ConfigError(RnnexpError):
    """A config value that is wrong in type, range or combination."""


class DataError(RnnexpError):
    """A file or corpus that cannot be used (missing, empty, not text, too short)."""


class RunDirError(RnnexpError):
    """An output or run directory that cannot be written or resumed from."""


class DivergedError(RnnexpError):
    """Training produced a non-finite loss."""

    exit_code = 3


class Rejected(BaseException):
    """Carries an RnnexpError through Hydra's callback machinery, which swallows Exceptions."""

    def __init__(self, error: Exception):
        super().__init__(str(error))
        self.error = error


def require(ok: bool, key: str, value: Any, valid: str) -> None:
    """Raise a ConfigError naming `key`, the bad `value` and what would be valid."""
    if not ok:
        raise ConfigError(f"{key}={value!r} is invalid: {valid}")


def require_choice(key: str, value: Any, choices: Iterable[str]) -> None:
    choices = list(choices)
    require(value in choices, key, value, f"choose one of {', '.join(map(str, choices))}")


class ResourceError(RnnexpError):
    """The machine cannot hold what the config asks for (memory)."""


class Interrupted(BaseException):
    """A stop was requested (Ctrl-C, SIGTERM, a cluster's pre-emption signal) and the run's state
    was handed to the callbacks (checkpoint written, logs closed). A BaseException, like
    KeyboardInterrupt, so that it stops a whole sweep, not just one job."""

    def __init__(self, signum: int, run_dir: str = ""):
        super().__init__(signum)
        self.signum = signum
        self.run_dir = run_dir
        self.hand_back: Optional[Callable[[], None]] = None  # the signal's owner (submitit), once state is saved
