"""``pyjlode doctor``: can an engine run here, and if not, what is the fix."""
from __future__ import annotations

import sys

import click

from ..backends import BACKENDS
from .errors import friendly_errors


@click.command()
@click.option("--backend", type=click.Choice(BACKENDS), default="torch", show_default=True,
              help="Which engine to check.")
@friendly_errors
def doctor(backend) -> None:
    """Check that an engine works here and say how to fix it when not."""
    from ..backends.doctor import run_doctor

    sys.exit(run_doctor(backend))
