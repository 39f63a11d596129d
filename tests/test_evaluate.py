"""`evaluate`: what it scores is one flag away and said in the report, every evaluation default lives once
(EvalConfig) for evaluate, generate and compare, progress is shown, bad settings are one line."""
from __future__ import annotations

import dataclasses
import io
import json
import sys

import pytest
from click.testing import CliRunner
from exp_helpers import train_tiny, write_corpus

from pyjlode.cli import cli
from pyjlode.data import Tokenizer
from pyjlode.evaluation.config import EvalConfig
from pyjlode.evaluation.evaluate import evaluate_nll

pytestmark = pytest.mark.usefixtures("one_thread")

FEW = ["--prompts", "2", "--prompt-len", "3", "--gen-len", "3"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    corpus = write_corpus(root / "text.txt", lines=200)
    train_tiny(root / "run", corpus, model="gru", max_steps=2)
    return root / "run", corpus


def evaluate(*args):
    result = CliRunner().invoke(cli, ["evaluate", *map(str, args)])
    assert result.exit_code == 0, result.output
    return result


def tokens_of(text: str) -> int:
    return len(Tokenizer("word").tokenize(text))


def test_file_scores_every_line_and_says_so(run, tmp_path):
    ckpt, _ = run
    outside = write_corpus(tmp_path / "outside.txt", lines=40, seed=7)
    r = json.loads(evaluate("--checkpoint", ckpt, "--file", outside, "--json", *FEW).output)
    assert r["scored"] == f"all 40 lines of {outside}" and r["split"] == "file"
    assert r["text_tokens"] == tokens_of(outside.read_text())
    report = evaluate("--checkpoint", ckpt, "--file", outside, *FEW).output
    assert f"scored all 40 lines of {outside}: {r['text_tokens']:,} tokens" in report


def test_a_split_of_a_text_file_is_named_as_its_last_lines(run):
    ckpt, corpus = run
    r = json.loads(evaluate("--checkpoint", ckpt, "--corpus", corpus, "--json", *FEW).output)
    assert "its last 5% of lines" in r["scored"] and "--file scores all of it" in r["scored"]
    assert "split by lines 90/5/5" in r["scored"]
    lines = corpus.read_text().splitlines()
    assert r["text_tokens"] == tokens_of("\n".join(lines[-10:]) + "\n")        # 5 % of 200 lines


def test_words_outside_the_vocabulary_are_counted(run, tmp_path):
    ckpt, _ = run
    text = tmp_path / "new.txt"
    text.write_text("the dragon loves the wyvern\n" * 30)                 # 6 tokens a line with <eos>
    r = json.loads(evaluate("--checkpoint", ckpt, "--file", text, "--json", *FEW).output)
    assert r["unknown"] == 60 and r["text_tokens"] == 30 * 6
    assert "60 of them (33.3%) outside the model's vocabulary" in evaluate("--checkpoint", ckpt, "--file", text,
                                                                           *FEW).output


@pytest.mark.parametrize("command", ["evaluate", "generate", "compare"])
def test_each_evaluation_default_lives_once(command):
    """An option built from an EvalConfig field shows that field's default and help, in every command."""
    fields = {f.name: f for f in dataclasses.fields(EvalConfig)}
    options = [p for p in cli.commands[command].params if getattr(p, "config", None) is EvalConfig]
    assert options
    for option in options:
        f = fields[option.field_name]
        assert option.default == f.default and option.help == f.metadata["flag"].help, option.name
    names = {o.field_name for o in options}
    expected = {"evaluate": set(fields), "generate": {"temperature", "top_k", "seed", "device", "backend", "threads"},
                "compare": {"split", "prompts", "prompt_len", "gen_len", "temperature", "top_k"}}[command]
    assert names == expected


def test_compare_scores_runs_as_evaluate_does():
    compare_prompts = next(p for p in cli.commands["compare"].params if p.name == "prompts")
    assert compare_prompts.default == EvalConfig().prompts == 50


def test_the_perplexity_pass_shows_progress_on_a_terminal(run, monkeypatch):
    import torch
    from pyjlode.training.state import load_checkpoint, model_from_checkpoint

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    model = model_from_checkpoint(load_checkpoint(run[0] / "last.pt"))
    data = torch.randint(0, 10, (40, 2))
    for progress, shown in ((True, True), (False, False)):
        err = Terminal()
        monkeypatch.setattr(sys, "stderr", err)
        evaluate_nll(model, data, 5, progress=progress)
        assert ("perplexity" in err.getvalue()) is shown


@pytest.mark.parametrize("args, needle", [
    (["--prompts", "0"], "--prompts must be at least 1"),
    (["--top-k", "-1"], "--top-k must be 0 (off) or positive"),
    (["--temperature", "-1"], "--temperature must be 0 (greedy) or positive"),
    (["--file", "x.txt", "--corpus", "y.txt"], "give one")])
def test_bad_evaluation_settings_are_one_line(run, args, needle):
    result = CliRunner().invoke(cli, ["evaluate", "--checkpoint", str(run[0]), *args])
    assert result.exit_code == 2 and needle in result.stderr and "Traceback" not in result.output
