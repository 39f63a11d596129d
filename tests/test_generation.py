"""Sampling: a trained model's prediction depends on the prompt (its state is carried into sampling), each
prompt draws its own random numbers, unknown prompt words are reported, WikiText markers are joined."""
from __future__ import annotations

import pytest
import torch
from click.testing import CliRunner
from exp_helpers import train_tiny, write_corpus

from pyjlode.cli import cli
from pyjlode.data import Tokenizer
from pyjlode.evaluation.generation import prompt_seed
from pyjlode.training.state import load_checkpoint, load_vocab, model_from_checkpoint

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module", params=["gru", "gru-ode"])
def trained(request, tmp_path_factory):
    """A model trained on a few fixed sentences until it knows which word follows which context."""
    root = tmp_path_factory.mktemp(request.param)
    corpus = write_corpus(root / "text.txt")
    train_tiny(root / "run", corpus, model=request.param, solver="RK4", embed_size=16, hidden_size=16,
               lr=0.02, max_steps=120, eval_interval=0)
    ckpt = load_checkpoint(root / "run" / "last.pt")
    tokenizer, vocab = load_vocab(ckpt)
    return root / "run", model_from_checkpoint(ckpt).eval(), tokenizer, vocab


def _ids(tokenizer, vocab, text):
    return vocab.encode(tokenizer.tokenize(text)[:-1])       # without the line's <eos>


def _next(model, ids):
    with torch.no_grad():
        logits, _ = model(ids.view(-1, 1))
    return torch.softmax(logits[-1, 0], dim=-1)


# Both prompts end in "the": only the state carried from the earlier words can tell crown from day.
PROMPTS = {"my lady keeps the": "crown", "the fool speaks of the": "day"}


def test_next_token_distribution_depends_on_the_prompt(trained):
    _, model, tokenizer, vocab = trained
    p, q = (_next(model, _ids(tokenizer, vocab, text)) for text in PROMPTS)
    assert 0.5 * (p - q).abs().sum().item() > 0.4            # total variation: clearly different predictions


@pytest.mark.parametrize("prompt, expected", PROMPTS.items())
def test_sampling_continues_from_the_prompts_state(trained, prompt, expected):
    _, model, tokenizer, vocab = trained
    first = model.generate(_ids(tokenizer, vocab, prompt), 1, temperature=0)      # greedy: the likeliest
    assert vocab.itos[first.item()] == expected


def test_each_prompt_draws_its_own_random_numbers(trained):
    run, *_ = trained
    assert prompt_seed(0, "my lady keeps the") != prompt_seed(0, "the fool speaks of the")
    assert prompt_seed(0, "a") == prompt_seed(0, "a") != prompt_seed(1, "a")
    out = [CliRunner().invoke(cli, ["generate", "--checkpoint", str(run), "--prompt", p, "--max-tokens", "30"])
           for p in PROMPTS]
    continuations = [r.output.split()[len(p.split()):] for r, p in zip(out, PROMPTS)]
    same = sum(a == b for a, b in zip(*continuations))
    assert same < 20, continuations     # a shared seed made most positions agree once the model was unsure


def test_unknown_prompt_words_warn(trained):
    run, *_ = trained
    result = CliRunner().invoke(cli, ["generate", "--checkpoint", str(run), "--prompt", "the dragon loves Zeus",
                                      "--max-tokens", "3"])
    assert result.exit_code == 0
    assert "2 prompt word(s) are not in the model's vocabulary" in result.stderr
    assert "'dragon', 'Zeus'" in result.stderr and result.stdout.startswith("the dragon loves Zeus")
    quiet = CliRunner().invoke(cli, ["generate", "--checkpoint", str(run), "--prompt", "the king", "--max-tokens",
                                     "3"])
    assert "warning" not in quiet.stderr


@pytest.mark.parametrize("level", ["word", "space"])
def test_wikitext_markers_are_joined_for_display(level):
    tok = Tokenizer(level)
    text = tok.detokenize(tok.tokenize("a well @-@ known 1 @,@ 000 @,@ 000 men and 3 @.@ 5 m\n"))
    assert "@" not in text and "well-known 1,000,000 men" in text and "3.5 m" in text
