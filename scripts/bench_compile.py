"""Can `torch.compile` make the QRSU training step faster on the CPU? One step (forward, loss,
zero_grad, backward, RMSprop) of a batch of 32, one thread, three ways:

* torch's fused `nn.LSTM` in eager mode (what rnnexp runs);
* the same LSTM as explicit cells (one matrix product and the gates per step), eager;
* those cells and the optimizer step under `torch.compile` (`nn.LSTM` itself is not decomposed
  by the compiler: compiled, it calls the same kernel).

    python scripts/bench_compile.py                    (QRSU easy: 8 steps, hidden 4)
    python scripts/bench_compile.py --length 80 --hidden 12

Prints one JSON line: milliseconds per step and the compile seconds.
"""

from __future__ import annotations

import argparse
import json
import time

import torch
import torch.nn as nn
from bench_seeds import timed  # (scripts/ is on sys.path when a script runs)


class Cells(nn.Module):
    def __init__(self, inputs: int, hidden: int, classes: int):
        super().__init__()
        self.hidden = hidden
        self.ih, self.hh = nn.Linear(inputs, 4 * hidden), nn.Linear(hidden, 4 * hidden, bias=False)
        self.head = nn.Linear(hidden, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = c = x.new_zeros(x.shape[0], self.hidden)
        gates_in = self.ih(x)  # the input's share of every step's gates at once
        for t in range(x.shape[1]):
            i, f, g, o = (gates_in[:, t] + self.hh(h)).chunk(4, 1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
        return self.head(h)


class Fused(nn.Module):
    def __init__(self, inputs: int, hidden: int, classes: int):
        super().__init__()
        self.lstm, self.head = nn.LSTM(inputs, hidden, batch_first=True), nn.Linear(hidden, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.lstm(x)[0][:, -1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--length", type=int, default=8)
    parser.add_argument("--hidden", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=300)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    x, y = torch.randn(32, args.length, 8), torch.randint(0, 4, (32,))
    loss_fn = nn.CrossEntropyLoss()
    out: dict[str, float] = {}
    for name, model in (("fused nn.LSTM, eager", Fused(8, args.hidden, 4)), ("explicit cells, eager", Cells(8, args.hidden, 4)),
                        ("explicit cells, compiled", Cells(8, args.hidden, 4))):
        optimizer = torch.optim.RMSprop(model.parameters(), lr=1e-3, foreach=True)
        forward, update = model, optimizer.step
        if name.endswith("compiled"):
            forward, update = torch.compile(model), torch.compile(optimizer.step)

        def step() -> None:
            loss = loss_fn(forward(x), y)
            optimizer.zero_grad()
            loss.backward()
            update()

        if name.endswith("compiled"):
            start = time.perf_counter()
            step()
            out["compile seconds"] = round(time.perf_counter() - start, 1)
        out[f"{name}, ms per step"] = round(timed(step, args.repeats) * 1e3, 3)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
