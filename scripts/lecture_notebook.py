"""The lecture's own QRSU notebook, as a baseline for `scripts/bench.py`.

The lecture trains QRSU with a Keras-style `Sequence` whose `__getitem__` makes each batch anew:
per sequence, numpy draws (`np.random.randint` for the length and the two positions,
`np.random.choice` over the distractor symbols and over the four classes), a per-sequence one-hot
encoding (Keras' `to_categorical`), then Keras' `pad_sequences` (int32, padded at the front to the
difficulty's length bound), so every batch has the bound's length. An epoch is `int(1000 / 32)` =
31 batches for training and 31 freshly generated test batches; the model is `nn.LSTM` with a
linear layer on every step, of which the last step is scored; `.item()` per batch. TensorFlow is
not a dependency here, so `to_categorical` and `pad_sequences` are re-implemented with the same
behaviour (numpy, a Python loop over the sequences).

`scripts/peers.py lecture_qrsu` is a leaner rewrite of the same loop (the `random` module, a fixed
validation set, padding to the batch's longest); both are measured, this one is what the lecture
runs.

    python scripts/lecture_notebook.py --difficulty easy --hidden 4 --epochs 30
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
import torch.nn as nn

# (length range, t1 range, t2 range), each [low, high) as np.random.randint takes them.
LEVELS = {"easy": ((7, 9), (1, 3), (4, 6)), "normal": ((30, 41), (2, 6), (20, 28)),
          "moderate": ((60, 81), (10, 21), (45, 55)), "hard": ((100, 111), (10, 21), (50, 61))}
RELEVANT, DISTRACTORS, CLASSES = ["X", "Y"], ["a", "b", "c", "d"], ["Q", "R", "S", "U"]
SYMBOLS = RELEVANT + DISTRACTORS + ["B", "E"]


def to_categorical(indices, num_classes: int) -> np.ndarray:
    y = np.array(indices, dtype="int").ravel()
    out = np.zeros((y.shape[0], num_classes), dtype="float32")
    out[np.arange(y.shape[0]), y] = 1
    return out


def pad_sequences(sequences, maxlen: int, dtype: str = "int32") -> np.ndarray:
    """Keras' defaults: pad and truncate at the front, with zeros."""
    sample_shape = np.asarray(sequences[0]).shape[1:]
    x = np.full((len(sequences), maxlen) + sample_shape, 0, dtype=dtype)
    for i, s in enumerate(sequences):
        kept = np.asarray(s[-maxlen:], dtype=dtype)
        x[i, -len(kept):] = kept
    return x


class QRSUSequence:
    def __init__(self, difficulty: str, batch_size: int = 32):
        self.length_range, self.t1_range, self.t2_range = LEVELS[difficulty]
        self.batch_size = batch_size
        self.index = {s: i for i, s in enumerate(SYMBOLS)}

    def pair(self) -> tuple[str, str]:
        length = np.random.randint(*self.length_range)
        t1, t2 = np.random.randint(*self.t1_range), np.random.randint(*self.t2_range)
        x = np.random.choice(DISTRACTORS, length)
        x[0], x[-1] = "B", "E"
        y = np.random.choice(CLASSES)
        first, second = {"Q": "XX", "R": "XY", "S": "YX", "U": "YY"}[str(y)]
        x[t1], x[t2] = first, second
        return "".join(x), str(y)

    def __len__(self) -> int:
        return int(1000.0 / self.batch_size)

    def __getitem__(self, _: int) -> tuple[np.ndarray, np.ndarray]:
        pairs = [self.pair() for _ in range(self.batch_size)]
        xs = pad_sequences([to_categorical([self.index[s] for s in x], len(SYMBOLS)) for x, _ in pairs],
                           maxlen=self.length_range[1])
        ys = np.array([to_categorical([CLASSES.index(y)], len(CLASSES))[0] for _, y in pairs])
        return xs, ys


class SimpleLSTM(nn.Module):
    def __init__(self, hidden: int):
        super().__init__()
        self.lstm = nn.LSTM(len(SYMBOLS), hidden, batch_first=True)
        self.linear = nn.Linear(hidden, len(CLASSES))

    def forward(self, x):
        return self.linear(self.lstm(x)[0])


def run_epoch(model, data, criterion, optimizer, device, train: bool) -> int:
    model.train(train)
    correct = 0
    with torch.set_grad_enabled(train):
        for index in range(len(data)):
            x, y = data[index]
            x, y = torch.from_numpy(x).float().to(device), torch.from_numpy(y).long().to(device)
            out = model(x)[:, -1, :]
            target = y.argmax(dim=1)
            loss = criterion(out, target)
            if train:
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            correct += (out.argmax(dim=1) == target).sum().item()
    return correct


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--difficulty", default="easy", choices=sorted(LEVELS))
    parser.add_argument("--hidden", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=8382, help="the lecture generator's default seed")
    parser.add_argument("--threads", type=int, default=0, help="torch threads; 0: torch's default, as a notebook")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    device = torch.device(args.device)
    train_data, test_data = QRSUSequence(args.difficulty), QRSUSequence(args.difficulty)
    model = SimpleLSTM(args.hidden).to(device)
    criterion, optimizer = nn.CrossEntropyLoss(), torch.optim.RMSprop(model.parameters(), lr=1e-3)
    seconds, curve = [], []
    for _ in range(args.epochs):
        start = time.perf_counter()
        run_epoch(model, train_data, criterion, optimizer, device, train=True)
        correct = run_epoch(model, test_data, criterion, optimizer, device, train=False)
        seconds.append(time.perf_counter() - start)
        curve.append(correct / (len(test_data) * test_data.batch_size))
    print(json.dumps({"seconds_per_epoch": sum(seconds) / len(seconds), "val_accuracy": curve}))


if __name__ == "__main__":
    main()
