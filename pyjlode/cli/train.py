"""``pyjlode train``: its options are the fields of ModelConfig, SolverConfig and TrainConfig."""
from __future__ import annotations

import typing

import click
from click.core import ParameterSource

from ..training.config import CONFIGS, build_configs
from ..training.rundir import LAST, METRICS
from .errors import command_flags, friendly_errors, render_flags
from .options import config_options


def train_params(skip: typing.Collection[str] = ()) -> list[click.Option]:
    """Every training option except ``skip`` (fresh objects: `compare` takes them too)."""
    return config_options(*CONFIGS, skip=skip)


@click.command(help=f"Train a language model; checkpoints and {METRICS} go to --out.", params=[
    *train_params(),
    click.Option(["--resume"], is_flag=True, default=False,
                 help=f"Continue the run in --out from its {LAST}, exactly: it keeps the run's settings, and "
                      "takes a stopping, evaluation, thread or device option only when given here (it says "
                      "which).")])
@click.pass_context
@friendly_errors
def train(ctx: click.Context, resume: bool, **options) -> None:
    from ..training.loop import print_line, train as run_training

    explicit = [k for k in options if ctx.get_parameter_source(k) == ParameterSource.COMMANDLINE]
    flags = command_flags(ctx.command)
    summary = run_training(*build_configs(options), resume=resume, explicit=explicit,
                           echo=lambda line: print_line(render_flags(line, flags)))
    if summary["stopped"] == "dry_run":
        click.echo("dry run: one training batch and one validation batch ran; nothing was written")
    elif summary["stopped"] == "interrupted":
        ctx.exit(130)

