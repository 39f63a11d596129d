"""Learned time constants: tau = exp(log_tau) per unit starts log-uniform over [tau_min, tau_max], the
settings are checked in one line, the gradient w.r.t. log tau is right on every gradient path, the
Jacobian carries 1/tau per unit, and checkpoints written before the range existed still load."""
from __future__ import annotations

import math
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from pyjlode.cli import cli
from pyjlode.errors import InputError
from pyjlode.models import GRUODECell, GRUODEField, SolverConfig
from pyjlode.models.gru_ode import initial_log_tau
from pyjlode.training import state
from pyjlode.training.config import build_configs, validate_run
from pyjlode.training.loop import train

f64 = torch.float64
FIXTURES = Path(__file__).parent / "fixtures"


# ---------------------------------------------------------------- the initial spread
def test_learned_tau_starts_log_uniform_over_the_range():
    cell = GRUODECell(3, 7, learn_tau=True, tau_min=0.01, tau_max=1.0).double()
    tau = cell.tau_value().detach()
    assert tau[0].item() == pytest.approx(0.01, rel=1e-6) and tau[-1].item() == pytest.approx(1.0, rel=1e-6)
    steps = tau[1:] / tau[:-1]                                  # a constant factor between neighbours
    torch.testing.assert_close(steps, torch.full_like(steps, 100 ** (1 / 6)), rtol=1e-6, atol=0)


def test_the_spread_is_the_same_for_every_seed_and_leaves_the_weights_alone():
    cells = []
    for seed, learn in ((0, True), (1, True), (0, False)):
        torch.manual_seed(seed)
        cells.append(GRUODECell(3, 5, learn_tau=learn, tau_min=0.01 if learn else None))
    assert torch.equal(cells[0].log_tau, cells[1].log_tau)
    for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):   # no random draw for tau
        assert torch.equal(getattr(cells[0], name), getattr(cells[2], name)), name


@pytest.mark.parametrize("settings, want", [
    (dict(tau=0.5), (0.5, 0.5)),                           # no range: every unit starts at tau
    (dict(tau_min=0.01), (0.01, 1.0)),                      # the end not given is tau
    (dict(tau=2.0, tau_max=8.0), (2.0, 8.0)),
    (dict(tau=7.0, tau_min=0.1, tau_max=1.0), (0.1, 1.0)),  # both ends given: tau plays no part
])
def test_an_end_of_the_range_not_given_is_tau(settings, want):
    cfg = SolverConfig(learn_tau=True, **settings).validate()
    assert cfg.tau_range() == want
    tau = GRUODECell(2, 4, cfg).tau_value().detach()
    assert (tau.min().item(), tau.max().item()) == pytest.approx(want, rel=1e-6)


def test_one_unit_starts_at_the_geometric_mean():
    assert initial_log_tau(1, 0.01, 1.0).exp().item() == pytest.approx(0.1, rel=1e-6)


# ---------------------------------------------------------------- settings
@pytest.mark.parametrize("settings, named", [
    (dict(tau_min=0.1), "tau_min"),                                  # a range needs learn_tau
    (dict(tau_max=2.0), "tau_min"),
    (dict(learn_tau=True, tau_min=0.0), "tau_min"),
    (dict(learn_tau=True, tau_max=float("nan")), "tau_max"),
    (dict(learn_tau=True, tau_min=2.0, tau_max=1.0), "tau_max"),
    (dict(learn_tau=True, tau_min=2.0), "tau"),                      # tau = 1 is the missing tau_max
    (dict(learn_tau=True, tau_min=0.1, backend="julia"), "learn_tau"),
])
def test_bad_tau_settings_fail_in_one_line_naming_the_setting(settings, named):
    with pytest.raises(InputError, match=f"`{named}`") as info:
        SolverConfig(**settings).validate()
    assert "\n" not in str(info.value)


def test_the_command_line_names_the_flags():
    res = CliRunner().invoke(cli, ["train", "--learn-tau", "--tau-min", "2", "--dry-run"])
    assert res.exit_code == 2
    assert res.stderr.count("\n") == 1 and "--tau-min 2 is above --tau-max 1" in res.stderr
    mcfg, _ = validate_run(*build_configs({"learn_tau": True, "tau_min": 0.01}))
    assert mcfg.ode.tau_range() == (0.01, 1.0)


# ---------------------------------------------------------------- gradients w.r.t. log tau
def test_field_cotangent_of_log_tau_is_minus_a_dot_f():
    """∂f/∂log tau = -f per unit: the field's tau cotangent, chained through exp, gives exactly that."""
    torch.manual_seed(0)
    B, H = 3, 5
    U, c = torch.randn(3 * H, H, dtype=f64), torch.randn(B, 3 * H, dtype=f64)
    h, a = torch.randn(B, H, dtype=f64), torch.randn(B, H, dtype=f64)
    log_tau = initial_log_tau(H, 0.01, 1.0).to(f64).requires_grad_()
    fld = GRUODEField(U, c, tau=log_tau.exp())
    _, grads = fld.vjp(None, h, a)
    with torch.no_grad():
        f = fld(None, h)
    torch.autograd.backward(log_tau.exp(), grads[-1])                 # the chain rule autograd applies
    torch.testing.assert_close(log_tau.grad, -(a * f).sum(0), rtol=1e-12, atol=1e-14)


def _loss(cell, x, w):
    out = cell.run(x, torch.zeros(x.shape[1], cell.hidden_size, dtype=f64))
    return (out * w).sum()


def _cell(tau_min, **settings):
    torch.manual_seed(1)
    return GRUODECell(3, 4, learn_tau=True, tau_min=tau_min, tau_max=1.0, **settings).double()


@pytest.fixture(scope="module")
def finite_differences():
    """tau_min -> (x, w, central differences of the loss in each log tau from a tight forward solve)."""
    torch.manual_seed(2)
    x, w = torch.randn(2, 2, 3, dtype=f64), torch.randn(2, 2, 4, dtype=f64)
    out = {}
    for tau_min in (0.02, 0.3):
        cell, eps = _cell(tau_min, rtol=1e-11, atol=1e-13), 1e-6
        fd = torch.empty(4, dtype=f64)
        with torch.no_grad():
            for i in range(len(fd)):
                cell.log_tau[i] += eps
                up = _loss(cell, x, w)
                cell.log_tau[i] -= 2 * eps
                fd[i] = (up - _loss(cell, x, w)) / (2 * eps)
                cell.log_tau[i] += eps
        out[tau_min] = (x, w, fd)
    return out


@pytest.mark.parametrize("sensealg, backward_solver, tau_min", [
    ("interpolating", "Tsit5", 0.02), ("interpolating", "KenCarp4", 0.02), ("direct", None, 0.02),
    # backsolve solves the state itself backwards, which a contracting field amplifies by about
    # exp(|Re λ| dt) (e^25 at tau = 0.02: its gradient is then wrong); it is checked where tau is mild
    ("backsolve", "Tsit5", 0.3)])
def test_log_tau_gradient_matches_finite_differences(finite_differences, sensealg, backward_solver, tau_min):
    """float64, tau spread over [tau_min, 1] (a stiffness ratio of about 50 at 0.02): the gradient of log
    tau through the adjoint (the tau cotangent integrated as a quadrature with the others) or through the
    solver's operations equals central differences of a tight forward solve."""
    x, w, fd = finite_differences[tau_min]
    cell = _cell(tau_min, rtol=1e-8, atol=1e-10, sensealg=sensealg, backward_solver=backward_solver)
    _loss(cell, x, w).backward()
    assert fd.abs().min() > 1e-3                                      # every unit's tau matters
    torch.testing.assert_close(cell.log_tau.grad, fd, rtol=2e-6, atol=0)


def test_the_jacobian_carries_one_over_tau_per_unit():
    torch.manual_seed(2)
    B, H = 2, 5
    U, c, h = torch.randn(3 * H, H, dtype=f64), torch.randn(B, 3 * H, dtype=f64), torch.randn(B, H, dtype=f64)
    tau = initial_log_tau(H, 0.01, 1.0).to(f64).exp()
    J, J1 = GRUODEField(U, c, tau=tau).jac(None, h), GRUODEField(U, c).jac(None, h)
    torch.testing.assert_close(J, J1 / tau.view(1, H, 1), rtol=1e-13, atol=0)     # row i scaled by 1/tau_i


# ---------------------------------------------------------------- checkpoints from before the range
@pytest.mark.usefixtures("one_thread")
def test_a_learned_tau_checkpoint_without_the_range_loads_and_resumes(tmp_path, monkeypatch):
    old = FIXTURES / "checkpoint-learn-tau" / "last.pt"
    raw = torch.load(old, weights_only=True)
    assert "tau_min" not in raw["model_config"]["ode"] and raw["model_config"]["ode"]["learn_tau"]
    ckpt = state.load_checkpoint(old)
    # saved before backward_solver defaulted to auto: None (the forward solver) is kept
    assert state.model_config(ckpt).ode == replace(SolverConfig(learn_tau=True, tau=0.5).validate(),
                                                   backward_solver=None)
    model = state.model_from_checkpoint(ckpt)
    learned = raw["state_dict"]["core.rnn.cells.0.log_tau"]
    assert not torch.allclose(learned, torch.full_like(learned, math.log(0.5)))    # training moved them
    assert torch.equal(model.core.rnn.cells[0].tau_value().detach(), learned.exp())
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(old, run / "last.pt")
    monkeypatch.chdir(FIXTURES)            # the checkpoint names its corpus relative to this folder
    summary = train(*build_configs({"out": str(run), "max_steps": 5, "time_budget": 0}), resume=True,
                    echo=lambda line: None)
    assert summary["step"] == 5
    assert state.load_checkpoint(run / "last.pt")["model_config"]["ode"]["tau_min"] is None
