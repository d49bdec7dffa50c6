"""Where a task's data comes from: independent random streams, and a hash split for discrete sequences.

Streams. Every random draw of a task comes from a stream of its own, spawned from one of two
roots (numpy's `SeedSequence(root, spawn_key=(purpose, index))`), so no two purposes can ever
share a key, whatever the seeds:

* the task's held-out seed (`task.heldout_seed`): the validation and test sets, the same for
  every `train.seed`, as a study across seeds needs;
* `train.seed`: the initial weights, each training epoch's data (index = the epoch, so a resumed
  run regenerates exactly the data an uninterrupted one would), and the held-out sets of
  curriculum stages.

Hash split. A task of discrete sequences (QRSU, copy) can draw the same sequence for training
and for testing: QRSU easy has only 5,120 distinct sequences, and on main 89.8% of its test
sequences were seen in the first 13 training epochs. Here each sequence belongs to exactly one
part, train, validation or test, by a hash of its symbols (Zaremba & Sutskever 2014 split their
programs by a hash mod 3), and every draw for a part rejects the sequences of the others. The
parts take 70%, 15% and 15% of any space; a sequence's part depends on its symbols alone, not on
the difficulty, padding or batch it comes in.
"""

from __future__ import annotations

import functools
import math
from typing import Callable

from rnnexp.errors import ConfigError
from rnnexp.lazy import np, torch  # on first use: config checks need neither

#: The purposes a stream is drawn for (the first number of its spawn key).
PURPOSES = {"weights": 0, "train": 1, "val": 2, "test": 3, "stage": 4, "mix": 5, "mixed_examples": 6}
#: The parts of a hash split and the share of every space each one takes.
PARTS = ("train", "val", "test")
SHARES = {"train": 0.70, "val": 0.15, "test": 0.15}


def stream_seed(root: int, purpose: str, index: int = 0) -> int:
    """A 63-bit seed for (root, purpose, index), independent of every other triple."""
    sequence = np.random.SeedSequence(int(root), spawn_key=(PURPOSES[purpose], int(index)))
    return int(sequence.generate_state(1, dtype=np.uint64)[0]) & ((1 << 63) - 1)


def stream(root: int, purpose: str, index: int = 0) -> torch.Generator:
    """A torch RNG for (root, purpose, index): see the module's docstring."""
    return torch.Generator().manual_seed(stream_seed(root, purpose, index))


# -- the hash split ------------------------------------------------------------------------------
_PRIME = 2_147_483_647  # 2^31 - 1: every product below stays inside int64
_BASE = 1_103_515_245 % _PRIME
_MIX = (0x2C1B3C6D, 0x297A2D39)


@functools.lru_cache(maxsize=16)
def _powers(steps: int) -> torch.Tensor:
    powers, value = [], 1
    for _ in range(steps):
        powers.append(value)
        value = value * _BASE % _PRIME
    return torch.tensor(powers, dtype=torch.int64)


def sequence_hash(symbols: torch.Tensor) -> torch.Tensor:
    """(n, T) symbol ids >= 0, with -1 after each sequence's end -> (n,) hashes in [0, 1).

    A polynomial hash modulo a prime over the symbols (0 for the padding, so only the sequence's own
    symbols count), then two multiply-xorshift rounds so that sequences one symbol apart land far apart."""
    values = (symbols.long() + 1) * _powers(symbols.shape[1])          # each < 2^35; a row's sum < 2^45
    h = values.sum(1) % _PRIME
    for multiplier in _MIX:
        h = h ^ (h >> 15)
        h = (h * multiplier) % _PRIME
    h = h ^ (h >> 13)
    return (h % _PRIME).double() / _PRIME


def part_of(symbols: torch.Tensor) -> torch.Tensor:
    """(n, T) symbols (-1 padded) -> (n,) part index into PARTS."""
    u = sequence_hash(symbols)
    bounds = torch.tensor([SHARES["train"], SHARES["train"] + SHARES["val"]], dtype=torch.float64)
    return torch.bucketize(u, bounds, right=True)


def draw_in_part(n: int, part: str, draw: Callable[[int, torch.Generator], tuple[torch.Tensor, ...]],
                 generator: torch.Generator, keys: str = "the task's ranges") -> tuple[torch.Tensor, ...]:
    """`n` draws that belong to `part`. `draw(m, generator)` returns a tuple of tensors with m rows
    whose first is the symbols (m, T) that decide the part (-1 padded; T fixed for the config).
    Draws of the other parts are rejected; the result is fixed by the generator's seed. `keys` name
    what sets the space, for the error when a part of it is empty."""
    wanted, kept, have, drawn_in_all = PARTS.index(part), [], 0, 0
    for _ in range(64):
        m = math.ceil((n - have) / SHARES[part] * 1.2) + 8
        drawn = draw(m, generator)
        drawn_in_all += m
        keep = part_of(drawn[0]) == wanted
        kept.append(tuple(t[keep] for t in drawn))
        have += int(keep.sum())
        if have >= n:
            return tuple(torch.cat(parts)[:n] for parts in zip(*kept))
    raise ConfigError(f"{keys} allow too few distinct sequences for a {part} set: {have} of {drawn_in_all:,} draws "
                      f"fell in its part of the hash split; widen or lengthen them")


def distinct(symbols: torch.Tensor) -> set[bytes]:
    """The distinct sequences among (n, T) symbols, exactly (as bytes)."""
    return {row.tobytes() for row in symbols.numpy().astype(np.int8)}


def split_report(space: int, held_out: dict[str, torch.Tensor], train_draws: Callable[[int], torch.Tensor],
                 epochs: int) -> dict[str, object]:
    """What results.json says of a hash-split task's data: the size of its space (a float where it
    passes 2^53), the parts' shares, the distinct held-out sequences, and the overlap measured, not
    assumed: held-out sequences found in the training draws of the first epochs (at most 20;
    `train_draws(epoch)`, drawn with the target's settings: a curriculum's stages come from the same
    train part) or in the other held-out set (exact symbol-by-symbol equality)."""
    checked = min(epochs, 20)
    seen: set[bytes] = set()
    for epoch in range(1, checked + 1):
        seen |= distinct(train_draws(epoch))
    val, test = distinct(held_out["val"]), distinct(held_out["test"])
    return {"split": "hash of the symbols", "space": space if space < 2 ** 53 else float(space),
            "shares": dict(SHARES), "distinct": {"val": len(val), "test": len(test)},
            "overlap": {"val_in_train": len(val & seen), "test_in_train": len(test & seen), "test_in_val": len(test & val)},
            "overlap_checked_over_epochs": checked}
