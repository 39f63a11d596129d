"""The ``pyjlode`` command line: a thin click layer over importable functions.

Module-level imports stay light (no torch): ``main`` must be able to start Julia (``juliacall``) before torch
is imported when ``--backend julia`` is on the command line. Torch-heavy modules are imported inside the
commands. Errors are reported as :mod:`pyjlode.cli.errors` describes.
"""
from __future__ import annotations

import json
import os
import sys

import click
from click.core import ParameterSource

from .errors import friendly_errors

MODELS = ("rnn", "gru", "lstm", "gru-ode")
SOLVER_HELP = ("Tsit5, DP5 (dopri5), RK4, Euler, or a stiff one: KenCarp4, Kvaerno5, TRBDF2, Rodas4, Rodas5P, "
               "Rosenbrock23 (case-insensitive)")


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="pyjlode", prog_name="pyjlode")
def cli() -> None:
    """Train and study GRU-ODE and RNN/GRU/LSTM text generators.

    Start with `pyjlode train` (about four minutes on a laptop CPU), then
    `pyjlode evaluate --checkpoint runs/gru-ode` and `pyjlode generate --checkpoint runs/gru-ode`.
    """


# --------------------------------------------------------------------------------------------------
# train

_TRAIN_OPTIONS = [
    click.option("--model", type=click.Choice(MODELS), default="gru-ode", show_default=True,
                 help="Recurrent core of the language model."),
    click.option("--corpus", default="shakespeare", show_default=True,
                 help="Built-in corpus (shakespeare, tiny-shakespeare, wikitext-2, ptb), a UTF-8 text file "
                      "(split by lines 90/5/5) or a folder with train/valid/test files."),
    click.option("--level", type=click.Choice(["word", "char", "space"]), default="word", show_default=True,
                 help="Tokenise into words, characters, or whitespace-separated tokens (for pre-tokenised "
                      "corpora such as ptb and wikitext-2)."),
    click.option("--lowercase", is_flag=True, default=False, help="Lower-case the text before tokenising."),
    click.option("--min-freq", type=int, default=1, show_default=True,
                 help="Tokens seen fewer times in train become <unk>."),
    click.option("--max-vocab", type=int, default=10000, show_default=True,
                 help="Keep at most this many most frequent tokens (0: no limit)."),
    click.option("--cache-dir", type=click.Path(file_okay=False), default=None,
                 help="Folder for downloaded corpora (default: the user's cache folder)."),
    click.option("--solver", default=None, help=f"GRU-ODE forward solver [default: Tsit5]: {SOLVER_HELP}."),
    click.option("--backward-solver", "--stiff-solver", "backward_solver", default=None,
                 help="Solver for the adjoint's backward pass, e.g. KenCarp4 [default: same as --solver]."),
    click.option("--sensealg", default=None,
                 help="Adjoint sensitivity algorithm: interpolating or backsolve [default: interpolating]."),
    click.option("--rtol", type=float, default=None, help="GRU-ODE relative tolerance [default: 1e-3]."),
    click.option("--atol", type=float, default=None, help="GRU-ODE absolute tolerance [default: 1e-5]."),
    click.option("--tau", type=float, default=None, help="GRU-ODE time constant tau [default: 1.0]."),
    click.option("--backend", type=click.Choice(["torch", "julia"]), default=None,
                 help="Engine for the GRU-ODE solves [default: torch]; julia needs `pip install pyjlode[julia]`."),
    click.option("--embed-size", type=int, default=128, show_default=True, help="Token embedding size."),
    click.option("--hidden-size", type=int, default=256, show_default=True, help="Recurrent state size."),
    click.option("--layers", type=int, default=1, show_default=True, help="Stacked recurrent layers."),
    click.option("--dropout", type=float, default=0.0, show_default=True,
                 help="Dropout on embeddings and between layers."),
    click.option("--tie-weights", is_flag=True, default=False,
                 help="Share embedding and decoder weights (needs --embed-size equal to --hidden-size)."),
    click.option("--batch-size", type=int, default=32, show_default=True, help="Parallel token streams."),
    click.option("--bptt", type=int, default=35, show_default=True,
                 help="Tokens per truncated-backprop window."),
    click.option("--lr", type=float, default=2e-3, show_default=True, help="Initial learning rate."),
    click.option("--optimizer", type=click.Choice(["adam", "sgd", "adamw"]), default="adam",
                 show_default=True, help="Optimisation algorithm."),
    click.option("--weight-decay", type=float, default=0.0, show_default=True, help="Weight decay."),
    click.option("--clip", type=float, default=1.0, show_default=True,
                 help="Clip the global gradient norm to this (0: off)."),
    click.option("--state-reset", type=float, default=0.1, show_default=True,
                 help="Chance that a stream's carried state restarts from zero before a training window "
                      "(teaches recovery from cold starts; 0: off)."),
    click.option("--lr-factor", type=float, default=0.5, show_default=True,
                 help="Multiply the learning rate by this when validation stops improving."),
    click.option("--lr-patience", type=int, default=1, show_default=True,
                 help="Scheduled evaluations without improvement before the learning rate drops."),
    click.option("--epochs", type=int, default=10, show_default=True, help="Passes over the training split."),
    click.option("--max-steps", type=int, default=0, show_default=True,
                 help="Stop after this many optimisation steps in total (0: no limit)."),
    click.option("--time-budget", type=float, default=240.0, show_default=True,
                 help="Stop after this many seconds of training, counted over resumes (0: no limit)."),
    click.option("--eval-interval", type=int, default=0, show_default=True,
                 help="Evaluate every N steps (0: off). Step-based evaluation keeps --resume exact."),
    click.option("--eval-seconds", type=float, default=30.0, show_default=True,
                 help="Also evaluate every S seconds of training (0: off)."),
    click.option("--eval-tokens", type=int, default=8192, show_default=True,
                 help="Validation tokens used by each evaluation during training (0: the whole split)."),
    click.option("--eval-batch-size", type=int, default=32, show_default=True,
                 help="Parallel validation streams during training (state carried down each)."),
    click.option("--log-interval", type=int, default=10, show_default=True,
                 help="Steps between training records in metrics.jsonl and progress-bar updates."),
    click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True,
                 help="Where to train; auto picks CUDA when available."),
    click.option("--threads", type=int, default=0, show_default=True,
                 help="CPU threads for torch's operations (0: torch's default, one per core)."),
    click.option("--seed", type=int, default=1234, show_default=True, help="Random seed."),
    click.option("--out", type=click.Path(file_okay=False), default=None,
                 help="Run folder for last.pt, best.pt and metrics.jsonl [default: runs/MODEL]."),
    click.option("--resume", is_flag=True, default=False,
                 help="Continue the run in --out from its last.pt, exactly."),
    click.option("--dry-run", is_flag=True, default=False,
                 help="Run one training batch and one validation batch; write nothing."),
]


def train_options(fn):
    """Attach every training option (also used by commands that train, e.g. compare)."""
    for option in reversed(_TRAIN_OPTIONS):
        fn = option(fn)
    return fn


@cli.command()
@train_options
@click.pass_context
@friendly_errors
def train(ctx: click.Context, **options) -> None:
    """Train a language model; checkpoints and metrics.jsonl go to --out."""
    from ..training.loop import build_configs, train as run_training

    resume = options.pop("resume")
    options["out"] = options["out"] or os.path.join("runs", options["model"])
    if options["max_vocab"] == 0:
        options["max_vocab"] = None
    explicit = [k for k in options if ctx.get_parameter_source(k) == ParameterSource.COMMANDLINE]
    mcfg, tcfg = build_configs(options)
    summary = run_training(mcfg, tcfg, resume=resume, explicit=explicit)
    if summary["stopped"] == "dry_run":
        click.echo("dry run: one training batch and one validation batch ran; nothing was written")
    elif summary["stopped"] == "interrupted":
        ctx.exit(130)


# --------------------------------------------------------------------------------------------------
# evaluate and generate

_CHECKPOINT = click.option("--checkpoint", required=True, type=click.Path(),
                           help="A .pt file written by `pyjlode train`, or its run folder (uses best.pt).")
_DEVICE = click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto",
                       show_default=True, help="Where to run the model.")
_BACKEND = click.option("--backend", type=click.Choice(["torch", "julia"]), default=None,
                        help="Run a GRU-ODE on this engine [default: the one it was trained with].")


@cli.command()
@_CHECKPOINT
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
@_DEVICE
@_BACKEND
@friendly_errors
def evaluate(checkpoint, split, corpus, as_json, prompts, prompt_len, gen_len, temperature, top_k, seed,
             batch_size, device, backend) -> None:
    """Perplexity on a split, then BLEU, ROUGE and diversity of sampled continuations."""
    from ..evaluation.evaluate import evaluate_checkpoint, format_report

    result = evaluate_checkpoint(checkpoint, split=split, prompts=prompts, prompt_len=prompt_len,
                                 gen_len=gen_len, temperature=temperature, top_k=top_k or None, seed=seed,
                                 device=device, batch_size=batch_size, corpus=corpus, backend=backend)
    click.echo(json.dumps(result, indent=2) if as_json else format_report(result))


@cli.command()
@_CHECKPOINT
@click.option("--prompt", default="", show_default=True,
              help="Text to continue (empty: start a new line).")
@click.option("--max-tokens", type=int, default=50, show_default=True, help="Tokens to generate.")
@click.option("--temperature", type=float, default=1.0, show_default=True, help="Sampling temperature.")
@click.option("--top-k", type=int, default=0, show_default=True, help="Sample from the k likeliest (0: off).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the sampling generator.")
@_DEVICE
@_BACKEND
@friendly_errors
def generate(checkpoint, prompt, max_tokens, temperature, top_k, seed, device, backend) -> None:
    """Continue a prompt with a trained model."""
    from ..evaluation.evaluate import generate_text

    click.echo(generate_text(checkpoint, prompt, max_tokens=max_tokens, temperature=temperature,
                             top_k=top_k or None, seed=seed, device=device, backend=backend))


# --------------------------------------------------------------------------------------------------
# doctor


@cli.command()
@click.option("--backend", type=click.Choice(["torch", "julia"]), default="torch", show_default=True,
              help="Which engine to check.")
@friendly_errors
def doctor(backend) -> None:
    """Check that an engine works here and say how to fix it when not."""
    from ..backends.doctor import run_doctor

    sys.exit(run_doctor(backend))


# --------------------------------------------------------------------------------------------------
# entry point


def wants_julia(args: list[str]) -> bool:
    """True when the command line selects the Julia backend (``--backend julia`` or ``--backend=julia``)."""
    for i, arg in enumerate(args):
        if arg == "--backend" and i + 1 < len(args) and args[i + 1] == "julia":
            return True
        if arg == "--backend=julia":
            return True
    return False


def main(argv: list[str] | None = None) -> None:
    """Console entry point of ``pyjlode`` and ``python -m pyjlode``."""
    args = list(sys.argv[1:] if argv is None else argv)
    if wants_julia(args):
        try:
            from ..backends import julia

            julia.preload()  # juliacall must start before torch is imported
        except Exception:
            # Not fatal here: the command that needs Julia reports the missing piece in one line.
            pass
    cli.main(args=args, prog_name="pyjlode")


# compare and analyze live in experiments/cli_commands.py (EXPERIMENTS added these lines); built last
# because they reuse train_options and friendly_errors from above.
from .experiments import make_commands  # noqa: E402
for _command in make_commands():
    cli.add_command(_command)

# `pyjlode bench` is the GRU-ODE training-step benchmark (pyjlode/bench.py, scripts/bench_gruode.py).
from ..experiments.bench import bench_command  # noqa: E402
cli.add_command(bench_command)
