"""The engine's fast paths compute what the plain paths compute, with less work.

Claims: quadrature rates kept as outer-product factors integrate to the same totals; a solve with a
quadrature pays no extra rate evaluation at its start; chained warm-started solves cost about what
one solve costs; counters add, subtract and copy; time reaches the engine's callbacks as a Python
float and user fields as a 0-d tensor.
"""
from __future__ import annotations

import pytest
import torch

from pyjlode.ode.loop import integrate
from pyjlode.ode.methods import get_method
from pyjlode.ode.problem import OuterSum, Problem, SolveStats, materialize

A = torch.tensor([[-1.0, 0.3, 0.0], [0.2, -0.5, 0.1], [0.0, -0.4, -0.8]], dtype=torch.float64)
X = torch.linspace(-1.0, 1.0, 8, dtype=torch.float64).reshape(2, 4)


def _f(t, y):
    return torch.tanh(y @ A.T) - 0.1 * y


def _rate_dense(t, y):
    # d/dt Q = (y ⊙ y)ᵀ X-like outer product, batch-summed: a (3, 4) "weight gradient" rate
    return ((y * y).T @ X, y.sum(0))


def _rate_lazy(t, y):
    return (OuterSum.of((3, 4), (0, 2, (y * y)[:, :2], X), (2, 3, (y * y)[:, 2:], X)), y.sum(0))


@pytest.mark.parametrize("solver", ["Tsit5", "DP5", "RK4", "KenCarp4", "Rodas4"])
def test_outer_sum_rates_integrate_to_the_dense_totals(solver):
    y0 = torch.tensor([[0.5, -0.2, 0.1], [0.3, 0.4, -0.6]], dtype=torch.float64)
    m = get_method(solver)
    kw = dict(dt0=0.05) if m.adaptive else dict(dt0=0.05, adaptive=False)
    dense = integrate(Problem(_f, quad=_rate_dense, rtol=1e-6, atol=1e-9), m, y0, [0.0, 1.0], **kw)
    lazy = integrate(Problem(_f, quad=_rate_lazy, rtol=1e-6, atol=1e-9), m, y0, [0.0, 1.0], **kw)
    assert isinstance(lazy.q[0], torch.Tensor) and lazy.q[0].shape == (3, 4)
    torch.testing.assert_close(lazy.q[0], dense.q[0], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(lazy.q[1], dense.q[1], rtol=1e-12, atol=1e-12)


def test_outer_sum_arithmetic_matches_its_matrix():
    L1, R1 = torch.randn(5, 3, dtype=torch.float64), torch.randn(5, 4, dtype=torch.float64)
    L2, R2 = torch.randn(2, 3, dtype=torch.float64), torch.randn(2, 4, dtype=torch.float64)
    a, b = OuterSum.of((3, 4), (0, 3, L1, R1)), OuterSum.of((3, 4), (0, 3, L2, R2))
    acc = a * 0.5
    acc.add_(b, alpha=-2.0)
    want = 0.5 * L1.T @ R1 - 2.0 * L2.T @ R2
    torch.testing.assert_close(materialize(acc), want)
    torch.testing.assert_close(materialize(a + b), L1.T @ R1 + L2.T @ R2)
    torch.testing.assert_close(a + torch.ones(3, 4, dtype=torch.float64), L1.T @ R1 + 1)
    torch.testing.assert_close(materialize(a), L1.T @ R1)       # a itself was not changed by acc


def test_a_solve_with_quadrature_evaluates_no_extra_rates_at_its_start():
    calls = {"fq": 0, "quad": 0}

    def fq(t, y):
        calls["fq"] += 1
        return _f(t, y), _rate_dense(t, y)

    def quad(t, y):
        calls["quad"] += 1
        return _rate_dense(t, y)

    y0 = torch.tensor([[0.5, -0.2, 0.1], [0.3, 0.4, -0.6]], dtype=torch.float64)
    sol = integrate(Problem(_f, fq=fq, quad=quad, rtol=1e-3, atol=1e-6), get_method("Tsit5"), y0, [0.0, 0.1],
                    dt0=0.1)
    assert sol.stats.naccept == 1 and sol.stats.nreject == 0
    assert calls == {"fq": 7, "quad": 0}      # f0 plus six stages, each paying for f and rates together


def test_chained_warm_started_solves_cost_about_one_solve():
    # The GRU-ODE pattern: one solve per unit interval, each warm-started from the last proposal.
    y0, m = torch.tensor([1.0, 0.5, -0.5], dtype=torch.float64), get_method("Tsit5")
    whole = integrate(Problem(_f, rtol=1e-3, atol=1e-6), m, y0, [0.0, 20.0]).stats
    y, dt, steps = y0, None, 0
    for i in range(20):
        sol = integrate(Problem(_f, rtol=1e-3, atol=1e-6), m, y, [float(i), i + 1.0], dt0=dt)
        y, dt = sol.ys[-1], sol.dt_next
        steps += sol.stats.naccept + sol.stats.nreject
    # A cold-start PI memory on every warm start took 42 steps here against 22 for one solve.
    assert steps <= 1.25 * (whole.naccept + whole.nreject) + 1


def test_counters_copy_add_and_subtract():
    a, b = SolveStats(nfe=7, naccept=2, nlu=1), SolveStats(nfe=3, nreject=1)
    c = a.copy()
    c += b
    assert (a + b) == c and (c - b) == a and a.as_dict()["nfe"] == 7 and c.nfe == 10
    assert str(b).startswith("nfe=3 njac=0")


def test_engine_callbacks_take_float_time_and_from_torch_hands_a_tensor():
    seen = []

    def f(t, y):
        seen.append(t)
        return -y

    integrate(Problem(f, rtol=1e-3, atol=1e-6), get_method("Tsit5"), torch.ones(2), [0.0, 0.3])
    assert seen and all(type(t) is float for t in seen)
    seen.clear()
    integrate(Problem.from_torch(f, rtol=1e-3, atol=1e-6), get_method("Tsit5"), torch.ones(2), [0.0, 0.3])
    assert seen and all(isinstance(t, torch.Tensor) and t.dim() == 0 and t.dtype == torch.float32 for t in seen)
