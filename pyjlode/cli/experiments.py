"""``pyjlode compare`` and ``pyjlode analyze``: thin click layers over :mod:`pyjlode.experiments`.

`compare` takes every option of `train` (built from the same config fields) except the per-run ones it
owns: ``--model`` becomes ``--models``, ``--seed`` ``--seeds``, ``--out`` is the comparison folder, and
``--resume`` is implicit (finished runs are reused); and the protocol options of `evaluate` (its
EvalConfig fields), so every run is scored as `pyjlode evaluate` scores a checkpoint.
"""
from __future__ import annotations

import sys

import click

from ..errors import InputError
from ..evaluation.config import PROTOCOL, EvalConfig
from ..experiments.analyze_config import AnalyzeConfig
from ..flags import flagged_fields, option_name
from ..models.config import CELL_NAMES
from .errors import command_flags, friendly_errors, render_flags
from .options import config_options
from .train import train_params

_OWN = {"model", "seed", "out", "dry_run"}   # train options compare replaces or drops


def _csv_list(text: str, what: str) -> list[str]:
    items = [s.strip() for s in (text or "").split(",") if s.strip()]
    if not items:
        raise InputError(f"{what} is empty; give a comma-separated list")
    return items


def parse_seeds(text: str) -> list[int]:
    """"1,2,3" -> [1, 2, 3]; a one-line InputError otherwise."""
    items = _csv_list(text, "--seeds")
    try:
        return [int(s) for s in items]
    except ValueError:
        raise InputError(f"--seeds must be comma-separated integers, e.g. 1,2,3 (got {text!r})") from None


def parse_models(text: str) -> list[str]:
    """"rnn,gru" -> ["rnn", "gru"], checked against the model names of `train`."""
    models = [m.lower() for m in _csv_list(text, "--models")]
    bad = [m for m in models if m not in CELL_NAMES]
    if bad:
        raise InputError(f"unknown model(s) in --models: {', '.join(bad)}; choose from: {', '.join(CELL_NAMES)}")
    return list(dict.fromkeys(models))


def _compare(models, seeds, variants, match_params, out, **options) -> None:
    """Train each model under the same budget and data, evaluate each, write tables and plots to --out."""
    from ..experiments.compare import compare, parse_variants
    from ..experiments.tables import markdown_table

    protocol = {k: options.pop(k) for k in PROTOCOL}
    evaluation = EvalConfig(**protocol, device=options.get("device") or "auto", threads=options["threads"])
    flags = command_flags(click.get_current_context().command)
    result = compare(parse_models(models), options, seeds=parse_seeds(seeds), match_params=match_params,
                     variants=parse_variants(variants), out_dir=out, evaluation=evaluation,
                     log=lambda line: click.echo(render_flags(line, flags)))
    click.echo(markdown_table(result["aggregated"]))
    click.echo("wrote " + ", ".join(result["files"].values()))
    failed = [r for r in result["runs"] if r.get("status") != "ok"]
    if failed:
        click.echo(f"{len(failed)} of {len(result['runs'])} runs failed (marked in results.md)", err=True)
        sys.exit(1)


def _analyze(checkpoint, baseline, out, **settings) -> None:
    """Jacobian spectrum, solver work per pair, and robustness to embedding noise of a GRU-ODE."""
    from ..experiments.analyze import analyze

    result = analyze(list(checkpoint), AnalyzeConfig(**settings), baselines=list(baseline), out_dir=out,
                     log=click.echo)
    with open(result["files"]["analysis.md"], encoding="utf-8") as fh:
        click.echo(fh.read())
    click.echo("wrote " + ", ".join(result["files"].values()))


def _compare_params() -> list[click.Parameter]:
    return [
        click.Option(["--models"], default="rnn,gru,lstm,gru-ode", show_default=True,
                     help="Comma-separated models to compare."),
        click.Option(["--seeds"], default="1,2,3", show_default=True,
                     help="Comma-separated seeds; one run per model and seed (tables show mean ± sample std, "
                          "so seed-to-seed noise is visible next to the differences between models)."),
        click.Option(["--variants"], default=None,
                     help="GRU-ODE solver settings to compare, each SOLVER[/BACKWARD_SOLVER][@RTOL] (atol = "
                          "rtol/100), comma-separated: 'Tsit5/Tsit5,Tsit5/KenCarp4', or a tolerance sweep "
                          "'Tsit5@1e-1,Tsit5@1e-3,Tsit5@1e-5,Euler,RK4' [default: --solver/--backward-solver "
                          "only]."),
        click.Option(["--match-params"], is_flag=True,
                     help="Resize each model's hidden layer to match the GRU-ODE's (else the first model's) "
                          "parameter count."),
        click.Option(["--out"], type=click.Path(file_okay=False), default="runs/compare", show_default=True,
                     help="Comparison folder: runs/, results.csv, results.md, plots. Rerunning reuses "
                          "finished runs."),
        *config_options(EvalConfig, skip=[option_name(f) for f, _ in flagged_fields(EvalConfig)
                                          if option_name(f) not in PROTOCOL]),
        *train_params(skip=_OWN),
    ]


def _analyze_params() -> list[click.Parameter]:
    return [
        click.Option(["--checkpoint"], multiple=True, required=True, type=click.Path(),
                     help="GRU-ODE checkpoint (.pt) or run folder (all its .pt files); repeat to follow "
                          "the spectrum over training."),
        click.Option(["--baseline"], multiple=True, type=click.Path(),
                     help="Checkpoint of another model for the robustness comparison (repeatable)."),
        click.Option(["--out"], type=click.Path(file_okay=False), default=None,
                     help="Output folder [default: analysis/ next to the last checkpoint]."),
        *config_options(AnalyzeConfig),
    ]


compare = click.Command(
    "compare", callback=friendly_errors(_compare), params=_compare_params(),
    help="Train RNN/GRU/LSTM/GRU-ODE (and GRU-ODE solver variants) under one budget and data, evaluate "
         "each, and write results.csv, results.md and plots. Takes every option of `train`.",
    short_help="Train and compare several models.")
analyze = click.Command(
    "analyze", callback=friendly_errors(_analyze), params=_analyze_params(),
    help="Study a trained GRU-ODE on held-out text: Jacobian spectrum along the trajectory (and over "
         "training), solver work per (solver, backward solver) pair, and perplexity under embedding "
         "noise against --baseline checkpoints. Writes tables and PNG plots.",
    short_help="Spectrum, solver work and robustness of a GRU-ODE.")
