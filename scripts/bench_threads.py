"""How many torch threads should a run use? Steps per second of rnnexp's training step for small
and large models, on 1 and 2 threads, on an idle machine and beside one busy process.

    python scripts/bench_threads.py            (about a minute; prints a markdown table)

The result sets the thread policy in rnnexp/threads.py (SMALL_MODEL_PARAMS).
"""

from __future__ import annotations

import subprocess
import sys
import time

import torch
import torch.nn.functional as F

from rnnexp.models.build import count_parameters
from rnnexp.models.recurrent_net import RecurrentModel

CASES = [  # (label, cell, hidden, vocab, batch, steps per chunk, input features)
    ("QRSU lstm h4 (lecture)", "lstm", 4, 0, 32, 8, 8),
    ("QRSU lstm h4, hard", "lstm", 4, 0, 32, 105, 8),
    ("echo gru h32", "gru", 32, 0, 5, 20, 1),
    ("charlm lstm h128", "lstm", 128, 65, 64, 100, 0),
    ("charlm lstm h512 (default)", "lstm", 512, 65, 64, 100, 0),
]


def steps_per_second(cell, hidden, vocab, batch, steps, features, seconds=2.0) -> tuple[float, int]:
    model = RecurrentModel(cell, features, vocab or 4, hidden, vocab_size=vocab, embedding_size=64 if vocab else None)
    opt = torch.optim.RMSprop(model.parameters(), lr=1e-3)
    x = torch.randint(0, vocab, (batch, steps)) if vocab else torch.randn(batch, steps, features)
    y = torch.randint(0, vocab or 4, (batch, steps))
    done, start, warmup = 0, None, 3
    while start is None or time.perf_counter() - start < seconds:
        if start is None and done == warmup:  # time only after a few warm-up steps
            start, done = time.perf_counter(), 0
        out, _ = model(x)                                                   # forward
        loss = F.cross_entropy(out.reshape(-1, out.shape[-1]), y.reshape(-1))  # loss
        opt.zero_grad()                                                     # zero_grad
        loss.backward()                                                     # backward
        opt.step()                                                          # step
        done += 1
    return done / (time.perf_counter() - start), count_parameters(model)


def main() -> None:
    rows = []
    for busy in (False, True):
        hog = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if busy else None
        try:
            for label, *case in CASES:
                rates = {}
                for threads in (1, 2):
                    torch.set_num_threads(threads)
                    rates[threads], params = steps_per_second(*case)
                rows.append((label, params, "busy" if busy else "idle", rates[1], rates[2]))
                print(f"{label:28s} {rows[-1][2]:5s} 1 thread {rates[1]:8.1f}/s  2 threads {rates[2]:8.1f}/s", flush=True)
        finally:
            if hog:
                hog.kill()
    print("\n| model | parameters | other process | steps/s, 1 thread | steps/s, 2 threads | 2 threads / 1 |")
    print("|---|---|---|---|---|---|")
    for label, params, busy, one, two in rows:
        print(f"| {label} | {params:,} | {busy} | {one:.1f} | {two:.1f} | {two / one:.2f}x |")


if __name__ == "__main__":
    main()
