"""Which unit of a character model tracks what: simple properties of every character of a passage
(inside quotes, inside brackets, position in the line, inside a word ...) and, for each, the unit
whose activation correlates best with it (absolute Pearson r), shown as an HTML page with the
passage coloured per character by that unit's activation (after Karpathy et al. 2015).

Step t's state is the state after reading character t, so each property is its value after
reading character t: an opening quote is inside the quotes, a closing one is outside again.
No matplotlib here: the colours are computed directly.
"""

from __future__ import annotations

import html
import math
from typing import Callable, Optional, Sequence, Union

import numpy as np
import torch

Tokens = Union[str, Sequence[str]]
OPENING, CLOSING = "([{", ")]}"


def _chars(text: Tokens) -> list[str]:
    """One symbol per step (a multi-character label counts as its first character)."""
    return [token[:1] if token else "" for token in (list(text) if isinstance(text, str) else text)]


def inside_quotes(chars: list[str]) -> np.ndarray:
    out, inside = np.zeros(len(chars)), False
    for t, ch in enumerate(chars):
        if ch in ('"', "“", "”"):
            inside = ch == "“" or (ch == '"' and not inside)
        out[t] = inside
    return out


def inside_brackets(chars: list[str]) -> np.ndarray:
    out, depth = np.zeros(len(chars)), 0
    for t, ch in enumerate(chars):
        depth = depth + 1 if ch in OPENING else max(0, depth - 1) if ch in CLOSING else depth
        out[t] = depth > 0
    return out


def line_position(chars: list[str]) -> np.ndarray:
    out, position = np.zeros(len(chars)), 0
    for t, ch in enumerate(chars):
        position = 0 if ch == "\n" else position + 1
        out[t] = position
    return out


def inside_word(chars: list[str]) -> np.ndarray:
    return np.array([float(ch.isalnum() or ch == "'") for ch in chars])


def word_position(chars: list[str]) -> np.ndarray:
    out, position = np.zeros(len(chars)), 0
    for t, ch in enumerate(chars):
        position = position + 1 if (ch.isalnum() or ch == "'") else 0
        out[t] = position
    return out


def upper_case(chars: list[str]) -> np.ndarray:
    return np.array([float(ch.isupper()) for ch in chars])


def after_punctuation(chars: list[str]) -> np.ndarray:
    """Since the last sentence end (. ! ? :) and before the next letter: where a capital follows."""
    out, pending = np.zeros(len(chars)), True
    for t, ch in enumerate(chars):
        if ch in ".!?:":
            pending = True
        elif ch.isalnum():
            pending = False
        out[t] = pending
    return out


PROPERTIES: dict[str, Callable[[list[str]], np.ndarray]] = {
    "inside quotes": inside_quotes,
    "inside brackets": inside_brackets,
    "position in the line": line_position,
    "inside a word": inside_word,
    "position in the word": word_position,
    "upper case": upper_case,
    "a sentence just ended": after_punctuation,
}


def char_properties(text: Tokens, properties: Optional[dict[str, Callable]] = None) -> dict[str, np.ndarray]:
    """name -> (T,) float values of each property at every character."""
    chars = _chars(text)
    return {name: np.asarray(fn(chars), dtype=float) for name, fn in (properties or PROPERTIES).items()}


def correlations(states: np.ndarray, values: np.ndarray) -> np.ndarray:
    """(H,) Pearson r of every unit's activation (states (T, H)) with `values` (T,); 0 where a
    unit or the property does not vary."""
    x = states - states.mean(0, keepdims=True)
    y = values - values.mean()
    denominator = np.sqrt((x ** 2).sum(0) * (y ** 2).sum())
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (x * y[:, None]).sum(0) / denominator
    return np.where(denominator > 0, r, 0.0)


def best_units(states: Union[np.ndarray, torch.Tensor], text: Tokens,
               properties: Optional[dict[str, Callable]] = None) -> list[tuple[str, int, float]]:
    """For each property that varies over the passage: (property, unit, r), the unit with the
    largest |r| (r keeps its sign). A property constant over the passage is left out."""
    matrix = _matrix(states)
    chars = _chars(text)
    if matrix.shape[0] != len(chars):
        raise ValueError(f"{matrix.shape[0]} states for {len(chars)} characters")
    found = []
    for name, values in char_properties(chars, properties).items():
        if values.std() == 0:
            continue
        r = correlations(matrix, values)
        unit = int(np.abs(r).argmax())
        found.append((name, unit, float(r[unit])))
    return found


def _matrix(states: Union[np.ndarray, torch.Tensor]) -> np.ndarray:
    if isinstance(states, torch.Tensor):
        states = states.detach().float().cpu().numpy()
    matrix = np.asarray(states, dtype=float)
    if matrix.ndim != 2:
        raise ValueError(f"states must be (T, units), got shape {matrix.shape}")
    return matrix


def colour(value: float) -> str:
    """A diverging colour for value in [-1, 1]: blue below 0, white at 0, red above (RdBu_r)."""
    v = 0.0 if not math.isfinite(value) else max(-1.0, min(1.0, value))
    low, mid, high = np.array([33, 102, 172]), np.array([247, 247, 247]), np.array([178, 24, 43])
    rgb = mid + (high - mid) * v if v >= 0 else mid + (low - mid) * (-v)
    return "#%02x%02x%02x" % tuple(int(round(c)) for c in rgb)


_STYLE = """body { font-family: sans-serif; margin: 1.5em; }
.passage { font-family: monospace; white-space: pre-wrap; line-height: 1.5; border: 1px solid #ccc;
  padding: 0.6em; }
.passage span { padding: 0 0.5px; }
h2 { font-size: 1.05em; margin-top: 1.4em; }
table { border-collapse: collapse; } td, th { padding: 2px 10px; border-bottom: 1px solid #eee; }"""


def coloured_passage(chars: Sequence[str], activation: np.ndarray) -> str:
    """The passage as escaped HTML, each character's background its (scaled) activation."""
    scale = float(np.abs(activation).max()) if len(activation) else 0.0
    scale = scale if scale > 0 else 1.0
    spans = []
    for token, value in zip(chars, activation):
        shown = html.escape(token)
        spans.append(f'<span style="background:{colour(value / scale)}" title="{value:.3f}">{shown}</span>')
    return '<div class="passage">' + "".join(spans) + "</div>"


def units_page(text: Tokens, states: Union[np.ndarray, torch.Tensor], unit_names: Optional[Sequence[str]] = None,
               title: str = "Which unit tracks what",
               properties: Optional[dict[str, Callable]] = None) -> tuple[str, list[tuple[str, int, float]]]:
    """(HTML page, [(property, unit, r)]): per property, the passage coloured by its best unit.
    `states` (T, units) are the activations after reading each character (columns: the units,
    named by `unit_names`, e.g. "layer 1 c 17", else "unit 17")."""
    tokens = list(text) if isinstance(text, str) else [str(t) for t in text]
    matrix = _matrix(states)
    found = best_units(matrix, tokens, properties)
    names = list(unit_names) if unit_names is not None else [f"unit {u}" for u in range(matrix.shape[1])]
    parts = [f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>",
             f"<style>{_STYLE}</style></head><body>", f"<h1>{html.escape(title)}</h1>",
             f"<p>{len(tokens)} characters, {matrix.shape[1]} units. Red: the unit is positive, blue: "
             "negative (scaled to its largest magnitude in the passage). For each property, the unit "
             "whose activation correlates best with it (absolute Pearson r).</p>",
             "<table><tr><th>property</th><th>unit</th><th>r</th></tr>"]
    for name, unit, r in found:
        parts.append(f"<tr><td>{html.escape(name)}</td><td>{html.escape(names[unit])}</td><td>{r:+.3f}</td></tr>")
    parts.append("</table>")
    for name, unit, r in found:
        parts.append(f"<h2>{html.escape(name)}: {html.escape(names[unit])}, r = {r:+.3f}</h2>")
        parts.append(coloured_passage(tokens, matrix[:, unit]))
    absent = [n for n in (properties or PROPERTIES) if n not in {f[0] for f in found}]
    if absent:
        parts.append(f"<p>Not varying in this passage: {html.escape(', '.join(absent))}.</p>")
    parts.append("</body></html>\n")
    return "\n".join(parts), found
