"""``pyjlode odenet``: the ODE-Net against ResNet experiment; its options are OdeNetConfig's fields."""
from __future__ import annotations

import click

from ..experiments.odenet_config import OdeNetConfig
from .errors import friendly_errors
from .options import config_options


@click.command(params=config_options(OdeNetConfig))
@click.option("--out", type=click.Path(file_okay=False), default="runs/odenet", show_default=True,
              help="Folder for odenet.csv/.md, tolerance.csv, memory.csv and the plots.")
@friendly_errors
def odenet(out, **settings) -> None:
    """Train a ResNet, an ODE-Net (adjoint) and an RK-Net on scikit-learn's 8x8 digits; tabulate test error,
    parameters, memory and NFE, and sweep the tolerance (Chen et al. 2018, Table 1)."""
    from pathlib import Path

    from ..experiments.odenet import run_odenet

    result = run_odenet(OdeNetConfig(**settings), Path(out), log=click.echo)
    with open(result.files["odenet.md"], encoding="utf-8") as fh:
        click.echo(fh.read())
