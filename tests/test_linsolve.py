"""The stiff steppers' linear solvers (``"Solver:dense"``, the default, and ``"Solver:krylov"``).

- Both solve the stiff regression problems within the regression suite's bounds, and agree.
- The GRU-ODE's matrix-free Jacobian equals its dense one, and a Krylov stiff adjoint gives the dense
  one's gradients.
- GMRES converges to its tolerance; when it cannot, the solve raises (Rosenbrock) or Newton fails and
  the step shrinks until it can (ESDIRK): never a silently unconverged answer.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pyjlode.errors import InputError
from pyjlode.models.gru_ode_field import GRUODEField
from pyjlode.ode import krylov
from pyjlode.ode.adjoint import odeint_adjoint
from pyjlode.ode.api import solve
from pyjlode.ode.methods import get_method
from pyjlode.ode.problem import Problem

from stiff_problems import KNOWN_EXCESS, PROBLEMS, bound, load_references, scaled_error

D = torch.float64
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("rtol", [1e-3, 1e-6])
@pytest.mark.parametrize("problem", ["robertson", "hires", "vanderpol"])
@pytest.mark.parametrize("solver", ["KenCarp4", "TRBDF2", "Rodas5P", "Rosenbrock23"])
def test_krylov_solves_stiff_problems_within_the_regression_bound(solver, problem, rtol):
    if (problem, solver, rtol) in KNOWN_EXCESS:
        pytest.skip("over the bound with the dense solver too (see test_stiff_regression)")
    p, ref = PROBLEMS[problem], np.asarray(load_references()[problem]["y"])
    sol = solve(p.f, p.y0_tensor(), [0.0, p.t_end], solver=f"{solver}:krylov", rtol=rtol, atol=p.atol(rtol),
                jac=p.jac, max_steps=200_000)
    err, _ = scaled_error(sol.ys[-1].numpy(), ref, rtol, p.atol(rtol))
    assert err <= bound(problem, solver, rtol)
    assert sol.stats.nlu == 0 and sol.stats.nsolve > 0     # no factorisation: GMRES did the solves


def _gru(B=6, H=12, tau=0.02, seed=0, reset_after=False):
    g = torch.Generator().manual_seed(seed)
    U = torch.randn(3 * H, H, generator=g, dtype=D) / math.sqrt(H)
    c = torch.randn(B, 3 * H, generator=g, dtype=D)
    b_hn = torch.randn(H, generator=g, dtype=D) if reset_after else None
    return GRUODEField(U, c, b_hn=b_hn, tau=tau, reset_after=reset_after), torch.randn(B, H, generator=g, dtype=D)


@pytest.mark.parametrize("reset_after", [False, True])
@pytest.mark.parametrize("tau", [0.02, "vector"])
def test_gru_jacobian_operator_equals_the_dense_jacobian(reset_after, tau):
    f, h = _gru(reset_after=reset_after, tau=0.02 if tau != "vector" else torch.rand(12, dtype=D) + 0.01)
    v = torch.randn_like(h)
    J, op = f.jac(0.0, h), f.jac_operator(0.0, h)
    torch.testing.assert_close(op.mv(v), (J @ v.unsqueeze(-1)).squeeze(-1))
    torch.testing.assert_close(op.rmv(v), (J.mT @ v.unsqueeze(-1)).squeeze(-1))
    torch.testing.assert_close(op.mT.mv(v), op.rmv(v))
    torch.testing.assert_close(op.diagonal(), J.diagonal(dim1=-2, dim2=-1))
    torch.testing.assert_close(op.transpose(-1, -2).dense(), J.mT)
    one = GRUODEField(f.U, f.c[0], b_hn=f.b_hn, tau=f.tau, reset_after=reset_after)   # unbatched state
    torch.testing.assert_close(one.jac_operator(0.0, h[0]).rmv(v[0]), op.rmv(v)[0])


@pytest.mark.parametrize("gdt", [1e-3, 1e-1, 10.0])
def test_gmres_meets_its_tolerance_in_the_scaled_norm(gdt):
    f, h = _gru(tau=0.01)
    op = f.jac_operator(0.0, h).mT
    w = krylov.KrylovW(op, gdt, h, 1e-6, 1e-9)
    b = torch.randn_like(h)
    x, iters = krylov.gmres(w, b)
    W = torch.eye(h.shape[1], dtype=D) - gdt * op.dense()
    exact = torch.linalg.solve(W, b)
    scaled = ((x - exact) * w.weight).norm(dim=-1)          # RMS norm scaled by atol + rtol |y|
    assert 0 < iters < krylov.MAX_ITER
    assert float(scaled.max()) < 10 * krylov.LIN_ATOL


class _Shift(krylov.JacobianOperator):
    """J = c P (P a cyclic shift): zero diagonal, and W = I - gdt c P needs n GMRES iterations."""

    def __init__(self, c):
        self.c = c

    def mv(self, v):
        return self.c * torch.roll(v, 1, dims=-1)

    def rmv(self, v):
        return self.c * torch.roll(v, -1, dims=-1)

    def diagonal(self):
        raise AssertionError("not used")

    def dense(self):
        n = 2 * krylov.MAX_ITER
        return self.c * torch.roll(torch.eye(n, dtype=D), 1, dims=0)


def test_gmres_raises_when_it_cannot_converge():
    n = 2 * krylov.MAX_ITER
    y = torch.ones(2, n, dtype=D)
    w = krylov.KrylovW(krylov.DenseOperator(_Shift(-50.0).dense()), 1.0, y, 1e-6, 1e-9)
    with pytest.raises(krylov.LinearSolveFailure, match="GMRES"):
        krylov.gmres(w, torch.randn(2, n, dtype=D))


def test_rosenbrock_krylov_raises_and_esdirk_krylov_recovers_by_shrinking_the_step():
    """y' = A y, A = c P - 1e3 I (P a cyclic shift, |c| < 1e3: stable): with a long first step,
    diag(W)^-1 W = I - ~0.99 P needs about n GMRES iterations. Rosenbrock raises; ESDIRK's Newton fails,
    dt shrinks until GMRES converges, and the answer is accurate."""
    n, c = 2 * krylov.MAX_ITER, -0.99e3
    A = c * torch.roll(torch.eye(n, dtype=D), 1, dims=0) - 1e3 * torch.eye(n, dtype=D)

    def f(t, y):
        return y @ A.T

    y0 = torch.linspace(0.5, 1.5, n, dtype=D)
    jac = lambda t, y: A                                           # noqa: E731
    with pytest.raises(krylov.LinearSolveFailure):
        solve(f, y0, [0.0, 1.0], solver="Rodas5P:krylov", rtol=1e-6, atol=1e-9, jac=jac, dt=1.0)
    sol = solve(f, y0, [0.0, 1.0], solver="KenCarp4:krylov", rtol=1e-6, atol=1e-9, jac=jac, dt=1.0)
    exact = torch.linalg.matrix_exp(A) @ y0
    assert sol.stats.nnewton_fail > 0
    assert float(((sol.ys[-1] - exact).abs() / (1e-9 + 1e-6 * exact.abs())).max()) < 30


@pytest.mark.parametrize("backward", ["KenCarp4", "TRBDF2", "Rodas5P"])
def test_krylov_stiff_adjoint_gives_the_dense_gradients(backward):
    f, h0 = _gru(tau=0.01)
    grads = {}
    for linsolve, jac in (("dense", f.jac), ("krylov", f.jac_operator)):
        params = [p.detach().clone().requires_grad_() for p in f.params]
        g = GRUODEField(params[0], params[1], tau=0.01)
        h = odeint_adjoint(g, h0, [0.0, 1.0], params=g.params, jac=jac if linsolve == "dense" else g.jac_operator,
                           vjp=g.vjp, solver="Tsit5", backward_solver=f"{backward}:{linsolve}",
                           rtol=1e-6, atol=1e-9)[-1]
        grads[linsolve] = torch.autograd.grad(h.square().sum(), params)
    for a, b in zip(grads["dense"], grads["krylov"]):
        assert float((a - b).norm() / b.norm()) < 1e-4


def test_stiff_forward_with_krylov_matches_dense():
    f, h0 = _gru(tau=0.005)
    ys = [solve(f, h0, [0.0, 1.0], solver=f"KenCarp4:{k}", rtol=1e-6, atol=1e-9, jac=jac).ys[-1]
          for k, jac in (("dense", f.jac), ("krylov", f.jac_operator))]
    assert float((ys[0] - ys[1]).abs().max()) < 1e-5


def test_linsolve_names():
    assert get_method("kencarp4:KRYLOV").stepper.plan.linsolve == "krylov"
    assert get_method("KenCarp4:dense") is get_method("KenCarp4")
    assert get_method("Rodas5P:krylov").name == "Rodas5P:krylov"
    with pytest.raises(InputError, match="solves no linear systems"):
        get_method("Tsit5:krylov")
    with pytest.raises(InputError, match="linsolve must be one of"):
        get_method("KenCarp4:gauss")


def test_backprop_through_a_krylov_solve_is_refused():
    f, h0 = _gru(tau=0.05)
    U = f.U.detach().clone().requires_grad_()
    g = GRUODEField(U, f.c, tau=0.05)
    with pytest.raises(InputError, match="krylov"):
        solve(g, h0, [0.0, 0.1], solver="KenCarp4:krylov", jac=g.jac_operator)


def test_problem_jac_may_return_an_operator_for_the_dense_path():
    f, h = _gru()
    p = Problem(lambda t, y: f(t, y), jac=lambda t, y: f.jac_operator(t, y))
    from pyjlode.ode.linalg import Jacobian, factor_w, solve_w
    J = Jacobian()(p, 0.0, h)
    w = factor_w(p, J, 0.1)
    b = torch.randn_like(h)
    W = torch.eye(h.shape[1], dtype=D) - 0.1 * f.jac(0.0, h)
    torch.testing.assert_close(solve_w(p, w, b), torch.linalg.solve(W, b))


def test_gru_ode_layer_with_krylov_solvers_gives_the_dense_gradients():
    from pyjlode.experiments import bench, bench_cases
    cfg = bench.BenchConfig(batch=3, input=4, hidden=6, tokens=2, tau=0.01, dtype="float64", rtol=1e-6, atol=1e-8)
    w, x = bench_cases.make_inputs(cfg)
    dense = bench_cases.run_step("kencarp4", w, x, cfg)["grads"]
    for case in ("kencarp4-krylov", "pair-krylov"):
        assert bench_cases.rel_error(bench_cases.run_step(case, w, x, cfg)["grads"], dense) < 1e-5, case
