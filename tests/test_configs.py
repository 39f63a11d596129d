"""Claims about the configs: each default lives once, one validate() per config names the bad setting, and
a config field with a flag becomes a command-line option without further code."""
from __future__ import annotations

from dataclasses import dataclass, field

import click
import pytest
from click.testing import CliRunner

from pyjlode.cli.errors import render_flags
from pyjlode.cli.options import config_options
from pyjlode.errors import InputError
from pyjlode.experiments.bench_config import BenchConfig
from pyjlode.flags import flag
from pyjlode.models import GRUODE, LanguageModel, ModelConfig, SolverConfig
from pyjlode.training.config import TrainConfig, build_configs


def test_the_layers_take_their_defaults_from_the_config():
    assert GRUODE(3, 4).config == SolverConfig().validate()
    assert LanguageModel(5, "gru-ode", embed_size=4, hidden_size=4).config.ode == SolverConfig().validate()
    assert (BenchConfig.rtol, BenchConfig.atol, BenchConfig.tau) == (SolverConfig.rtol, SolverConfig.atol,
                                                                     SolverConfig.tau)


def test_validate_gives_canonical_names():
    cfg = SolverConfig(solver="dopri5", backward_solver="kencarp4", rtol=1).validate()
    assert (cfg.solver, cfg.backward_solver, cfg.rtol) == ("DP5", "KenCarp4", 1.0)
    assert ModelConfig(3, cell="GRU_ODE").validate().cell == "gru-ode"


@pytest.mark.parametrize("config, named", [
    (SolverConfig(solver="nope"), "solver"), (SolverConfig(backward_solver="x"), "backward_solver"),
    (SolverConfig(sensealg="magic"), "sensealg"), (SolverConfig(rtol=0.0), "rtol"),
    (SolverConfig(atol=float("nan")), "atol"), (SolverConfig(dt=-1.0), "dt"), (SolverConfig(tau=0), "tau"),
    (SolverConfig(backend="jax"), "backend"), (SolverConfig(backend="julia", learn_tau=True), "learn_tau"),
    (ModelConfig(3, cell="transformer"), "cell"), (ModelConfig(3, hidden_size=0), "hidden_size"),
    (ModelConfig(3, dropout=1.0), "dropout"), (ModelConfig(3, tie_weights=True, embed_size=8), "tie_weights"),
    (ModelConfig(3, ode=SolverConfig(rtol=-1.0)), "rtol"),
    (TrainConfig(optimizer="lbfgs"), "optimizer"), (TrainConfig(bptt=0), "bptt"), (TrainConfig(lr=0), "lr"),
    (TrainConfig(state_reset=1.0), "state_reset"), (TrainConfig(log_interval=0), "log_interval"),
], ids=lambda v: v if isinstance(v, str) else type(v).__name__)
def test_one_validate_names_the_bad_setting(config, named):
    with pytest.raises(InputError, match=f"`{named}`") as info:
        config.validate()
    assert isinstance(info.value, ValueError) and "\n" not in str(info.value)


def test_solver_settings_of_a_discrete_core_are_refused_or_dropped():
    with pytest.raises(InputError, match="solver settings belong to the gru-ode"):
        ModelConfig.with_options(5, cell="gru", rtol=1e-4)
    mcfg, _ = build_configs({"model": "lstm", "rtol": 1e-4})       # the command line's shared options
    assert mcfg.ode == SolverConfig()
    with pytest.raises(InputError, match="unknown solver setting"):
        SolverConfig.with_options(rtl=1e-4)


def test_a_flagged_field_becomes_an_option():
    @dataclass
    class Settings:
        steps: int = field(default=3, metadata=flag("How many steps."))
        name: str | None = field(default=None, metadata=flag("A name.", default_text="none"))
        mode: str = field(default="a", metadata=flag("A mode.", choices=("a", "b"), aliases=("--kind",)))
        fast: bool = field(default=False, metadata=flag("Go fast."))
        checks: bool = field(default=True, metadata=flag("Run the checks."))
        hidden: int = 7                                            # no flag: no option

    @click.command(params=config_options(Settings))
    def show(**options):
        click.echo(repr(Settings(**options)))

    run = CliRunner().invoke(show, ["--steps", "5", "--kind", "b", "--fast", "--no-checks"])
    assert run.exit_code == 0, run.output
    assert run.output.strip() == repr(Settings(steps=5, mode="b", fast=True, checks=False))
    help_text = CliRunner().invoke(show, ["--help"]).output
    assert "How many steps.  [default: 3]" in help_text and "[default: (none)]" in help_text
    assert "--hidden" not in help_text
    assert CliRunner().invoke(show, ["--mode", "c"]).exit_code == 2


def test_the_command_line_names_its_own_flags():
    flags = {"backward_solver": "--backward-solver", "cell": "--model"}
    assert render_flags("try `backward_solver` KenCarp4 or another `cell`; `pip install x`", flags) == \
        "try --backward-solver KenCarp4 or another --model; `pip install x`"


def test_sensealg_help_and_error_list_the_same_choices():
    from pyjlode.backends._julia_names import SENSEALGS as JULIA
    from pyjlode.models.solver_config import DIRECT, SENSEALGS
    from pyjlode.ode.adjoint import SENSEALGS as TORCH

    assert set(SENSEALGS["torch"]) == {*TORCH, DIRECT} and set(SENSEALGS["julia"]) == set(JULIA)
    assert SENSEALGS["torch"][0] == "interpolating" and SENSEALGS["julia"][0] == "gauss"   # the defaults
    listed = "torch backend: interpolating, backsolve, direct; julia backend: gauss, interpolating, backsolve, " \
             "quadrature"
    help_text = " ".join(SolverConfig.__dataclass_fields__["sensealg"].metadata["flag"].help.split())
    assert listed in help_text
    for bad, first in (("magic", "unknown `sensealg` 'magic'"), ("gauss", "`sensealg` gauss needs `backend` julia")):
        with pytest.raises(InputError) as info:
            SolverConfig(sensealg=bad).validate()
        assert str(info.value).startswith(first) and listed in str(info.value)


@pytest.mark.parametrize("name, value", [("time_budget", -1.0), ("token_budget", -5), ("eval_tokens", -1),
                                         ("lr_factor", 1.0), ("min_freq", 0), ("time_budget", float("nan"))])
def test_train_config_rejects_budgets_that_cannot_work(name, value):
    with pytest.raises(InputError, match=f"`{name}`"):
        TrainConfig(**{name: value}).validate()


def _commands():
    from pyjlode.cli import cli

    return sorted(cli.commands.items())


@pytest.mark.parametrize("name, command", _commands(), ids=[n for n, _ in _commands()])
def test_every_generated_option_shows_its_fields_default_and_help(name, command):
    from dataclasses import MISSING

    for option in command.params:
        config = getattr(option, "config", None)
        if config is None:
            continue
        f = config.__dataclass_fields__[option.field_name]
        default = f.default if f.default is not MISSING else f.default_factory()
        shown = ",".join(map(str, default)) if isinstance(default, tuple) else default
        assert (option.default, option.help) == (shown, f.metadata["flag"].help), (name, option.name)
