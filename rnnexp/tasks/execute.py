"""Learning to execute (Zaremba & Sutskever 2014): read a small Python program character by
character, then write what it prints.

    rnnexp task=execute model=lstm                    the paper's form: one LSTM reads the program,
                                                      then the answer's digits, each after the true previous one
    rnnexp task=execute model=seq2seq                 an encoder reads the program, a decoder writes the answer
    rnnexp task=execute task.operations=addition      the paper's addition task: print(a+b)
    rnnexp -m experiment=learning_to_execute          the curriculum strategies x 3 seeds

Programs are generated as in the paper: `task.length` is the digits of every number, `task.nesting`
how many operations are composed, each one of addition, subtraction, multiplication by a small
number (at most 4 x length), an if-expression, an assignment to a variable and a for-loop adding
to one. E.g. (length 4, nesting 2):

    j=8584
    for _ in range(8):j+=920
    print((j+7567))               -> 23511.

The answer is the printed integer's characters and the end token '.'. Every program belongs to one
part, train, validation or test, by a hash of its characters (the paper split them by a hash mod 3).

Two forms of model, both scored on the answer's characters:
* the paper's (a recurrent model, `model=lstm|gru|rnn`): one sequence, the program, then the start
  token and the answer's characters but the last; the output at each answer position predicts the
  next character (the model's own output in greedy decoding);
* an encoder-decoder (`model=seq2seq`): the decoder starts from the encoder's state.
Metrics: `forced_accuracy` per character with the true previous character as input (the paper's
99%), `accuracy` per character and `exact_match` per answer of greedy decoding (which selects).
A test checks every generated program with Python itself.
"""

from __future__ import annotations

import random
import re
import signal
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any, Iterator, Optional

from rnnexp.errors import ConfigError, require, require_choice
from rnnexp.lazy import torch  # on first use: config checks need no torch
from rnnexp.tasks.base import Batch
from rnnexp.tasks.decoding import WritesSequence, shift_right
from rnnexp.tasks.fixed_sets import FixedSetConfig, FixedSetTask

OPERATIONS = ("all", "addition")
STEPS = ("add", "subtract", "multiply", "if", "assign", "loop")
VARIABLES = "abcdefghij"
#: The characters programs are written in, and the answers' (an integer, then the end token '.').
PROGRAM_CHARS = sorted(set("0123456789abcdefghijklmnopqrstuvwxyz()+-*<=:_ \n"))
ANSWER_CHARS = [*"0123456789-", "."]
END = len(ANSWER_CHARS) - 1
#: Token ids of the one-sequence form: the program's characters, then the answer's, then the start token.
TOKENS = PROGRAM_CHARS + [f"answer {c}" for c in ANSWER_CHARS] + ["start"]
PROGRAM_WIDTH, ANSWER_WIDTH = 400, 40
MAX_LOOP = 10 ** 6  # the longest loop a typed example may run
EXAMPLE_SECONDS = 2  # and the time it may take  # drawn programs and answers are padded to these (hash split: a fixed width)


@dataclass
class ExecuteConfig(FixedSetConfig):
    length: int            # digits of every number in a program
    nesting: int           # operations composed
    operations: str        # all | addition (the paper's print(a+b))

    def validate(self) -> None:
        super().validate()
        require(1 <= self.length <= 9, "task.length", self.length, "use 1 <= length <= 9 digits")
        require(1 <= self.nesting <= 4, "task.nesting", self.nesting, "use 1 <= nesting <= 4")
        require_choice("task.operations", self.operations, OPERATIONS)


def number(rng: random.Random, length: int) -> int:
    return rng.randint(10 ** (length - 1) if length > 1 else 0, 10 ** length - 1)


def expression(rng: random.Random, length: int, nesting: int) -> tuple[list[str], str, int]:
    """(statements before it, its text, its value) of an expression of `nesting` operations."""
    if nesting == 0:
        n = number(rng, length)
        return [], str(n), n
    lines, text, value = expression(rng, length, nesting - 1)
    step, other = rng.choice(STEPS), number(rng, length)
    if step == "add":
        return lines, f"({text}+{other})", value + other
    if step == "subtract":
        return lines, f"({text}-{other})", value - other
    if step == "multiply":
        k = rng.randint(1, 4 * length)
        return lines, f"({text}*{k})", value * k
    if step == "if":
        a, b = number(rng, length), number(rng, length)
        return lines, f"({text} if {a}<{b} else {other})", value if a < b else other
    name = rng.choice(VARIABLES)
    if step == "assign":
        return [*lines, f"{name}={text}"], name, value
    k = rng.randint(1, 4 * length)  # loop: name = value, then `other` added k times
    return [*lines, f"{name}={text}", f"for _ in range({k}):{name}+={other}"], name, value + k * other


def program(rng: random.Random, cfg: ExecuteConfig) -> tuple[str, int]:
    """A program and the integer it prints."""
    if cfg.operations == "addition":
        a, b = number(rng, cfg.length), number(rng, cfg.length)
        return f"print({a}+{b})", a + b
    lines, text, value = expression(rng, cfg.length, cfg.nesting)
    return "\n".join([*lines, f"print({text})"]), value


def encode(texts: list[str], alphabet: list[str], width: int) -> torch.Tensor:
    """Texts -> (n, width) ids in `alphabet`, -1 after each text's end."""
    index = {c: i for i, c in enumerate(alphabet)}
    ids = torch.full((len(texts), width), -1, dtype=torch.long)
    for row, text in enumerate(texts):
        ids[row, :len(text)] = torch.tensor([index[c] for c in text], dtype=torch.long)
    return ids


class ExecuteTask(WritesSequence, FixedSetTask):
    name = "execute"
    Config = ExecuteConfig
    unit = "chars"
    curriculum_key = "length"
    #: Runs in the paper's one-sequence form with a plain recurrent model too (see `forward`).
    one_sequence = True
    input_size, vocab_size, num_classes = 0, len(TOKENS), len(ANSWER_CHARS)
    symbol_labels = ANSWER_CHARS

    # -- data --------------------------------------------------------------------------------
    @classmethod
    def stage_config(cls, cfg: ExecuteConfig, value: Any) -> ExecuteConfig:
        """A stage is a length (`3`) or a length and a nesting (`3x2`): the paper's naive curriculum
        goes through the lengths at nesting 1, then again at nesting 2, and so on."""
        if isinstance(value, str) and re.fullmatch(r"\d+x\d+", value):
            length, nesting = (int(part) for part in value.split("x"))
            return replace(cfg, length=length, nesting=nesting)
        if isinstance(value, str):
            raise ConfigError(f"stage {value!r} is invalid: a stage of task=execute is a length (3) or a length and "
                              f"a nesting (3x2), e.g. train.curriculum=[1x1,2x1,1x2,2x2]")
        return super().stage_config(cfg, value)

    def mix_configs(self, stages: list[Any]) -> list[tuple[Any, Any]]:
        """The paper's mix: each example's length (the curriculum's stages' and the target's) and,
        for programs of every operation, its nesting (1 to the target's), uniformly."""
        lengths: dict[int, Any] = {}  # length -> the first stage of it (None: the target's), as reported
        for stage, cfg in super().mix_configs(stages):
            lengths.setdefault(cfg.length, stage)
        nestings = [self.cfg.nesting] if self.cfg.operations == "addition" else range(1, self.cfg.nesting + 1)
        return [(stage, replace(self.cfg, length=length, nesting=nesting))
                for length, stage in sorted(lengths.items()) for nesting in nestings]

    def draw(self, cfg: ExecuteConfig, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """(n, PROGRAM_WIDTH) program characters and (n, ANSWER_WIDTH) answers (-1 padded); the
        programs come from a Python generator seeded by `generator` (one number per draw)."""
        rng = random.Random(int(torch.randint(0, 2 ** 62, (1,), generator=generator)))
        drawn = [program(rng, cfg) for _ in range(n)]
        answers = [f"{value}." for _, value in drawn]
        return encode([text for text, _ in drawn], PROGRAM_CHARS, PROGRAM_WIDTH), encode(answers, ANSWER_CHARS, ANSWER_WIDTH)

    def space(self, cfg: ExecuteConfig) -> int:
        """Distinct programs, at least: the numbers (one per operation, and the first) and the operations."""
        numbers = 10 ** cfg.length - (10 ** (cfg.length - 1) if cfg.length > 1 else 0)
        if cfg.operations == "addition":
            return numbers * numbers
        return numbers ** (cfg.nesting + 1) * len(STEPS) ** cfg.nesting

    def make_batch(self, cfg: Any, programs: torch.Tensor, answers: torch.Tensor) -> Batch:
        """Programs (B, S) as token ids with their lengths, trimmed to the longest; answers (B, T)
        with '.' after each, the mask scoring the answer and its '.'."""
        lengths = (programs >= 0).sum(1)
        answer_lengths = (answers >= 0).sum(1)
        source = programs[:, :max(1, int(lengths.max()))].clamp(min=0)
        targets = answers[:, :int(answer_lengths.max())]
        mask = targets >= 0
        targets = targets.masked_fill(~mask, END)
        return Batch(source, targets, mask=mask, lengths=lengths, decoder_inputs=shift_right(targets, self.num_classes))

    # -- the paper's form: one recurrent model reads the program, then the answer --------------
    def forward(self, model: Any, batch: Batch, state: Any) -> tuple[torch.Tensor, Any]:
        return super().forward(as_decoder(model), batch, state)

    def predict(self, model: Any, batch: Batch, state: Any) -> tuple[Any, Any]:
        return super().predict(as_decoder(model), batch, state)

    # -- what a run shows --------------------------------------------------------------------
    def max_lag(self) -> int:
        return PROGRAM_WIDTH

    def max_length(self) -> int:
        return PROGRAM_WIDTH + ANSWER_WIDTH

    def labels(self, batch: Batch) -> list[str]:
        n = int(batch.lengths[0]) if batch.lengths is not None else batch.inputs.shape[1]
        return [PROGRAM_CHARS[int(k)] for k in batch.inputs[0, :n]]

    def parse(self, text: str) -> tuple[torch.Tensor, torch.Tensor]:
        """A program typed by the user (lines separated by ';' or newlines); Python runs it for the answer."""
        source = text.replace(";", "\n").strip()
        bad = sorted(set(source) - set(PROGRAM_CHARS))
        if bad or len(source) > PROGRAM_WIDTH:
            why = f"{bad[0]!r} is not a character programs here use" if bad else f"it is longer than {PROGRAM_WIDTH}"
            raise ConfigError(f"example {text!r} is invalid ({why}): write a small program such as "
                              f"'a=12;print((a+3))' (digits, lower-case letters, ()+-*<=:_ and spaces)")
        printed: list[str] = []

        def bounded_range(n: int) -> range:  # (an example runs here: no endless loop)
            if n > MAX_LOOP:
                raise ValueError(f"range({n}) is more than {MAX_LOOP:,} steps")
            return range(n)

        if "**" in source:  # (a power is no operation of these programs, and 9**9**9 would never end)
            raise ConfigError(f"example {text!r} uses '**', which these programs never do; write one with "
                              f"+ - * (by a small number), if-else, assignments and for-loops")
        try:
            with time_limit(EXAMPLE_SECONDS):
                exec(compile(source, "<example>", "exec"), {"__builtins__": {"print": lambda v: printed.append(str(v)),
                                                                             "range": bounded_range}})
        except TimeoutError:
            raise ConfigError(f"example {text!r} does not finish within {EXAMPLE_SECONDS} s; write a program that "
                              f"ends, e.g. 'a=12;print((a+3))'") from None
        except Exception as err:  # noqa: BLE001 - the user's program: any error is a bad example
            raise ConfigError(f"example {text!r} does not run ({type(err).__name__}: {err}); write a program "
                              f"that prints one integer, e.g. 'a=12;print((a+3))'") from None
        if len(printed) != 1 or not printed[0].lstrip("-").isdigit():
            raise ConfigError(f"example {text!r} must print exactly one integer (it printed {printed}); e.g. 'print(12+3)'")
        if len(printed[0]) >= ANSWER_WIDTH:
            raise ConfigError(f"example {text!r} prints {len(printed[0])} characters; answers here have at most "
                              f"{ANSWER_WIDTH - 1}: use smaller numbers")
        return encode([source], PROGRAM_CHARS, PROGRAM_WIDTH), encode([printed[0] + "."], ANSWER_CHARS, ANSWER_WIDTH)

    def example(self, text: Optional[str] = None) -> Any:
        example = super().example(text)
        b, n = example.batch, int(example.batch.lengths[0])  # type: ignore[index]
        t = int(b.mask[0].sum())  # type: ignore[index]  (its own answer, not the batch's longest)
        example.batch = Batch(b.inputs[:, :n], b.targets[:, :t], mask=b.mask[:, :t], lengths=b.lengths,  # type: ignore[index]
                              decoder_inputs=b.decoder_inputs[:, :t])  # type: ignore[index]
        example.labels = self.labels(example.batch)
        return example

    def replay_view(self, example: Any) -> tuple[Batch, Any, list[str]]:
        """The one-sequence form (a recurrent model's pictures): the program, the start token '^' and
        the answer's characters, scored at the answer's positions."""
        from rnnexp.models.one_sequence import one_sequence
        from rnnexp.tasks.decoding import sequence_score

        b = example.batch
        tokens = one_sequence(b.inputs, b.decoder_inputs, b.lengths, len(PROGRAM_CHARS))
        source, answer = b.inputs.shape[1], b.targets.shape[1]
        score = lambda outputs, batch: sequence_score(outputs[:, source:source + answer], batch.targets, batch.mask)  # noqa: E731
        labels = [*example.labels, "^", *(ANSWER_CHARS[int(k)] for k in b.targets[0, :answer - 1])]
        return Batch(tokens, b.targets, mask=b.mask), score, labels

    def describe(self) -> str:
        c = self.cfg
        what = "print(a+b)" if c.operations == "addition" else f"programs of nesting {c.nesting}"
        return (f"execute: {what} with {c.length}-digit numbers, answer written character by character; "
                f"{c.train_size} fresh programs per epoch, {c.val_size} val, {c.test_size} test (parts of a hash split)")


def as_decoder(model: Any) -> Any:
    """An encoder-decoder as it is; a plain recurrent model in the paper's one-sequence form."""
    if getattr(model, "reads_decoder_inputs", False):
        return model
    from rnnexp.models.one_sequence import OneSequence

    return OneSequence(model, program_tokens=len(PROGRAM_CHARS))


@contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """TimeoutError after `seconds` (a typed example's `while 1: pass`); where no alarm can be set
    (not the main thread, not Unix), no limit."""
    if not hasattr(signal, "setitimer"):
        yield
        return

    def expire(signum: int, frame: Any) -> None:
        raise TimeoutError

    try:
        previous = signal.signal(signal.SIGALRM, expire)
    except ValueError:  # not the main thread
        yield
        return
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
