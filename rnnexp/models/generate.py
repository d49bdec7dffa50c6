"""Text generation from a character model: feed the prompt, then sample one character at a time."""

from __future__ import annotations

from typing import Optional

import torch

from rnnexp.errors import ConfigError


def encode_prompt(prompt: str, vocab: str) -> list[int]:
    index = {ch: i for i, ch in enumerate(vocab)}
    missing = sorted({ch for ch in prompt if ch not in index})
    if missing:
        raise ConfigError(f"prompt has characters that are not in the run's vocabulary: {''.join(missing)!r}; "
                          f"use only characters from its {len(vocab)}-character vocabulary (vocab.json in the run directory)")
    return [index[ch] for ch in prompt]


@torch.no_grad()
def generate_text(model: torch.nn.Module, vocab: str, prompt: str, length: int, temperature: float = 1.0,
                  top_k: Optional[int] = None, seed: int = 0, device: torch.device = torch.device("cpu")) -> str:
    """`prompt` followed by `length` sampled characters (reproducible for a given seed)."""
    model.eval()
    generator = torch.Generator(device="cpu").manual_seed(seed)
    ids = encode_prompt(prompt, vocab) or [vocab.find("\n") if "\n" in vocab else 0]
    logits, state = model(torch.tensor([ids], device=device), None)
    out = []
    for _ in range(length):
        step = logits[0, -1].float().cpu() / max(temperature, 1e-6)
        if top_k is not None and top_k < step.numel():
            cutoff = torch.topk(step, top_k).values[-1]
            step = step.masked_fill(step < cutoff, float("-inf"))
        next_id = int(torch.multinomial(torch.softmax(step, -1), 1, generator=generator))
        out.append(vocab[next_id])
        logits, state = model(torch.tensor([[next_id]], device=device), state)
    return prompt + "".join(out)
