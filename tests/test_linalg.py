"""Per-row Jacobians and the batched LU of W = I - gamma*dt*J, and their reuse by the steppers."""
from __future__ import annotations

import pytest
import torch

from pyjlode.ode import SOLVERS, linalg, solve
from pyjlode.ode.problem import Problem

# torch's first forward-mode AD call registers jit decompositions and warns about torch.jit.script.
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")


def _mlp(n: int, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(n, 2 * n), torch.nn.Tanh(),
                               torch.nn.Linear(2 * n, n)).double()


class _Field(torch.nn.Module):
    """Non-autonomous nn.Module field; rows are independent systems."""

    def __init__(self, n):
        super().__init__()
        self.net = _mlp(n)

    def forward(self, t, y):
        return self.net(y) * torch.cos(t) - y ** 3


def _reference_rows(f, t, y):
    tt = torch.tensor(t, dtype=y.dtype)
    return torch.stack([torch.autograd.functional.jacobian(lambda u: f(tt, u[None])[0], row)
                        for row in y])


# n = 3 takes the autograd loop, 8 reverse mode (vmap of vjp), 80 forward mode (vmap of jvp).
@pytest.mark.parametrize("n", [3, 8, 80])
@pytest.mark.parametrize("grad_mode", ["no_grad", "grad"])
def test_per_row_jacobian_matches_autograd(n, grad_mode):
    f = _Field(n)
    y = torch.randn(5, n, dtype=torch.float64)
    problem = Problem.from_torch(f)
    ctx = torch.no_grad() if grad_mode == "no_grad" else torch.enable_grad()
    with ctx:
        J = linalg.Jacobian()(problem, 0.3, y)
    ref = _reference_rows(f, 0.3, y)
    assert J.shape == (5, n, n)
    assert torch.allclose(J, ref, rtol=1e-10, atol=1e-12)
    assert not J.requires_grad and problem.stats.njac == 1


def test_unbatched_jacobian_matches_autograd():
    f = _Field(8)
    y = torch.randn(8, dtype=torch.float64)
    J = linalg.Jacobian()(Problem.from_torch(f), 0.0, y)
    ref = torch.autograd.functional.jacobian(lambda u: f(torch.tensor(0.0, dtype=u.dtype), u), y)
    assert torch.allclose(J, ref, rtol=1e-10, atol=1e-12)


class _OldStyleTanh(torch.autograd.Function):
    """A custom Function without ``setup_context``: torch.func transforms refuse it."""

    @staticmethod
    def forward(ctx, x):
        out = torch.tanh(x)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, g):
        (out,) = ctx.saved_tensors
        return g * (1 - out ** 2)


def test_field_that_cannot_be_vmapped_falls_back_to_autograd_loop():
    net = _mlp(6)

    def f(t, y):
        return _OldStyleTanh.apply(net(y))

    y = torch.randn(4, 6, dtype=torch.float64)
    evaluate = linalg.Jacobian()
    J = evaluate(Problem(f), 0.0, y)
    assert evaluate.loop is True
    assert torch.allclose(J, _reference_rows(f, 0.0, y), rtol=1e-10, atol=1e-12)


def test_analytic_jacobian_shapes():
    A = torch.tensor([[-2.0, 1.0], [0.5, -3.0]], dtype=torch.float64)
    problem = Problem(lambda t, y: y @ A.T, jac=lambda t, y: A)
    y = torch.ones(3, 2, dtype=torch.float64)
    assert torch.equal(linalg.Jacobian()(problem, 0.0, y), A.expand(3, 2, 2))  # shared (n, n) is broadcast
    bad = Problem(problem.f, jac=lambda t, y: torch.zeros(2, 3))
    with pytest.raises(ValueError, match=r"jac\(t, y\) returned shape \(2, 3\)"):
        linalg.Jacobian()(bad, 0.0, y)


def test_batched_lu_solves_w_without_forming_an_inverse():
    torch.manual_seed(1)
    J = torch.randn(4, 5, 5, dtype=torch.float64)
    rhs = torch.randn(4, 5, dtype=torch.float64)
    problem = Problem(lambda t, y: y)
    w = linalg.factor_w(problem, J, 0.37)
    x = linalg.solve_w(problem, w, rhs)
    W = torch.eye(5, dtype=torch.float64) - 0.37 * J
    assert torch.allclose((W @ x.unsqueeze(-1)).squeeze(-1), rhs, atol=1e-10)
    assert (problem.stats.nlu, problem.stats.nsolve) == (1, 1)


def test_w_staleness_cutoff():
    w = linalg.WFactor(None, None, 1.0)
    assert not linalg.w_is_stale(w, 1.0)
    assert not linalg.w_is_stale(w, 1 / 1.15)     # gdt_W / gdt - 1 = 0.15: keep
    assert not linalg.w_is_stale(w, 1 / 0.85)
    assert linalg.w_is_stale(w, 1 / 1.25)         # 0.25 > 1/5: refactorise
    assert linalg.w_is_stale(w, 2.0)
    assert linalg.w_is_stale(None, 1.0)


def _linear_problem():
    A = torch.tensor([[-1.0, 0.0, 0.0], [1.0, -100.0, 0.0], [0.0, 50.0, -1e4]], dtype=torch.float64)
    return (lambda t, y: y @ A.T), torch.tensor([1.0, 1.0, 1.0], dtype=torch.float64)


@pytest.mark.parametrize("name", ["TRBDF2", "KenCarp4", "Kvaerno5"])
def test_esdirk_constant_gamma_dt_reuses_one_jacobian_and_one_lu(name):
    f, y0 = _linear_problem()
    sol = solve(f, y0, [0.0, 1.0], solver=name, dt=0.05, adaptive=False, rtol=1e-10, atol=1e-12)
    s = sol.stats
    assert s.naccept == 20
    assert (s.njac, s.nlu) == (1, 1)           # linear f: Newton converges at once, J and W kept
    assert s.nsolve > s.naccept                 # but every stage really solves with the LU


@pytest.mark.parametrize("name", ["TRBDF2", "KenCarp4", "Kvaerno5"])
def test_esdirk_refactorises_only_when_gamma_dt_moves(name):
    f, y0 = _linear_problem()
    sol = solve(f, y0, [0.0, 10.0], solver=name, rtol=1e-5, atol=1e-8)
    s = sol.stats
    steps = s.naccept + s.nreject
    assert s.nlu < steps                        # dead-band steps keep W
    assert s.njac < s.nlu                       # W refactorised with the same J
    dts = [b - a for a, b in zip(sol.t_steps, sol.t_steps[1:])]
    assert max(dts) / min(dts) > 100            # while really adapting dt


@pytest.mark.parametrize("name", ["Rosenbrock23", "Rodas4", "Rodas5P"])
def test_rosenbrock_takes_one_fresh_jacobian_per_step_point(name):
    f, y0 = _linear_problem()
    sol = solve(f, y0, [0.0, 20.0], solver=name, rtol=1e-6, atol=1e-9)
    s = sol.stats
    # Every accepted step starts at a new point; a rejected attempt is retried from the same
    # point with the same J, so Jacobians == accepted steps and LUs == attempts.
    assert s.njac == s.naccept
    assert s.nlu == s.naccept + s.nreject
    assert s.nsolve == s.nlu * SOLVERS[name].tableau.stages
