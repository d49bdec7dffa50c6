"""Can many seeds of a tiny model train as one batched model? Time per training step of QRSU easy
(LSTM h4, batches of 32 sequences of 8 steps, RMSprop) for one seed with torch's fused nn.LSTM,
and for S seeds at once as one model with explicit LSTM cells (torch.func.vmap does not cover
aten::lstm; explicit cells batch over seeds with bmm): weights (S, 4H, in), inputs (S, 32, 8, 8).

    python scripts/bench_seeds.py              (one torch thread; ~30 s)

If S seeds cost under 2x one fused run, training seeds together would be worth a launcher option.
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F

torch.set_num_threads(1)
B, T, IN, H, C = 32, 8, 8, 4, 4


def fused_step_time(steps: int) -> float:
    lstm, head = torch.nn.LSTM(IN, H, batch_first=True), torch.nn.Linear(H, C)
    opt = torch.optim.RMSprop([*lstm.parameters(), *head.parameters()], lr=1e-3, foreach=True)
    x, y = torch.randn(B, T, IN), torch.randint(0, C, (B,))

    def step() -> None:
        out, _ = lstm(x)
        loss = F.cross_entropy(head(out[:, -1]), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return timed(step, steps)


def batched_step_time(seeds: int, steps: int) -> float:
    w_ih = torch.nn.Parameter(torch.randn(seeds, IN, 4 * H) * 0.3)
    w_hh = torch.nn.Parameter(torch.randn(seeds, H, 4 * H) * 0.3)
    bias = torch.nn.Parameter(torch.zeros(seeds, 1, 4 * H))
    w_out = torch.nn.Parameter(torch.randn(seeds, H, C) * 0.3)
    b_out = torch.nn.Parameter(torch.zeros(seeds, 1, C))
    params = [w_ih, w_hh, bias, w_out, b_out]
    opt = torch.optim.RMSprop(params, lr=1e-3, foreach=True)
    x, y = torch.randn(seeds, B, T, IN), torch.randint(0, C, (seeds * B,))

    def step() -> None:
        projected = torch.einsum("sbti,sig->sbtg", x, w_ih) + bias.unsqueeze(2)  # all steps' inputs at once
        h = c = x.new_zeros(seeds, B, H)
        for t in range(T):
            gates = projected[:, :, t] + torch.bmm(h, w_hh)
            i, f, g, o = gates.chunk(4, -1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
        logits = torch.baddbmm(b_out, h, w_out)
        loss = F.cross_entropy(logits.reshape(-1, C), y) * seeds  # each seed its own mean loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return timed(step, steps)


def timed(step, steps: int) -> float:
    for _ in range(20):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - start) / steps


def main() -> None:
    one = min(fused_step_time(300) for _ in range(3))
    print(f"1 seed, fused nn.LSTM:        {one * 1e3:.3f} ms/step")
    for seeds in (1, 10, 30):
        t = min(batched_step_time(seeds, 300) for _ in range(3))
        print(f"{seeds:2d} seeds, explicit cells, batched: {t * 1e3:.3f} ms/step = {t / one:.2f}x one fused run "
              f"({t / one / seeds:.2f}x per seed)")


if __name__ == "__main__":
    main()
