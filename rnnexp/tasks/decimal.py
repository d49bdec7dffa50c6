"""Binary to decimal: one vector in, a sequence out (the lecture's vector -> sequence: an image
in, its description out, word by word).

    rnnexp task=decimal model=seq2seq                      (16 bits: 0 to 65,535)
    rnnexp -m experiment=vector_to_sequence                (exact match against the number of bits)

The input is one vector, the `task.bits`-bit binary code of a number n (most significant bit
first, as 0.0/1.0 features); the answer is n's decimal digits, most significant first, then the
end token `$` (n = 2026: "2026$"), or with `task.words=true` its English words, one symbol a
word (n = 2026: "two thousand twenty six $"). The encoder reads the vector as a sequence of one step, so its
state is the vector that starts the decoder; the decoder writes the digits, reading the true
previous digit in training (teacher forcing) and its own in validation and test.

Every number belongs to one part, train, validation or test, by a hash of its bits (70/15/15),
however few the numbers (from 5 bits: 20, 7 and 5 of the 32): the test numbers are never seen in
training, so a model must learn the conversion, not a table. (The held-out sets then repeat their
few numbers; results.json counts the distinct ones.)
Scores as for reversal (rnnexp.tasks.decoding): accuracy per digit (or word), exact match per
number. Baseline: every symbol equally likely (loss ln 11, accuracy 1/11, exact match 0; words:
34 symbols).
"""

from __future__ import annotations

from dataclasses import dataclass

from rnnexp.errors import ConfigError, require
from rnnexp.lazy import torch  # on first use: config checks need no torch
from rnnexp.tasks.base import Batch
from rnnexp.tasks.decoding import WritesSequence, shift_right
from rnnexp.tasks.fixed_sets import FixedSetConfig, FixedSetTask

END = 10                  # the end token, after the ten digits
LABELS = [*map(str, range(10)), "$"]
MIN_BITS = 5              # 32 numbers: 20 train, 7 validation, 5 test (every part holds some)
MAX_BITS = 40             # numbers up to 2^40 (13 digits) fit in torch's int64 arithmetic here
ONES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
        "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"]
TENS = ["twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
SCALES = [(10 ** 12, "trillion"), (10 ** 9, "billion"), (10 ** 6, "million"), (1000, "thousand")]  # (2^40 < 10^15)
WORDS = [*ONES, *TENS, "hundred", *(name for _, name in reversed(SCALES))]


@dataclass
class DecimalConfig(FixedSetConfig):
    bits: int             # the binary code's width: numbers 0 .. 2^bits - 1
    words: bool = False   # the answer in English words (one symbol a word), not digits

    def validate(self) -> None:
        super().validate()
        require(MIN_BITS <= self.bits <= MAX_BITS, "task.bits", self.bits,
                f"use {MIN_BITS} <= bits <= {MAX_BITS} (fewer leave a part of the hash split without a number)")


def number_words(n: int) -> list[str]:
    """n in English words, one a list item: 2026 -> two thousand twenty six (no "and", no hyphens)."""
    def below_thousand(m: int) -> list[str]:
        words = [ONES[m // 100], "hundred"] if m >= 100 else []
        m %= 100
        if m >= 20:
            words.append(TENS[m // 10 - 2])
            m %= 10
        return words + ([ONES[m]] if m else [])

    if n == 0:
        return ["zero"]
    words = []
    for scale, name in SCALES:
        if n >= scale:
            words += [*below_thousand(n // scale), name]
            n %= scale
    return words + (below_thousand(n) if n else [])


def digits_of(bits: int) -> int:
    """Decimal digits of the largest number of `bits` bits."""
    return len(str(2 ** bits - 1))


class DecimalTask(WritesSequence, FixedSetTask):
    name = "decimal"
    Config = DecimalConfig
    unit = "digits"
    curriculum_key = "bits"
    vocab_size, num_classes = 0, END + 1
    symbol_labels = LABELS

    symbol_separator = ""

    def __init__(self, cfg: DecimalConfig, batch_size: int, seed: int):
        self.input_size = cfg.bits
        if cfg.words:  # (one symbol a word, the end token last)
            self.symbol_labels, self.symbol_separator, self.num_classes = [*WORDS, "$"], " ", len(WORDS) + 1
            self.unit = "words"
        super().__init__(cfg, batch_size, seed)

    def draw(self, cfg: DecimalConfig, n: int, generator: torch.Generator) -> tuple[torch.Tensor]:
        """(n, bits) binary codes, most significant bit first, uniform over the numbers of `cfg.bits`
        bits (a curriculum's narrower stage: the leading bits are 0)."""
        numbers = torch.randint(0, 2 ** cfg.bits, (n,), generator=generator)
        return (self.code(numbers, self.cfg.bits),)

    @staticmethod
    def code(numbers: torch.Tensor, bits: int) -> torch.Tensor:
        shifts = torch.arange(bits - 1, -1, -1)
        return (numbers.unsqueeze(1) >> shifts) & 1

    def space(self, cfg: DecimalConfig) -> int:
        return 2 ** cfg.bits

    def is_split(self, cfg: DecimalConfig) -> bool:
        return True  # (however few the numbers: a test number is never a trained one, the task's point)

    def make_batch(self, cfg: DecimalConfig, codes: torch.Tensor) -> Batch:
        """Codes (B, bits) -> inputs (B, 1, bits), answers (B, digits + 1): the digits then `$` (in
        words: (B, the most words + 1), each number's words then `$`)."""
        width = codes.shape[1]
        numbers = (codes.long() * (2 ** torch.arange(width - 1, -1, -1))).sum(1)
        if self.cfg.words:
            return self.words_batch(codes, numbers)
        places = digits_of(width)
        steps = places + 1
        # every number with `places` digits, leading zeros included, then moved left by its zeros
        padded = numbers.unsqueeze(1) // 10 ** torch.arange(places - 1, -1, -1) % 10
        lengths = torch.stack([numbers >= 10 ** k for k in range(1, places)], 1).sum(1) + 1 if places > 1 \
            else torch.ones_like(numbers)
        index = (torch.arange(steps).unsqueeze(0) + (places - lengths).unsqueeze(1)).clamp(max=places - 1)
        answers = torch.where(torch.arange(steps).unsqueeze(0) < lengths.unsqueeze(1), padded.gather(1, index), END)
        mask = torch.arange(steps).unsqueeze(0) <= lengths.unsqueeze(1)
        return Batch(codes.float().unsqueeze(1), answers, mask=mask, lengths=torch.ones_like(lengths),
                     decoder_inputs=shift_right(answers, self.num_classes))

    def words_batch(self, codes: torch.Tensor, numbers: torch.Tensor) -> Batch:
        index = {word: i for i, word in enumerate(WORDS)}
        answers = [[index[word] for word in number_words(int(n))] for n in numbers]
        steps, end = max(map(len, answers)) + 1, len(WORDS)
        targets = torch.tensor([ids + [end] * (steps - len(ids)) for ids in answers], dtype=torch.long)
        lengths = torch.tensor([len(ids) for ids in answers])
        mask = torch.arange(steps).unsqueeze(0) <= lengths.unsqueeze(1)
        return Batch(codes.float().unsqueeze(1), targets, mask=mask, lengths=torch.ones_like(lengths),
                     decoder_inputs=shift_right(targets, self.num_classes))

    # -- what a run shows --------------------------------------------------------------------
    def max_lag(self) -> int:
        if self.cfg.words:  # (at most 4 words a group of 3 digits, and a scale word between groups)
            groups = -(-digits_of(self.cfg.bits) // 3)
            return 5 * groups
        return digits_of(self.cfg.bits) + 1

    def max_length(self) -> int:
        return 1

    def labels(self, batch: Batch) -> list[str]:
        return ["".join(str(int(b)) for b in batch.inputs[0, 0].tolist())]

    def parse(self, text: str) -> tuple[torch.Tensor]:
        """A number in decimal ("2026"), binary ("0b11111101010") or as the code itself (exactly
        task.bits binary digits: "0000011111101010" for 16 bits)."""
        word, bits = text.strip().replace("_", "").replace(",", ""), self.cfg.bits
        try:
            if len(word) == bits and set(word) <= {"0", "1"}:
                n = int(word, 2)  # (the code itself: exactly task.bits binary digits)
            else:
                n = int(word, 0) if word.lower().startswith(("0b", "0x")) else int(word)
        except ValueError:
            n = -1
        if not 0 <= n < 2 ** bits:
            top = 2 ** bits - 1
            raise ConfigError(f"example {text!r} is invalid: use a number from 0 to {top} (task.bits={bits}), in "
                              f"decimal ({top // 3}), binary with 0b ({bin(top // 3)}) or as the code's {bits} bits "
                              f"({format(top // 3, f'0{bits}b')})")
        return (self.code(torch.tensor([n]), self.cfg.bits),)

    def describe(self) -> str:
        c = self.cfg
        out = "its English words out, one symbol a word," if c.words else "its decimal digits out"
        return (f"decimal: the {c.bits}-bit code of a number (0 to {2 ** c.bits - 1:,}) in, {out} "
                f"then '$'; {c.train_size} fresh numbers per epoch, {c.val_size} val, {c.test_size} test (parts of a "
                f"hash split: test numbers never trained on)")

