"""``pyjlode evaluate`` and ``pyjlode generate``: a trained checkpoint's scores and samples."""
from __future__ import annotations

import json

import click

from .errors import friendly_errors
from .options import backend_option, checkpoint_option, device_option


@click.command()
@checkpoint_option
@click.option("--split", type=click.Choice(["train", "valid", "test"]), default="test", show_default=True,
              help="Which split of the training corpus to score.")
@click.option("--corpus", default=None, help="Score a split of this corpus instead of the training one.")
@click.option("--json", "as_json", is_flag=True, default=False,
              help="Print one JSON object instead of the report.")
@click.option("--prompts", type=int, default=50, show_default=True,
              help="Number of prompts taken at evenly spaced positions of the split.")
@click.option("--prompt-len", type=int, default=20, show_default=True, help="Tokens per prompt.")
@click.option("--gen-len", type=int, default=20, show_default=True,
              help="Tokens generated per prompt and compared with the true continuation.")
@click.option("--temperature", type=float, default=1.0, show_default=True, help="Sampling temperature.")
@click.option("--top-k", type=int, default=0, show_default=True, help="Sample from the k likeliest (0: off).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the sampling generator.")
@click.option("--batch-size", type=int, default=10, show_default=True,
              help="Parallel streams for the perplexity pass.")
@device_option
@backend_option
@friendly_errors
def evaluate(checkpoint, split, corpus, as_json, prompts, prompt_len, gen_len, temperature, top_k, seed,
             batch_size, device, backend) -> None:
    """Perplexity on a split, then BLEU, ROUGE and diversity of sampled continuations."""
    from ..evaluation.evaluate import evaluate_checkpoint, format_report

    result = evaluate_checkpoint(checkpoint, split=split, prompts=prompts, prompt_len=prompt_len,
                                 gen_len=gen_len, temperature=temperature, top_k=top_k or None, seed=seed,
                                 device=device, batch_size=batch_size, corpus=corpus, backend=backend)
    click.echo(json.dumps(result, indent=2) if as_json else format_report(result))


@click.command()
@checkpoint_option
@click.option("--prompt", default="", show_default=True,
              help="Text to continue (empty: start a new line).")
@click.option("--max-tokens", type=int, default=50, show_default=True, help="Tokens to generate.")
@click.option("--temperature", type=float, default=1.0, show_default=True, help="Sampling temperature.")
@click.option("--top-k", type=int, default=0, show_default=True, help="Sample from the k likeliest (0: off).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the sampling generator.")
@device_option
@backend_option
@friendly_errors
def generate(checkpoint, prompt, max_tokens, temperature, top_k, seed, device, backend) -> None:
    """Continue a prompt with a trained model."""
    from ..evaluation.evaluate import generate_text

    click.echo(generate_text(checkpoint, prompt, max_tokens=max_tokens, temperature=temperature,
                             top_k=top_k or None, seed=seed, device=device, backend=backend))
