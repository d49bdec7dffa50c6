"""What a new user hits first: mistyped presets and keys, free text on the command line, sweep
tables on an 80-column terminal, and --help's examples."""

from __future__ import annotations

import io
import json
import re
import shlex
from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf
from rich.console import Console

from rnnexp.argv import (RNNEXP_FREE_TEXT, RNNEXP_SWEEPABLE, SAMPLE_FREE_TEXT, hydra_value, literal_container,
                         parse_override, quote_free_text)
from rnnexp.report.errors import selected_tasks, unknown_key_message
from rnnexp.sweep.summary import print_summary, read_jobs, seed_groups, summarise
from tests.test_cli import run_main
from tests.conftest import MODEL_YAMLS, REPO

PRESETS = "choose experiment= one of " + ", ".join(sorted(p.stem for p in (REPO / "conf" / "experiment").glob("*.yaml")))
GROUPS = "groups: task, model, train, experiment, hparams_search, hydra/launcher"


def one_error_line(monkeypatch, capsys, tmp_path, *args) -> str:
    """Run `rnnexp ARGS`; it must exit 2 with one line on stderr and leave no outputs/ behind."""
    code, _, err = run_main(monkeypatch, capsys, tmp_path, *args)
    lines = err.strip().splitlines()
    assert code == 2, (args, code, err)
    assert len(lines) == 1 and lines[0].startswith("rnnexp: error: "), (args, err)
    assert not (tmp_path / "outputs").exists(), f"{args} created an output directory"
    return lines[0]


# -- 1. a wrong group option, presets included, is an error that lists the choices -------------

@pytest.mark.parametrize("args, expected", [
    (["experiment=lecture_qrs"], f"did you mean experiment=lecture_qrsu? {PRESETS}"),
    (["experiment=banana"], PRESETS),
    (["experiment=Lecture_QRSU", "task=echo"], PRESETS),
    (["-m", "experiment=lecture_ech"], f"did you mean experiment=lecture_echo? {PRESETS}"),
    (["hparams_search=qrsu_optuma"], "did you mean hparams_search=qrsu_optuna? "
                                     "choose hparams_search= one of charlm_optuna, qrsu_optuna"),
    (["model=lstmm"], "choose model= one of " + ", ".join(sorted(p.stem for p in MODEL_YAMLS))),
    (["task=qrsuu"], "did you mean task=qrsu? choose task= one of "),
    (["train=fast"], "choose train= one of default"),
    (["hydra/launcher=local_paralel"], "did you mean hydra/launcher=local_parallel? choose hydra/launcher= one of"),
    (["experiment=null"], f"experiment=null: a config group takes an option name, not null; leave experiment= "
                          f"out for none, or {PRESETS}"),
    (["model=null"], "model=null: a config group takes an option name, not null; choose model= one of "
     + ", ".join(sorted(p.stem for p in MODEL_YAMLS))),
])
def test_a_wrong_group_option_exits_2_with_the_valid_choices(monkeypatch, capsys, tmp_path, args, expected):
    assert expected in one_error_line(monkeypatch, capsys, tmp_path, *args)


def test_without_a_preset_it_is_one_run_and_a_preset_is_still_a_sweep(monkeypatch, capsys, tmp_path):
    code, out, err = run_main(monkeypatch, capsys, tmp_path, "--cfg", "hydra")
    assert code == 0, err
    assert re.search(r"^  mode: null$", out, flags=re.M)
    code, out, err = run_main(monkeypatch, capsys, tmp_path, "--cfg", "hydra", "experiment=lecture_qrsu")
    assert code == 0, err
    assert re.search(r"^  mode: MULTIRUN$", out, flags=re.M) and "train.seed: 1,2,3" in out
    assert not (tmp_path / "outputs").exists()


# -- 2. unknown keys: the group or key meant, never the key typed --------------------------------

ECHO_KEYS = "echo's keys: task.carry_state, task.chunk_length, task.delay"


@pytest.mark.parametrize("args, expected", [
    (["task=echo", "task.difficulty=hard"], f"task.difficulty is a key of task=qrsu, not task=echo; {ECHO_KEYS}"),
    (["experiment=lecture_echo", "task.difficulty=hard"], "task.difficulty is a key of task=qrsu, not task=echo"),
    (["task.delay=3"], "task.delay is a key of task=copy and task=echo, not task=qrsu; qrsu's keys: task.difficulty"),
    (["tsak=qrsu"], f"tsak is not a config group or key; did you mean task=qrsu? ({GROUPS};"),
    (["Task=echo"], "did you mean task=echo?"),
    (["modle=gru"], "did you mean model=gru?"),
    (["experimnt=lecture_qrsu"], "did you mean experiment=lecture_qrsu?"),
    (["hydra/launchr=joblib"], "did you mean hydra/launcher=joblib?"),
    (["epochs=3"], "epochs is not a config group or key; did you mean train.epochs=3?"),
    (["train.lrr=1"], "train.lrr is not a known key; did you mean train.lr?"),
    (["trian.epochs=2"], "trian.epochs is not a known key; did you mean train.epochs?"),
    (["model.lr=1"], "model.lr is not a known key; did you mean train.lr?"),
    (["model.hiden_size=3"], "did you mean model.hidden_size?"),
    (["task.difficultyy=hard"], "task.difficultyy is not a key of task=qrsu; did you mean task.difficulty?"),
    (["task=echo", "task.dellay=3"], "task.dellay is not a key of task=echo; did you mean task.delay?"),
    (["task=echo", "task.difficultyy=hard"], "task.difficulty is a key of task=qrsu; echo's keys:"),
    (["hydra.run.dirr=x"], "hydra.run.dirr is not a known key; did you mean hydra.run.dir?"),
])
def test_an_unknown_key_names_what_was_meant(monkeypatch, capsys, tmp_path, args, expected):
    line = one_error_line(monkeypatch, capsys, tmp_path, *args)
    assert expected in line, line
    typed = args[-1].split("=", 1)[0]
    assert f"did you mean {typed}?" not in line and f"did you mean {typed}=" not in line


def test_unknown_key_message_for_the_config_check_knows_the_task():
    """The function config.py's typed() can call for `+task.difficulty=hard` with task=echo."""
    message = unknown_key_message("task.difficulty", tasks=["echo"])
    assert message.startswith("task.difficulty is a key of task=qrsu, not task=echo; echo's keys: ")
    assert "task.difficulty?" not in message
    assert unknown_key_message("promt", known_keys=["run", "prompt", "length"]) == \
        "promt is not a known key; did you mean prompt?"


def test_the_chosen_task_comes_from_the_command_line_then_the_preset_then_the_default():
    assert selected_tasks([]) == ["qrsu"]
    assert selected_tasks(["experiment=lecture_echo"]) == ["echo"]
    assert selected_tasks(["experiment=lecture_echo", "task=charlm"]) == ["charlm"]
    assert selected_tasks(["-m", "task=qrsu,echo"]) == ["qrsu", "echo"]


# -- 3. free text on the command line ----------------------------------------------------------

TEXTS = ["it's", 'say "hi"', "café naïve", "Zürich", "książka.txt", "a,b", "x=y", "end\\", "\\", "a\\'b",
         "both ' and \"", "'quoted inside' too", "new\nline", "tab\there", "emoji 😀", "${oc.env:HOME}",
         "a\\${b}", "${", "", "  spaced  ", "123", "1e3", "true", "null", "[1,2]", "{a: 1}", "ROMEO:",
         "a\\,b", "'", '"', "choice(a,b)", "~x", "$HOME", "50%", "日本語のテキスト", "Ελληνικά"]


def read_back(arg: str) -> str:
    """What the run sees: Hydra's value, then OmegaConf's reading of it."""
    value = hydra_value(arg)
    return OmegaConf.create({"value": value}).value


@pytest.mark.parametrize("text", TEXTS)
def test_any_text_survives_hydra_and_omegaconf(text):
    for key, keys in (("prompt", SAMPLE_FREE_TEXT), ("run", SAMPLE_FREE_TEXT), ("task.corpus", RNNEXP_FREE_TEXT),
                      ("train.resume", RNNEXP_FREE_TEXT)):
        (arg,) = quote_free_text([f"{key}={text}"], keys)
        assert arg.startswith(f"{key}=")
        assert read_back(arg) == text, (text, arg)


@pytest.mark.parametrize("typed, meant", [
    ("prompt='ROMEO:'", "ROMEO:"),          # already quoted for Hydra: kept as typed
    ('prompt="ROMEO:"', "ROMEO:"),
    ("prompt=ROMEO:", "ROMEO:"),
    ("prompt='it's'", "it's"),              # quotes around text that holds one
    ('prompt="say "hi""', 'say "hi"'),
    ("prompt=\"'hi'\"", "'hi'"),             # the quotes themselves, quoted
    ("prompt=''", ""),
    ("train.resume='outputs/multirun/2026-11-27/14-05-00/0_model=rnn,train.seed=1'",
     "outputs/multirun/2026-11-27/14-05-00/0_model=rnn,train.seed=1"),
])
def test_a_value_the_user_quoted_means_its_inside(typed, meant):
    (arg,) = quote_free_text([typed], RNNEXP_FREE_TEXT | SAMPLE_FREE_TEXT)
    assert read_back(arg) == meant
    if typed in ("prompt='ROMEO:'", 'prompt="ROMEO:"', "prompt=ROMEO:"):
        assert arg == typed


def test_other_keys_flags_and_sweeps_are_left_alone():
    argv = ["-m", "model=rnn,lstm", "train.lr=1e-3", "--cfg", "job", "task=charlm", "train.seed=1,2,3",
            "hydra/launcher=joblib", "+task.corpus=book.txt", "task.corpus=choice(a.txt,b.txt)"]
    assert quote_free_text(argv, RNNEXP_FREE_TEXT, RNNEXP_SWEEPABLE) == argv


def test_in_a_sweep_commas_separate_corpora_each_quoted():
    (_, arg) = quote_free_text(["-m", "task.corpus=a.txt,książka.txt,'x,y.txt'"], RNNEXP_FREE_TEXT, RNNEXP_SWEEPABLE)
    jobs = [getattr(value, "text", value) for value in parse_override(arg).sweep_iterator()]
    assert jobs == ["a.txt", "książka.txt", "x,y.txt"]
    (arg,) = quote_free_text(["task.corpus=a.txt,książka.txt"], RNNEXP_FREE_TEXT, RNNEXP_SWEEPABLE)
    assert read_back(arg) == "a.txt,książka.txt"  # a single run: one file name


def test_hydra_dirs_keep_their_interpolations():
    (arg,) = quote_free_text(["hydra.run.dir=out/${now:%H-%M}/my run"], RNNEXP_FREE_TEXT)
    assert hydra_value(arg) == "out/${now:%H-%M}/my run"


def test_free_text_reaches_the_composed_sample_config(monkeypatch):
    """Through Hydra's own composition and the typed-config step (resolve, re-create)."""
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_module(config_module="rnnexp.conf", version_base="1.3"):
        for text in ["it's", "café naïve", 'say "hi"', "a,b", "${oc.env:HOME}", "end\\"]:
            cfg = compose(config_name="sample", overrides=quote_free_text([f"prompt={text}", "run=x"], SAMPLE_FREE_TEXT))
            assert cfg.prompt == text
            plain = literal_container(OmegaConf.to_container(cfg, resolve=True))  # what typed() should do
            assert OmegaConf.create(plain).prompt == text
    GlobalHydra.instance().clear()


def test_a_value_hydra_cannot_read_says_how_to_quote_it(monkeypatch, capsys, tmp_path):
    line = one_error_line(monkeypatch, capsys, tmp_path, "task.label=Zürich")
    assert "cannot read the override 'task.label=Zürich'" in line and "LexerNoViableAlt" not in line
    suggested = shlex.split(line.rsplit("type ", 1)[1])
    assert suggested == ["task.label='Zürich'"] and hydra_value(suggested[0]) == "Zürich"


# -- 4 and 5. sweep tables at 80 and 200 columns; where the summary files are ------------------

def lecture_sweep(root: Path, corpus: str = "") -> list[list[str]]:
    """24 jobs like `rnnexp experiment=lecture_qrsu` leaves them (one failed)."""
    jobs = []
    i = 0
    for model in ("rnn", "lstm"):
        for difficulty in ("easy", "moderate"):
            for epochs in (10, 100):
                for seed in (1, 2, 3):
                    overrides = [f"model={model}", f"task.difficulty={difficulty}", f"train.epochs={epochs}",
                                 f"train.seed={seed}", "experiment=lecture_qrsu"]
                    if corpus:
                        overrides.append(f"task.corpus={corpus}{i}.txt")
                    job = root / f"{i}_{','.join(o for o in overrides[:4])}"
                    (job / ".hydra").mkdir(parents=True)
                    (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
                    value = 0.25 + 0.75 * ((i * 37) % 24) / 23 + 1e-7
                    result = {"status": "completed", "objective": {"name": "val/accuracy", "value": value},
                              "final": {"val/accuracy": value, "val/loss": 1.386 - value},
                              "test": {"test/accuracy": value, "test/loss": 1.386 - value},
                              "epochs_run": epochs, "target_epoch": 22 if value == 1.0 else None,
                              "train_seconds": 1.5 + i * 1.37, "cell": model}
                    if i == 5:
                        result = {"status": "failed", "error": "model.hidden_size=-3 is invalid: use an integer >= 1"}
                    (job / "results.json").write_text(json.dumps(result))
                    jobs.append(overrides)
                    i += 1
    return jobs


def printed(root: Path, width: int) -> list[str]:
    console = Console(width=width, record=True, file=io.StringIO(), color_system=None)
    rows = read_jobs(root)
    print_summary(rows, seed_groups(rows), f"{len(rows)} jobs: {root}", console, root)
    return console.export_text().splitlines()


@pytest.mark.parametrize("width", [80, 200])
def test_the_sweep_table_fits_the_terminal_and_splits_nothing(tmp_path, width):
    root = tmp_path / "outputs" / "multirun" / "2026-11-27" / "14-05-00"
    jobs = lecture_sweep(root)
    lines = printed(root, width)
    long = [line for line in lines if len(line) > width]
    assert all(str(root) in line for line in long), long  # only a path, printed whole on its line
    assert len(lines) < 24 + 20, f"{len(lines)} lines for 24 jobs"
    rows = {r["job"].split("_", 1)[0]: r for r in read_jobs(root)}
    for number, overrides in enumerate(jobs):
        row = rows[str(number)]
        (line,) = [line for line in lines if line.split()[:1] == [str(number)]]
        tokens = line.split()
        for override in overrides[:4]:  # the swept values, whole, in the job's own line
            assert override.split("=", 1)[1] in tokens, (override, line)
        if row["status"] == "completed":
            assert f"{row['objective']:.4f}" in tokens, line  # never 0.520 / 0
        else:
            assert "failed" in tokens
    text = "\n".join(lines)
    assert "every job: experiment=lecture_qrsu" in text  # the overrides all jobs share, whole
    header = next(line for line in lines if line.startswith("job "))
    for key in ("model", "difficulty", "epochs", "seed"):
        assert key in header
    seeds = [line for line in lines if line.startswith(("rnn ", "lstm "))]
    assert len(seeds) == 8 and all(re.search(r"\s(easy|moderate)\s+(10|100)\s+[23] of 3\s", line) for line in seeds)
    assert "model.hidden_size=-3 is invalid: use an integer >= 1" in " ".join(text.split())
    if width == 200:
        assert "task.difficulty" in header and "seconds" in header


def test_long_override_values_get_a_block_per_job_and_stay_whole(tmp_path):
    root = tmp_path / "sweep"
    jobs = lecture_sweep(root, corpus="/data/corpora/" + "very-long-directory-name/" * 3 + "book")
    lines = printed(root, 80)
    for line in lines:
        assert len(line) <= 80 or str(root) in line or "task.corpus=" in line or line.startswith("job "), line
    tokens = {token.rstrip(":") for line in lines for token in line.split()}
    for overrides in jobs:
        assert overrides[-1] in tokens  # task.corpus=/data/.../book<i>.txt, never split


def test_summarise_says_where_the_files_are(tmp_path):
    root = tmp_path / "outputs" / "multirun" / "2026-11-27" / "14-05-00"
    lecture_sweep(root)
    console = Console(width=80, record=True, file=io.StringIO(), color_system=None)
    summarise(root, console)
    lines = console.export_text().splitlines()
    where = [line for line in lines if line.startswith("summary written: ")]
    assert where == [f"summary written: {root.resolve() / 'summary.png'}, summary.svg, summary.md, summary.csv, "
                     f"answer.json (same folder)"]
    assert (root / "summary.png").is_file() and (root / "summary.csv").is_file()


# -- 6. --help: examples that paste into bash and say what they show -----------------------------

def test_help_examples_paste_into_bash_and_do_not_promise_a_failure(monkeypatch, capsys, tmp_path):
    code, out, _ = run_main(monkeypatch, capsys, tmp_path, "--help")
    assert code == 0
    assert "<" not in out and ">" not in out  # `<run dir>` is a redirection in bash
    assert "the 1997 paper's setting" not in out
    hard = [line for line in out.splitlines() if "task.difficulty=hard" in line]
    assert hard, "the long-lags example is gone"
    before = out.split(hard[0])[0].rsplit("\n\n", 1)[-1]
    assert "not a recipe" in before and "chance" in before
    for line in out.splitlines():
        words = line.split()
        if words[:1] in (["rnnexp"], ["rnnexp-sample"], ["rnnexp-summary"], ["Resume:"], ["Also:"]):
            shlex.split(line.split("  ")[0] if words[0] not in ("Resume:", "Also:") else line)  # valid shell


def test_quoted_free_text_goes_through_the_real_command_line(monkeypatch, capsys, tmp_path):
    """What cli.main() gets once it calls quote_free_text (quoting twice changes nothing)."""
    corpus = tmp_path / "it's a książka, x=y.txt"
    argv = quote_free_text(["task=charlm", f"task.corpus={corpus}", "--cfg", "job"], RNNEXP_FREE_TEXT, RNNEXP_SWEEPABLE)
    assert quote_free_text(argv, RNNEXP_FREE_TEXT, RNNEXP_SWEEPABLE) == argv
    code, out, err = run_main(monkeypatch, capsys, tmp_path, *argv)
    assert code == 0, err
    assert yaml.safe_load(out)["task"]["corpus"] == str(corpus)


@pytest.mark.parametrize("arg", ["prompt='it\\'s'", "prompt='say \"hi\"'", "x=$HOME `a` \\", "p=a!b", "p=end\\",
                                 "train.resume='/x/0_model=rnn,train.seed=1'", "task.corpus='café naïve.txt'"])
def test_the_quoting_a_message_shows_pastes_into_bash(arg):
    import subprocess

    from rnnexp.argv import shell_word

    word = shell_word(arg)
    assert subprocess.run(["bash", "-c", f"printf %s {word}"], capture_output=True, text=True).stdout == arg


def test_the_end_of_run_table_fits_80_columns_and_keeps_the_run_directory_whole():
    import io

    from rich.console import Console

    from rnnexp.report.console import print_summary

    run_dir = "/home/someone/experiments/outputs/runs/2026-11-27/14-05-00_qrsu-moderate_lstm-with-a-long-name"
    rows = [("epochs run", "100 / 100 (all epochs run)"), ("best val/accuracy (selects)", "0.9920 at epoch 87"),
            ("test/accuracy (best model)", "0.9830"), ("train seqs/s", "15,234"), ("run directory", run_dir)]
    for width in (80, 200):
        out = io.StringIO()
        print_summary(Console(width=width, file=out, no_color=True), "qrsu-moderate / lstm", rows)
        text = out.getvalue()
        table_lines = [line for line in text.splitlines() if not line.startswith("run directory:")]
        assert all(len(line) <= width for line in table_lines), text
        assert f"run directory: {run_dir}" in text.splitlines(), "the path is whole on one line, to copy"
        assert "0.9920 at epoch 87" in text and "15,234" in text
