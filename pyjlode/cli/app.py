"""The ``pyjlode`` command group and its entry point.

Each command lives in a module of this package (train, evaluate and generate, compare and analyze, bench,
doctor, odenet) as a thin layer over importable functions; options of configurable commands are built from the
config dataclasses' fields (:mod:`pyjlode.cli.options`). Module-level imports stay free of torch: ``main``
must be able to start Julia before torch is imported when ``--backend julia`` is on the command line.
Errors are reported as :mod:`pyjlode.cli.errors` describes.
"""
from __future__ import annotations

import sys

import click

from .. import backends
from .bench import bench
from .doctor import doctor
from .evaluate import evaluate, generate
from .experiments import analyze, compare
from .odenet import odenet
from .train import train


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="pyjlode", prog_name="pyjlode")
def cli() -> None:
    """Train and study GRU-ODE and RNN/GRU/LSTM text generators.

    Start with `pyjlode train` (about four minutes on a laptop CPU), then
    `pyjlode evaluate --checkpoint runs/gru-ode` and `pyjlode generate --checkpoint runs/gru-ode`.
    """


for _command in (train, evaluate, generate, doctor, compare, analyze, bench, odenet):
    cli.add_command(_command)


def main(argv: list[str] | None = None) -> None:
    """Console entry point of ``pyjlode`` and ``python -m pyjlode``."""
    args = list(sys.argv[1:] if argv is None else argv)
    backends.preload_for(args)          # the Julia engine, when asked for, starts before torch
    cli.main(args=args, prog_name="pyjlode")
