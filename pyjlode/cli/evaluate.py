"""``pyjlode evaluate`` and ``pyjlode generate``: a trained checkpoint's scores and samples; their options
are EvalConfig's fields (generate takes the sampling and run ones)."""
from __future__ import annotations

import json

import click

from ..evaluation.config import SAMPLING, EvalConfig
from ..flags import flagged_fields, option_name
from .errors import command_flags, friendly_errors, render_flags
from .options import checkpoint_option, config_options

_NOT_SAMPLING = [option_name(f) for f, _ in flagged_fields(EvalConfig) if option_name(f) not in SAMPLING]


@click.command(params=config_options(EvalConfig))
@checkpoint_option
@click.option("--json", "as_json", is_flag=True, default=False,
              help="Print one JSON object instead of the report.")
@friendly_errors
def evaluate(checkpoint, as_json, **settings) -> None:
    """Perplexity on a split (or a whole --file), then BLEU, ROUGE, diversity and BLEU-HA of sampled
    continuations."""
    from ..evaluation.evaluate import evaluate_checkpoint, format_report

    result = evaluate_checkpoint(checkpoint, EvalConfig(**settings), progress=True)
    text = json.dumps(result, indent=2) if as_json else format_report(result)
    click.echo(render_flags(text, command_flags(click.get_current_context().command)))   # `file` -> --file


@click.command(params=config_options(EvalConfig, skip=_NOT_SAMPLING))
@checkpoint_option
@click.option("--prompt", default="", show_default=True,
              help="Text to continue (empty: start a new line).")
@click.option("--max-tokens", type=int, default=50, show_default=True, help="Tokens to generate.")
@friendly_errors
def generate(checkpoint, prompt, max_tokens, **settings) -> None:
    """Continue a prompt with a trained model."""
    from ..evaluation.generation import generate_text

    click.echo(generate_text(checkpoint, prompt, max_tokens=max_tokens, config=EvalConfig(**settings),
                             warn=lambda message: click.echo(message, err=True)))
