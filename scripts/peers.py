"""The peers' approach, implemented here as the baselines `scripts/bench.py` measures rnnexp against.

* `lecture_qrsu`: how the lecture's notebook trains QRSU: a per-sample Python generator (one
  sequence at a time from `random`, one-hot encoded and left-padded per batch), an `nn.LSTM`
  (or ReLU `nn.RNN`) with a linear head on the last step, and a plain loop with a `.item()` per
  batch for the running loss and accuracy; the fixed validation set is scored after every epoch.
* `wlm_charlm`: pytorch/examples `word_language_model` on characters: `batchify` into parallel
  columns (time-major), `get_batch` chunks of `bptt`, `repackage_hidden`, `clip_grad_norm_` and the
  hand-written SGD update `p.data.add_(p.grad, alpha=-lr)`, lr 20, clip 0.25, dropout 0.2,
  init uniform(-0.1, 0.1). The text is split like rnnexp's (90/5/5, validation before test) so
  both score the same validation characters; validation runs every `eval_seconds` of training
  (its time is not counted), where the original evaluates once per epoch.

Each prints one JSON line: seconds of training per epoch (validation included for QRSU, as in
rnnexp's history) and the curve. Run on one torch thread unless told otherwise:

    python scripts/peers.py lecture_qrsu --difficulty easy --hidden 4 --epochs 30
    python scripts/peers.py wlm_charlm --corpus ../shared/data/tinyshakespeare.txt --seconds 60
"""

from __future__ import annotations

import argparse
import json
import random
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

# -- QRSU, the lecture's way -------------------------------------------------------------------
SYMBOLS = "XYabcdBE"
RANGES = {"easy": ((7, 8), (1, 2), (4, 5)), "moderate": ((60, 80), (10, 20), (45, 54))}


def qrsu_sample(rng: random.Random, difficulty: str) -> tuple[str, int]:
    (lmin, lmax), (t1a, t1b), (t2a, t2b) = RANGES[difficulty]
    length = rng.randint(lmin, lmax)
    seq = [rng.choice("abcd") for _ in range(length)]
    seq[0], seq[-1] = "B", "E"
    first, second = rng.choice("XY"), rng.choice("XY")
    seq[rng.randint(t1a, t1b)], seq[rng.randint(t2a, t2b)] = first, second
    return "".join(seq), 2 * (first == "Y") + (second == "Y")


def qrsu_batches(rng: random.Random, difficulty: str, n: int, batch_size: int):
    for start in range(0, n, batch_size):
        samples = [qrsu_sample(rng, difficulty) for _ in range(min(batch_size, n - start))]
        longest = max(len(s) for s, _ in samples)
        x = torch.zeros(len(samples), longest, len(SYMBOLS))
        for i, (seq, _) in enumerate(samples):  # left-pad, so the last step is E for everyone
            x[i, longest - len(seq):] = F.one_hot(torch.tensor([SYMBOLS.index(c) for c in seq]), len(SYMBOLS)).float()
        yield x, torch.tensor([label for _, label in samples])


class Classifier(nn.Module):
    def __init__(self, cell: str, hidden: int):
        super().__init__()
        self.rnn = nn.LSTM(8, hidden, batch_first=True) if cell == "lstm" else nn.RNN(8, hidden, nonlinearity="relu", batch_first=True)
        self.fc = nn.Linear(hidden, 4)

    def forward(self, x):
        out, _ = self.rnn(x)
        return self.fc(out[:, -1])


def lecture_qrsu(args: argparse.Namespace) -> dict:
    torch.manual_seed(args.seed)
    rng, device = random.Random(args.seed), torch.device(args.device)
    val = [(x.to(device), y.to(device)) for x, y in qrsu_batches(random.Random(1997), args.difficulty, 1000, args.batch_size)]
    model = Classifier(args.cell, args.hidden).to(device)
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.RMSprop(model.parameters(), lr=1e-3)
    epoch_seconds, curve = [], []
    for _ in range(args.epochs):
        start = time.perf_counter()
        model.train()
        running, correct, seen = 0.0, 0, 0
        for x, y in qrsu_batches(rng, args.difficulty, 1000, args.batch_size):
            x, y = x.to(device), y.to(device)
            out = model(x)
            loss = criterion(out, y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            running += loss.item() * len(y)
            correct += (out.argmax(1) == y).sum().item()
            seen += len(y)
        model.eval()
        with torch.no_grad():
            val_correct = sum((model(x).argmax(1) == y).sum().item() for x, y in val)
        epoch_seconds.append(time.perf_counter() - start)
        curve.append(val_correct / 1000)
    return {"seconds_per_epoch": sum(epoch_seconds) / len(epoch_seconds), "val_accuracy": curve}


# -- character LM, word_language_model's way ---------------------------------------------------
class RNNModel(nn.Module):
    def __init__(self, ntoken: int, ninp: int, nhid: int, nlayers: int, dropout: float):
        super().__init__()
        self.drop = nn.Dropout(dropout)
        self.encoder = nn.Embedding(ntoken, ninp)
        self.rnn = nn.LSTM(ninp, nhid, nlayers, dropout=dropout)
        self.decoder = nn.Linear(nhid, ntoken)
        for w in (self.encoder.weight, self.decoder.weight):
            nn.init.uniform_(w, -0.1, 0.1)
        nn.init.zeros_(self.decoder.bias)
        self.nhid, self.nlayers = nhid, nlayers

    def forward(self, input, hidden):
        emb = self.drop(self.encoder(input))
        output, hidden = self.rnn(emb, hidden)
        return self.decoder(self.drop(output)).view(-1, self.decoder.out_features), hidden

    def init_hidden(self, bsz: int):
        weight = next(self.parameters())
        return (weight.new_zeros(self.nlayers, bsz, self.nhid), weight.new_zeros(self.nlayers, bsz, self.nhid))


def batchify(data: torch.Tensor, bsz: int) -> torch.Tensor:
    nbatch = data.size(0) // bsz
    return data.narrow(0, 0, nbatch * bsz).view(bsz, -1).t().contiguous()


def get_batch(source: torch.Tensor, i: int, bptt: int):
    seq_len = min(bptt, len(source) - 1 - i)
    return source[i:i + seq_len], source[i + 1:i + 1 + seq_len].view(-1)


def repackage_hidden(h):
    return h.detach() if isinstance(h, torch.Tensor) else tuple(repackage_hidden(v) for v in h)


def wlm_charlm(args: argparse.Namespace) -> dict:
    torch.manual_seed(args.seed)
    text = open(args.corpus, encoding="utf-8").read()
    vocab = sorted(set(text))
    index = {c: i for i, c in enumerate(vocab)}
    ids = torch.tensor([index[c] for c in text])
    n_val = n_test = int(len(text) * 0.05)
    train_data = batchify(ids[:len(ids) - n_val - n_test], args.batch_size)
    val_data = batchify(ids[len(ids) - n_val - n_test:len(ids) - n_test], 10)
    model = RNNModel(len(vocab), 128, 256, 2, 0.2)
    criterion = nn.NLLLoss()

    def evaluate() -> float:
        model.eval()
        total, hidden = 0.0, model.init_hidden(10)
        with torch.no_grad():
            for i in range(0, val_data.size(0) - 1, args.bptt):
                data, targets = get_batch(val_data, i, args.bptt)
                output, hidden = model(data, hidden)
                total += len(data) * criterion(F.log_softmax(output, -1), targets).item()
                hidden = repackage_hidden(hidden)
        model.train()
        return total / (len(val_data) - 1)

    trained, chars, points, reached = 0.0, 0, [], None
    next_eval = args.eval_seconds
    while trained < args.seconds and reached is None:
        hidden = model.init_hidden(args.batch_size)
        for i in range(0, train_data.size(0) - 1, args.bptt):
            start = time.perf_counter()
            data, targets = get_batch(train_data, i, args.bptt)
            model.zero_grad()
            hidden = repackage_hidden(hidden)
            output, hidden = model(data, hidden)
            loss = criterion(F.log_softmax(output, -1), targets)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 0.25)
            for p in model.parameters():
                p.data.add_(p.grad, alpha=-args.lr)
            loss.item()  # the loop's running total (total_loss += loss.item())
            trained += time.perf_counter() - start
            chars += targets.numel()
            if trained >= next_eval or trained >= args.seconds:
                points.append((round(trained, 2), evaluate()))
                next_eval += args.eval_seconds
                if args.target and points[-1][1] <= args.target:
                    reached = points[-1][0]
                if reached is not None or trained >= args.seconds:
                    break
    return {"chars_per_second": chars / trained, "train_seconds": trained, "val_loss": points,
            "seconds_to_target": reached, "best_val_loss": min(v for _, v in points)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="peer", required=True)
    q = sub.add_parser("lecture_qrsu")
    q.add_argument("--difficulty", default="easy", choices=sorted(RANGES))
    q.add_argument("--cell", default="lstm", choices=["lstm", "rnn"])
    q.add_argument("--hidden", type=int, default=4)
    q.add_argument("--batch-size", type=int, default=32)
    q.add_argument("--epochs", type=int, default=30)
    q.add_argument("--device", default="cpu", help="cpu or cuda (the notebook's .to(device))")
    c = sub.add_parser("wlm_charlm")
    c.add_argument("--corpus", required=True)
    c.add_argument("--batch-size", type=int, default=32)
    c.add_argument("--bptt", type=int, default=64)
    c.add_argument("--lr", type=float, default=20.0)
    c.add_argument("--seconds", type=float, default=60.0, help="training seconds (validation not counted)")
    c.add_argument("--eval-seconds", type=float, default=5.0)
    c.add_argument("--target", type=float, default=None, help="stop at this validation loss (nats)")
    for p in (q, c):
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--threads", type=int, default=1, help="torch threads; 0: torch's default")
    args = parser.parse_args()
    if args.threads:  # 0: torch's own default, as in a notebook
        torch.set_num_threads(args.threads)
    print(json.dumps(lecture_qrsu(args) if args.peer == "lecture_qrsu" else wlm_charlm(args)))


if __name__ == "__main__":
    main()
