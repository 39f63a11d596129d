"""``pyjlode doctor``: can an engine run here, and if not, what is the fix."""
from __future__ import annotations

import sys

import click

from ..backends import BACKENDS
from .errors import friendly_errors


@click.command()
@click.option("--backend", type=click.Choice(BACKENDS), default=None,
              help="Check one engine in depth (julia: start Julia and load its packages); default: report on both.")
@friendly_errors
def doctor(backend) -> None:
    """Report which engines can run here, and how to fix one that cannot."""
    from ..backends.doctor import run_doctor

    sys.exit(run_doctor(backend))
