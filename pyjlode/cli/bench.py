"""``pyjlode bench``: the GRU-ODE training-step benchmark; its table options are BenchConfig's fields."""
from __future__ import annotations

import sys

import click

from ..experiments.bench_config import CASES, BenchConfig
from .errors import friendly_errors
from .options import config_options


def _cases(ctx, param, value):
    names = tuple(v.strip() for v in value.split(",") if v.strip()) if value else ()
    bad = [n for n in names if n not in CASES]
    if bad:
        raise click.BadParameter(f"unknown case {bad[0]!r}; choose from: {', '.join(CASES)}")
    return names


@click.command("bench", params=config_options(BenchConfig))
@click.option("--cases", default=",".join(CASES), show_default=True, callback=_cases,
              help="Comma-separated cases of the main table.")
@click.option("--stiff-tau", type=float, default=0.1, show_default=True,
              help="tau of the stiff table (cases a, b, d); 0 skips it.")
@click.option("--threads", type=int, default=0, help="torch.set_num_threads (0: torch's default).")
@click.option("--train-steps", type=int, default=0, show_default=True,
              help="Also time `pyjlode train` (gru-ode and gru) for this many steps each; 0 skips it.")
@click.option("--write", type=click.Path(dir_okay=False), default=None,
              help="Replace the bench_gruode section of this markdown file (docs/benchmarks.md).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None, help="Also dump raw figures.")
@friendly_errors
def bench(cases, stiff_tau, threads, train_steps, write, json_path, **table) -> None:
    """Time one GRU-ODE training step: pyjlode against torchdiffeq, Euler and nn.GRU."""
    if table["device"].startswith("cuda"):
        import torch
        if not torch.cuda.is_available():
            raise click.BadParameter("CUDA is not available; use --device cpu", param_hint="--device")
    from ..experiments.bench import main_run

    cfg = BenchConfig(**table, cases=cases)
    command = "pyjlode bench " + " ".join(sys.argv[2:]) if sys.argv[1:2] == ["bench"] else " ".join(sys.argv)
    body = main_run(cfg, stiff_tau=stiff_tau, train_steps=train_steps, threads=threads or None, write=write,
                    json_path=json_path, command=command, echo=lambda s: click.echo(s, err=True))
    click.echo(body)
