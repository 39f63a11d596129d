"""Automatic stiffness switching (``auto``, ``AutoTsit5(<stiff>)``, ``AutoDP5(<stiff>)``).

Claims: on Van der Pol (mu = 1000) the composite moves to its stiff member on the slow manifold and
back to the explicit one for each fast jump, once each way per jump (no chatter), and ends within the
stiff-regression bound of the Radau reference, as on Robertson; batched with the per-row norm and
dense outputs it matches the unbatched solve; on a non-stiff problem it never switches and does
exactly Tsit5's work; adjoint gradients of a stiff GRU-ODE with auto forward and backward (quadrature
included) match Tsit5's, and the model reports the switches; bad composite names are one-line
InputErrors.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from stiff_problems import PROBLEMS, bound, load_references, scaled_error
from pyjlode.errors import InputError
from pyjlode.models.gru_ode import GRUODE
from pyjlode.models.gru_ode_field import GRUODEField
from pyjlode.models.solver_config import SolverConfig
from pyjlode.ode import get_method, solve
from pyjlode.ode.adjoint import AdjointStats, odeint_adjoint
from pyjlode.ode.methods import COMPOSITES
from pyjlode.ode.steppers.composite import Composite

RTOL = 1e-3


class _Traced(Composite):
    """Records the member that took each accepted step."""

    __slots__ = ()
    log: list = []

    def choose(self, problem, state, dt_new, accepted, remaining):
        member = state.active
        dt = super().choose(problem, state, dt_new, accepted, remaining)
        if accepted:
            self.log.append(member)
        return dt


def _traced(name: str):
    m = get_method(name)
    _Traced.log = []
    return dataclasses.replace(m, stepper=_Traced(m.name, *m.stepper.members)), _Traced.log


def _solve_reference_problem(name, solver, **kw):
    p = PROBLEMS[name]
    sol = solve(p.f, p.y0_tensor(), [0.0, p.t_end], jac=p.jac, solver=solver, rtol=RTOL,
                atol=p.atol(RTOL), **kw)
    ref = np.asarray(load_references()[name]["y"])
    error = scaled_error(sol.ys[-1].numpy(), ref, RTOL, p.atol(RTOL))[0]
    return sol, error


def test_van_der_pol_switches_to_the_stiff_member_and_back_at_each_jump():
    method, members = _traced("AutoTsit5(Rosenbrock23)")
    sol, error = _solve_reference_problem("vanderpol", method)
    assert error <= bound("vanderpol", "Rosenbrock23", RTOL)
    p = PROBLEMS["vanderpol"]
    switches = [i for i in range(1, len(members)) if members[i] != members[i - 1]]
    assert sol.stats.nswitch == len(switches)
    assert sol.stats.nstiff == sum(members)
    # the solution makes 3 fast jumps in [0, 3000]: stiff on, and off and on again around each one
    assert members[0] == 0 and len(switches) == 7
    speeds = [abs(float(p.f(None, sol(t))[0])) for t in sol.t_steps[1:]]
    stiff_speed = max(s for s, m in zip(speeds, members) if m == 1)
    explicit_speed = max(s for s, m in zip(speeds, members) if m == 0)
    assert stiff_speed < 0.05 < 1.0 < explicit_speed     # slow manifold stiff, jumps explicit


def test_robertson_switches_once_and_meets_the_regression_bound():
    sol, error = _solve_reference_problem("robertson", "AutoTsit5(Rosenbrock23)")
    assert error <= bound("robertson", "Rosenbrock23", RTOL)
    assert sol.stats.nswitch == 1 and sol.stats.nstiff > 0.5 * sol.stats.naccept


@pytest.mark.parametrize("name", ["auto", "AutoDP5(Rodas5P)"])
def test_other_pairs_switch_and_meet_the_bound(name):
    sol, error = _solve_reference_problem("robertson", name)
    assert error <= bound("robertson", get_method(name).stepper.members[1].name, RTOL)
    assert 1 <= sol.stats.nswitch <= 3


def test_batched_rows_norm_and_dense_outputs_match_the_unbatched_solve():
    p = PROBLEMS["vanderpol"]
    y0 = torch.tensor([[2.0, 0.0], [1.9, 0.0], [2.05, 0.0]], dtype=torch.float64)
    ts = [0.0, 100.0, 500.0, 1000.0]
    def f(t, y): return p.f(t, y)
    def jac(t, y): return torch.stack([p.jac(t, row) for row in y])
    batched = solve(f, y0, ts, jac=jac, solver="auto", rtol=RTOL, atol=p.atol(RTOL), norm="rows")
    assert batched.stats.nswitch >= 3
    for b in range(3):
        alone = solve(p.f, y0[b], ts, jac=p.jac, solver="auto", rtol=RTOL, atol=p.atol(RTOL))
        rel = (batched.ys[:, b] - alone.ys).abs().max() / alone.ys.abs().max()
        assert rel < 0.05, f"row {b}: {rel:.3g}"


def test_a_non_stiff_problem_never_switches_and_costs_what_tsit5_costs():
    A = torch.tensor([[0.0, 1.0], [-1.0, -0.1]], dtype=torch.float64)
    y0 = torch.tensor([[1.0, 0.0], [0.5, 0.5]], dtype=torch.float64)
    def f(t, y): return y @ A.T
    ts = torch.linspace(0, 20, 7, dtype=torch.float64)
    auto = solve(f, y0, ts, solver="auto", rtol=1e-6, atol=1e-9)
    tsit5 = solve(f, y0, ts, solver="Tsit5", rtol=1e-6, atol=1e-9)
    assert auto.stats.nswitch == auto.stats.nstiff == 0
    assert (auto.stats.nfe, auto.stats.naccept, auto.stats.nreject) == \
        (tsit5.stats.nfe, tsit5.stats.naccept, tsit5.stats.nreject)
    # Same steps, same end point; outputs between steps come from the composite's cubic Hermite (its
    # members' stages differ in kind), Tsit5's from its own interpolant: equal to the tolerance.
    assert torch.equal(auto.ys[-1], tsit5.ys[-1])
    assert torch.allclose(auto.ys, tsit5.ys, rtol=1e-4, atol=1e-6)


def _gru_grads(solver, backward, tau=5e-4, tokens=2):
    g = torch.Generator().manual_seed(0)
    B, H = 3, 6
    U = (torch.randn(3 * H, H, generator=g, dtype=torch.float64) / H ** 0.5).requires_grad_()
    c = torch.randn(tokens, B, 3 * H, generator=g, dtype=torch.float64).requires_grad_()
    h, stats, dt0, loss = torch.zeros(B, H, dtype=torch.float64), AdjointStats(), None, 0.0
    for i in range(tokens):
        f = GRUODEField(U, c[i], tau=tau)
        h = odeint_adjoint(f, h, [0.0, 1.0], params=f.params, jac=f.jac, vjp=f.vjp, solver=solver,
                           backward_solver=backward, rtol=1e-7, atol=1e-9, dt0=dt0, stats=stats)[-1]
        dt0 = stats.dt_next
        loss = loss + h.square().sum()
    return torch.cat([x.flatten() for x in torch.autograd.grad(loss, (U, c))]), stats


def test_adjoint_gradients_with_auto_match_tsit5():
    ref, _ = _gru_grads("Tsit5", "Tsit5")
    for fwd, bwd in (("auto", "auto"), ("Tsit5", "auto"), ("AutoDP5(KenCarp4)", "AutoTsit5(Rodas4)")):
        g, stats = _gru_grads(fwd, bwd)
        assert stats.backward.nswitch >= 1 and stats.backward.nstiff > 0, (fwd, bwd)
        assert float((g - ref).norm() / ref.norm()) < 1e-4, (fwd, bwd)
    assert stats.forward.nswitch >= 1


def test_the_model_reports_switches_per_token():
    layer = GRUODE(3, 8, tau=1e-3, solver="auto", backward_solver="auto").double()
    out, _ = layer(torch.randn(4, 2, 3, dtype=torch.float64))
    out.square().sum().backward()
    st = layer.solver_stats()
    assert st["switches_fwd_per_token"] > 0 and st["stiff_steps_fwd_per_token"] > 0
    assert st["switches_bwd_per_token"] > 0 and st["stiff_steps_bwd_per_token"] > 0


def test_names_resolve_case_insensitively_to_every_stiff_partner():
    assert get_method("auto").name == "AutoTsit5(KenCarp4)"
    assert get_method("autotsit5(kencarp4())").name == "AutoTsit5(KenCarp4)"
    stiff = [m.name for m in map(get_method, ["Rosenbrock23", "Rodas4", "Rodas5P", "TRBDF2", "KenCarp4",
                                              "Kvaerno5"])]
    assert {f"Auto{e}({s})" for e in ("Tsit5", "DP5") for s in stiff} <= set(COMPOSITES)
    assert SolverConfig(backward_solver="AUTO").validate().backward_solver == "AutoTsit5(KenCarp4)"


@pytest.mark.parametrize("name, words", [
    ("AutoTsit5(Tsit5)", "stiff member is one of"), ("AutoTsit5(Nope)", "stiff member is one of"),
    ("AutoRK4(KenCarp4)", "explicit member is one of"), ("Autofoo", "choose one of"),
])
def test_bad_composite_names_are_one_line_input_errors(name, words):
    for call in (lambda: get_method(name), lambda: SolverConfig(backward_solver=name).validate()):
        with pytest.raises(InputError, match=words) as info:
            call()
        assert "\n" not in str(info.value)
